import Foundation
import WorkbenchSupport

/// Which random augmentations to apply to copies 1, 2, ... of each image, and their ranges.
/// A missing (nil) entry means that augmentation is off; `AugmentationPolicy.standard` has all six on.
///
/// JSON form (YAML later maps onto the same keys): ranges are two-element arrays, e.g.
///   {"crop": [0.8, 1.0], "zoom": [0.9, 1.1], "rotation": [-15, 15], "horizontalFlip": 0.5,
///    "contrast": [0.8, 1.2], "translation": 0.1}
/// Unknown keys are rejected so a typo cannot silently switch an augmentation off.
public struct AugmentationPolicy: Codable, Hashable, Sendable {
    /// A closed interval [lower, upper] drawn from uniformly.
    public struct Range: Codable, Hashable, Sendable {
        public var lower: Double
        public var upper: Double
        public init(_ lower: Double, _ upper: Double) { self.lower = lower; self.upper = upper }

        public init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            lower = try c.decode(Double.self)
            upper = try c.decode(Double.self)
            if !c.isAtEnd {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "a range has exactly two numbers")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(lower)
            try c.encode(upper)
        }

        func value(at u: Double) -> Double { lower + (upper - lower) * u }
    }

    /// Fraction of the image area kept by a random crop (same aspect ratio, random position). Default 0.8-1.0.
    public var crop: Range?
    /// Scale about the output center; > 1 zooms in. Default 0.9-1.1.
    public var zoom: Range?
    /// Rotation in degrees about the output center, positive = counter-clockwise. Default -15...15.
    public var rotation: Range?
    /// Probability of a horizontal mirror. Default 0.5.
    public var horizontalFlip: Double?
    /// Contrast factor c: v -> c * v + (1 - c) * mean luminance. Default 0.8-1.2.
    public var contrast: Range?
    /// Maximum shift in each axis as a fraction of the output size. Default 0.1 (+-10%).
    public var translation: Double?

    public init(crop: Range? = nil, zoom: Range? = nil, rotation: Range? = nil, horizontalFlip: Double? = nil,
                contrast: Range? = nil, translation: Double? = nil) {
        self.crop = crop
        self.zoom = zoom
        self.rotation = rotation
        self.horizontalFlip = horizontalFlip
        self.contrast = contrast
        self.translation = translation
    }

    /// No augmentation: every copy is the plain resized image.
    public static let none = AugmentationPolicy()
    /// The six default augmentations.
    public static let standard = AugmentationPolicy(crop: Range(0.8, 1.0), zoom: Range(0.9, 1.1),
                                                    rotation: Range(-15, 15), horizontalFlip: 0.5,
                                                    contrast: Range(0.8, 1.2), translation: 0.1)

    public var isNone: Bool { self == .none }

    /// Bumped whenever the meaning of a policy changes (how parameters are drawn or applied), so cached
    /// features made under the old meaning get a different policy hash.
    public static let algorithmVersion = 1

    // MARK: Validation

    /// Throws `ImagingError.invalidPolicy` naming the first bad entry.
    public func validate() throws {
        func check(_ name: String, _ r: Range?, _ allowed: ClosedRange<Double>) throws {
            guard let r else { return }
            guard r.lower.isFinite, r.upper.isFinite, r.lower <= r.upper else {
                throw ImagingError.invalidPolicy(reason: "\(name): range [\(r.lower), \(r.upper)] must be finite with lower <= upper")
            }
            guard allowed.contains(r.lower), allowed.contains(r.upper) else {
                throw ImagingError.invalidPolicy(reason: "\(name): range [\(r.lower), \(r.upper)] must lie within [\(allowed.lowerBound), \(allowed.upperBound)]")
            }
        }
        try check("crop", crop, 0.01...1)
        try check("zoom", zoom, 0.1...10)
        try check("rotation", rotation, -180...180)
        try check("contrast", contrast, 0...10)
        if let p = horizontalFlip, !(0...1).contains(p) {
            throw ImagingError.invalidPolicy(reason: "horizontalFlip: probability \(p) must be within [0, 1]")
        }
        if let t = translation, !(0...1).contains(t) {
            throw ImagingError.invalidPolicy(reason: "translation: \(t) must be a fraction within [0, 1]")
        }
    }

    // MARK: Codable with unknown-key rejection

    private enum Keys: String, CodingKey, CaseIterable {
        case crop, zoom, rotation, horizontalFlip, contrast, translation
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let any = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(Keys.allCases.map(\.rawValue))
        if let unknown = any.allKeys.map(\.stringValue).first(where: { !known.contains($0) }) {
            throw ImagingError.invalidPolicy(reason: "unknown key \"\(unknown)\" (known: \(Keys.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let c = try decoder.container(keyedBy: Keys.self)
        crop = try c.decodeIfPresent(Range.self, forKey: .crop)
        zoom = try c.decodeIfPresent(Range.self, forKey: .zoom)
        rotation = try c.decodeIfPresent(Range.self, forKey: .rotation)
        horizontalFlip = try c.decodeIfPresent(Double.self, forKey: .horizontalFlip)
        contrast = try c.decodeIfPresent(Range.self, forKey: .contrast)
        translation = try c.decodeIfPresent(Double.self, forKey: .translation)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(crop, forKey: .crop)
        try c.encodeIfPresent(zoom, forKey: .zoom)
        try c.encodeIfPresent(rotation, forKey: .rotation)
        try c.encodeIfPresent(horizontalFlip, forKey: .horizontalFlip)
        try c.encodeIfPresent(contrast, forKey: .contrast)
        try c.encodeIfPresent(translation, forKey: .translation)
    }

    /// Parses and validates a JSON policy.
    public static func fromJSON(_ data: Data) throws -> AugmentationPolicy {
        let policy: AugmentationPolicy
        do { policy = try JSONDecoder().decode(AugmentationPolicy.self, from: data) } catch let e as ImagingError {
            throw e
        } catch {
            throw ImagingError.invalidPolicy(reason: "not a valid policy JSON object: \(error)")
        }
        try policy.validate()
        return policy
    }

    // MARK: Canonical form and hash

    /// Canonical JSON (`CanonicalJSON`: keys sorted, no whitespace, whole numbers without ".0"):
    /// the enabled augmentations plus the algorithm version.
    public var canonicalJSON: String {
        // + 0 turns -0.0 into 0, which has always been written "0" here.
        func number(_ v: Double) -> CanonicalJSON { .double(v + 0) }
        func range(_ r: Range?) -> CanonicalJSON? { r.map { .array([number($0.lower), number($0.upper)]) } }
        let fields: [String: CanonicalJSON?] = [
            "version": .int(Int64(Self.algorithmVersion)), "crop": range(crop), "zoom": range(zoom),
            "rotation": range(rotation), "horizontalFlip": horizontalFlip.map(number), "contrast": range(contrast),
            "translation": translation.map(number),
        ]
        return CanonicalJSON.object(fields.compactMapValues { $0 }).text
    }

    /// SHA-256 (hex) of `canonicalJSON`: the policy's identity in the feature store.
    public var hash: String { Digest.hex(canonicalJSON) }

    /// The largest magnification an augmented copy can apply relative to the plain placement
    /// (zoom in times crop). Big sources are pre-shrunk (INTER_AREA) only down to this much above the
    /// plain size, so augmented copies never have to upsample a pre-shrunk base.
    public var maxMagnification: Double {
        let zoomMax = max(1, zoom?.upper ?? 1)
        let cropMin = min(1, max(0.01, crop?.lower ?? 1))
        return zoomMax / cropMin.squareRoot()
    }
}
