import WorkbenchSupport
/// The concrete parameters of one augmented copy. Drawn deterministically by `draw`, or set by hand
/// (the parity tests render fixed parameters and compare with the cv2 reference script).
public struct AugmentationParameters: Hashable, Codable, Sendable {
    /// Fraction of the area kept by the crop (1 = no crop). The crop keeps the image's aspect ratio.
    public var cropArea: Double = 1
    /// Crop position as a fraction of the free space left and above the crop (0.5 = centered).
    public var cropX: Double = 0.5
    public var cropY: Double = 0.5
    /// Scale about the output center (> 1 zooms in).
    public var zoom: Double = 1
    /// Degrees, positive = counter-clockwise (cv2.getRotationMatrix2D convention).
    public var rotation: Double = 0
    public var flip: Bool = false
    /// Contrast factor: v -> c * v + (1 - c) * mean luminance of the source.
    public var contrast: Double = 1
    /// Shift as a fraction of the output size (positive = right / down).
    public var translateX: Double = 0
    public var translateY: Double = 0

    public init(cropArea: Double = 1, cropX: Double = 0.5, cropY: Double = 0.5, zoom: Double = 1,
                rotation: Double = 0, flip: Bool = false, contrast: Double = 1,
                translateX: Double = 0, translateY: Double = 0) {
        self.cropArea = cropArea
        self.cropX = cropX
        self.cropY = cropY
        self.zoom = zoom
        self.rotation = rotation
        self.flip = flip
        self.contrast = contrast
        self.translateX = translateX
        self.translateY = translateY
    }

    public static let identity = AugmentationParameters()

    /// True when no geometric change is applied (the plain resize path can be used).
    public var isGeometricIdentity: Bool {
        cropArea >= 1 && zoom == 1 && rotation == 0 && !flip && translateX == 0 && translateY == 0
    }

    public var isIdentity: Bool { isGeometricIdentity && contrast == 1 }

    /// Parameters of copy `copy` of the image whose bytes hash to `contentHash`, under `policy` and `seed`.
    ///
    /// A pure function: the RNG is SplitMix64 seeded from SHA-256("imaging-aug|v|sha|copy|seed"), so the
    /// result does not depend on batch order, thread count or which other images are in the run.
    /// Nine uniforms are always drawn in a fixed order (crop area, crop x, crop y, zoom, rotation, flip,
    /// contrast, shift x, shift y) whether or not an augmentation is on, so switching one augmentation
    /// on or off does not change the others' draws. Copy 0 is always the identity (the plain image).
    public static func draw(policy: AugmentationPolicy, contentHash: String, copy: Int, seed: UInt64) -> AugmentationParameters {
        if copy == 0 || policy.isNone { return .identity }
        var rng = SplitMix64(seed: ContentHash.seed64(
            "imaging-aug|\(AugmentationPolicy.algorithmVersion)|\(contentHash)|\(copy)|\(seed)"))
        let u = (0..<9).map { _ in rng.nextUnit() }
        var p = AugmentationParameters()
        if let r = policy.crop, r.lower < 1 || r.upper < 1 {
            p.cropArea = min(1, r.value(at: u[0]))
            p.cropX = u[1]
            p.cropY = u[2]
        }
        if let r = policy.zoom { p.zoom = r.value(at: u[3]) }
        if let r = policy.rotation { p.rotation = r.value(at: u[4]) }
        if let prob = policy.horizontalFlip { p.flip = u[5] < prob }
        if let r = policy.contrast { p.contrast = r.value(at: u[6]) }
        if let t = policy.translation {
            p.translateX = (2 * u[7] - 1) * t
            p.translateY = (2 * u[8] - 1) * t
        }
        return p
    }
}
