import Backbones
import Foundation
import Imaging

/// One image's ranked classes (or why it was skipped), as `classify` and `predict` print them.
struct RankedImage: Encodable {
    struct Guess: Encodable { let label: String; let index: Int; let probability: Float }
    let path: String
    let top: [Guess]?
    let error: String?
}

/// `predict --tta K`: copies 0...K of each image, drawn as `extract` draws them: the extraction's
/// policy and seed, and the SHA-256 of the file's bytes.
struct AugmentedCopies {
    let policy: AugmentationPolicy
    let seed: UInt64
    let count: Int

    /// The policy as an extraction records it (`AugmentationPolicy.canonicalJSON`: the policy plus the
    /// version of the drawing algorithm, which must be this one's for copies to be drawn the same).
    init(storedPolicy: String, seed: Int64, count: Int) throws {
        guard var object = try? JSONSerialization.jsonObject(with: Data(storedPolicy.utf8)) as? [String: Any] else {
            throw ImagingError.invalidPolicy(reason: "the extraction's recorded policy is not a JSON object: \(storedPolicy)")
        }
        let version = object.removeValue(forKey: "version") as? Int
        guard version == AugmentationPolicy.algorithmVersion else {
            throw ImagingError.invalidPolicy(reason: "the extraction drew its copies with augmentation algorithm version \(version.map(String.init) ?? "?"), "
                                             + "this build draws version \(AugmentationPolicy.algorithmVersion); --tta would not see the same copies")
        }
        policy = try AugmentationPolicy.fromJSON(try JSONSerialization.data(withJSONObject: object))
        self.seed = UInt64(bitPattern: seed)
        self.count = count
    }
}

/// A file as read for ranking: its pixels, and its bytes (whose SHA-256 seeds augmented copies).
struct LoadedImage {
    let image: RGBImage
    let bytes: [UInt8]
    var sha256: String { ContentHash.sha256Hex(bytes) }
}

/// Decodes each file, brings it to the extractor's input size with `fit`, and ranks its classes
/// with `score` (features or logits in, top (index, probability) pairs out).
func rankImages(_ paths: [String], extractor ex: FeatureExtractor, fit: Fit, labels: [String],
                score: ([String: [Float]]) throws -> [(index: Int, probability: Float)]) -> [RankedImage] {
    rankImages(paths, labels: labels) { try score(try ex.run($0.image, fit: fit)) }
}

extension FeatureExtractor {
    /// The outputs for one decoded image, brought to the input size with `fit`.
    func run(_ img: RGBImage, fit: Fit) throws -> [String: [Float]] {
        try run(rgb: try Geometry.render(img, size: size, fit: fit, contentHash: "").pixels, count: 1)
    }

    /// `output` for copies 0...K of `img` (K = `copies?.count`, 0 without), one row per copy, drawn as
    /// `extract` draws them.
    func run(_ img: LoadedImage, fit: Fit, copies: AugmentedCopies?, output: String) throws -> [Float] {
        let hash = copies == nil ? "" : img.sha256
        let inputs = try (0...(copies?.count ?? 0)).map {
            try Geometry.render(img.image, size: size, fit: fit, policy: copies?.policy ?? .none, copy: $0,
                                seed: copies?.seed ?? 0, contentHash: hash)
        }
        return try run(rgb: inputs.flatMap(\.pixels), count: inputs.count)[output]!
    }
}

/// Decodes each file and ranks its classes with `score` (the loaded image in, top pairs out). A bad
/// file is reported on stderr and kept as an entry with its error; the others go on.
func rankImages(_ paths: [String], labels: [String],
                score: (LoadedImage) throws -> [(index: Int, probability: Float)]) -> [RankedImage] {
    paths.map { path in
        do {
            let bytes = try ImageCodec.readFile(URL(fileURLWithPath: path))
            let ranked = try score(LoadedImage(image: try ImageCodec.decode(bytes: bytes, name: path), bytes: bytes))
            return RankedImage(path: path, top: ranked.map {
                .init(label: labels[$0.index], index: $0.index, probability: $0.probability)
            }, error: nil)
        } catch {
            FileHandle.standardError.write(Data("skipped \(path): \(error)\n".utf8))
            return RankedImage(path: path, top: nil, error: "\(error)")
        }
    }
}

/// JSON array, or per image its path then one line per class.
func printRanked(_ entries: [RankedImage], json: Bool) throws {
    if json { return try printJSON(entries) }
    for e in entries {
        guard let t = e.top else { continue }
        print(e.path)
        for g in t { print(String(format: "  %6.2f%%  %@ (%d)", g.probability * 100, g.label, g.index)) }
    }
}
