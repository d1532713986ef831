import CImageCodec
import Foundation

/// How an image of any aspect ratio is brought to size x size.
public enum Fit: String, Codable, CaseIterable, Sendable {
    /// Resize keeping the aspect ratio so the whole image fits, then zero-pad (centered).
    case pad
    /// Resize each axis independently to exactly size x size.
    case stretch
    /// Resize keeping the aspect ratio so the image covers the square, then cut the centered square.
    case centerCrop = "center-crop"
}

/// Resizing to the uniform output geometry, with or without augmentation.
///
/// Plain path (copy 0): one cv::resize into the padded frame, INTER_AREA when shrinking in both axes
/// (anti-aliased), INTER_LINEAR otherwise.
/// Augmented path: crop, flip, rotation, zoom and translation compose into ONE affine matrix applied with
/// one bilinear cv::warpAffine from the source to the output, so a copy costs one resample. Sampling
/// replicates the source edge and pixels outside the crop window are faded to black by their coverage
/// (anti-aliased edge), instead of plain BORDER_CONSTANT: that leaves no dark fringe on the image border,
/// keeps padding black even when a crop of a non-square image is placed, and reproduces the plain path
/// exactly at identity parameters.
/// When the source is much bigger than the output, each image is first shrunk once with INTER_AREA to
/// `policy.maxMagnification` times its plain size (the "base", shared by all copies of that image);
/// bilinear warping from there does not alias. Contrast is applied to the base before the warp so the
/// padding stays exactly black.
public enum Geometry {
    /// Where the resized image lands in the size x size output: resized width/height and the offset of
    /// its top-left corner (negative offsets crop, positive ones pad).
    public struct Placement: Hashable, Sendable {
        public let width: Int
        public let height: Int
        public let x: Int
        public let y: Int
        public init(width: Int, height: Int, x: Int, y: Int) {
            self.width = width
            self.height = height
            self.x = x
            self.y = y
        }
    }

    public static func placement(width: Int, height: Int, size: Int, fit: Fit) -> Placement {
        let w = Double(width), h = Double(height), s = Double(size)
        switch fit {
        case .stretch:
            return Placement(width: size, height: size, x: 0, y: 0)
        case .pad, .centerCrop:
            let scale = fit == .pad ? min(s / w, s / h) : max(s / w, s / h)
            let rw = max(1, Int((w * scale).rounded())), rh = max(1, Int((h * scale).rounded()))
            // Floor division keeps the same convention as Python's // in the reference script.
            func half(_ v: Int) -> Int { Int((Double(v) / 2).rounded(.down)) }
            return Placement(width: rw, height: rh, x: half(size - rw), y: half(size - rh))
        }
    }

    /// Copy `copy` of `image` (copy 0 = the plain image) at size x size. Pure function of the arguments.
    public static func render(_ image: RGBImage, size: Int, fit: Fit = .pad, policy: AugmentationPolicy = .none,
                              copy: Int = 0, seed: UInt64 = 0, contentHash: String) throws -> RGBImage {
        let parameters = AugmentationParameters.draw(policy: policy, contentHash: contentHash, copy: copy, seed: seed)
        return try render(image, size: size, fit: fit, parameters: parameters, policy: policy)
    }

    /// Renders fixed augmentation parameters. `policy` only decides how far a big source is pre-shrunk
    /// (`maxMagnification`); pass the policy the parameters were drawn from.
    public static func render(_ image: RGBImage, size: Int, fit: Fit = .pad, parameters: AugmentationParameters,
                              policy: AugmentationPolicy = .standard) throws -> RGBImage {
        let source = try Prepared(image, size: size, fit: fit, policy: policy)
        var out = [UInt8](repeating: 0, count: size * size * 3)
        try out.withUnsafeMutableBufferPointer { try source.render(parameters, into: $0.baseAddress!) }
        return RGBImage(width: size, height: size, pixels: out)
    }

    /// A decoded image made ready for rendering any number of copies: its placement and, for big
    /// sources, the pre-shrunk base. The pipeline builds one per image and renders all its copies from it.
    struct Prepared {
        let source: RGBImage
        let base: RGBImage
        let size: Int
        let fit: Fit
        let placement: Placement
        /// Mean luminance of the base, the pivot of the contrast augmentation (computed up front only
        /// when the policy uses contrast).
        private let cachedGrayMean: Double?

        init(_ image: RGBImage, size: Int, fit: Fit, policy: AugmentationPolicy) throws {
            guard size > 0, size <= 16384 else { throw ImagingError.invalidArgument("output size \(size) must be 1...16384") }
            source = image
            self.size = size
            self.fit = fit
            placement = Geometry.placement(width: image.width, height: image.height, size: size, fit: fit)
            let magnification = policy.isNone ? 1 : policy.maxMagnification
            let bw = min(image.width, max(1, Int((Double(placement.width) * magnification).rounded())))
            let bh = min(image.height, max(1, Int((Double(placement.height) * magnification).rounded())))
            if bw < image.width || bh < image.height {
                var pixels = [UInt8](repeating: 0, count: bw * bh * 3)
                let rc = image.pixels.withUnsafeBufferPointer { src in
                    pixels.withUnsafeMutableBufferPointer { dst in
                        cic_resize_place(src.baseAddress, Int32(image.width), Int32(image.height), Int32(bw), Int32(bh),
                                         0, 0, dst.baseAddress, Int32(bw), Int32(bh), Int32(CIC_INTER_AREA))
                    }
                }
                guard rc == Int32(CIC_OK) else { throw ImagingError.invalidArgument("pre-shrink failed (code \(rc))") }
                base = RGBImage(width: bw, height: bh, pixels: pixels)
            } else {
                base = image
            }
            cachedGrayMean = policy.contrast == nil ? nil : Prepared.grayMean(of: base)
        }

        static func grayMean(of image: RGBImage) -> Double {
            image.pixels.withUnsafeBufferPointer { cic_gray_mean($0.baseAddress, Int32(image.width), Int32(image.height)) }
        }

        var grayMean: Double { cachedGrayMean ?? Prepared.grayMean(of: base) }

        /// Writes one size x size x 3 copy into `dst`.
        func render(_ p: AugmentationParameters, into dst: UnsafeMutablePointer<UInt8>) throws {
            if p.isIdentity {
                let shrinking = placement.width <= source.width && placement.height <= source.height
                    && (placement.width < source.width || placement.height < source.height)
                let rc = source.pixels.withUnsafeBufferPointer { src in
                    cic_resize_place(src.baseAddress, Int32(source.width), Int32(source.height),
                                     Int32(placement.width), Int32(placement.height), Int32(placement.x), Int32(placement.y),
                                     dst, Int32(size), Int32(size), Int32(shrinking ? CIC_INTER_AREA : CIC_INTER_LINEAR))
                }
                guard rc == Int32(CIC_OK) else { throw ImagingError.invalidArgument("resize failed (code \(rc))") }
                return
            }
            let inverse = Geometry.inverseAffine(p, baseWidth: base.width, baseHeight: base.height,
                                                 placement: placement, size: size)
            let window = Geometry.contentWindow(p, baseWidth: base.width, baseHeight: base.height)
            var alpha = 1.0, beta = 0.0
            if p.contrast != 1 {
                alpha = p.contrast
                beta = (1 - p.contrast) * grayMean
            }
            let rc = base.pixels.withUnsafeBufferPointer { src in
                inverse.withUnsafeBufferPointer { m in
                    window.withUnsafeBufferPointer { w in
                        cic_warp_affine(src.baseAddress, Int32(base.width), Int32(base.height), m.baseAddress, w.baseAddress,
                                        alpha, beta, dst, Int32(size), Int32(size))
                    }
                }
            }
            guard rc == Int32(CIC_OK) else { throw ImagingError.invalidArgument("warp failed (code \(rc))") }
        }
    }

    /// The crop window {x0, y0, x1, y1} in continuous base coordinates: the image content of the copy.
    /// Output pixels outside it are black (see cic_warp_affine's coverage).
    public static func contentWindow(_ p: AugmentationParameters, baseWidth: Int, baseHeight: Int) -> [Double] {
        let side = min(1, max(1e-6, p.cropArea)).squareRoot()
        let w = Double(baseWidth), h = Double(baseHeight)
        let x0 = p.cropX * (1 - side) * w, y0 = p.cropY * (1 - side) * h
        return [x0, y0, x0 + side * w, y0 + side * h]
    }

    /// The destination->source 2x3 matrix (pixel-index coordinates, OpenCV WARP_INVERSE_MAP) of copy
    /// parameters `p`, for a base image of baseWidth x baseHeight placed by `placement` in size x size.
    ///
    /// Forward map in continuous coordinates (pixel i covers [i, i+1)):
    ///   base -> unit square -> crop window -> placement box -> about the output center C:
    ///   flip (x -> -x), rotate (cv2 sign), zoom, then translate by (tx, ty) * size.
    /// Index coordinates relate by x_index = x_continuous - 0.5 (OpenCV's resize convention).
    public static func inverseAffine(_ p: AugmentationParameters, baseWidth: Int, baseHeight: Int,
                                     placement: Placement, size: Int) -> [Double] {
        let side = min(1, max(1e-6, p.cropArea)).squareRoot()
        let cx0 = p.cropX * (1 - side), cy0 = p.cropY * (1 - side)
        // base continuous -> placement box: x' = ax * x + bx (axis-aligned).
        let ax = Double(placement.width) / (Double(baseWidth) * side)
        let ay = Double(placement.height) / (Double(baseHeight) * side)
        let bx = Double(placement.x) - cx0 / side * Double(placement.width)
        let by = Double(placement.y) - cy0 / side * Double(placement.height)
        // About the center: d -> z * R * F * d.
        let c = Double(size) / 2
        let theta = p.rotation * Double.pi / 180
        let cosT = cos(theta) * p.zoom, sinT = sin(theta) * p.zoom
        let f = p.flip ? -1.0 : 1.0
        // Linear part L = z R F with R = [[cos, sin], [-sin, cos]], F = diag(f, 1).
        let l00 = cosT * f, l01 = sinT, l10 = -sinT * f, l11 = cosT
        let tx = c + p.translateX * Double(size), ty = c + p.translateY * Double(size)
        // Forward: out = L * (diag(ax, ay) * x + (bx, by) - C) + (tx, ty).
        let a00 = l00 * ax, a01 = l01 * ay, a10 = l10 * ax, a11 = l11 * ay
        let dx = bx - c, dy = by - c
        let b0 = l00 * dx + l01 * dy + tx, b1 = l10 * dx + l11 * dy + ty
        // Index coordinates: out_i = A * (x_i + 0.5) + b - 0.5  =>  b_i = b + A * 0.5 - 0.5.
        let bi0 = b0 + 0.5 * (a00 + a01) - 0.5, bi1 = b1 + 0.5 * (a10 + a11) - 0.5
        // Invert the 2x3 affine.
        let det = a00 * a11 - a01 * a10
        let i00 = a11 / det, i01 = -a01 / det, i10 = -a10 / det, i11 = a00 / det
        return [i00, i01, -(i00 * bi0 + i01 * bi1), i10, i11, -(i10 * bi0 + i11 * bi1)]
    }
}
