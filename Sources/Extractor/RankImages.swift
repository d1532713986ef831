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

/// Decodes each file, brings it to the extractor's input size with `fit`, and ranks its classes
/// with `score` (features or logits in, top (index, probability) pairs out). A bad file is reported
/// on stderr and kept as an entry with its error; the others go on.
func rankImages(_ paths: [String], extractor ex: FeatureExtractor, fit: Fit, labels: [String],
                score: ([String: [Float]]) throws -> [(index: Int, probability: Float)]) -> [RankedImage] {
    rankImages(paths, labels: labels) { try score(try ex.run($0, fit: fit)) }
}

extension FeatureExtractor {
    /// The outputs for one decoded image, brought to the input size with `fit`.
    func run(_ img: RGBImage, fit: Fit) throws -> [String: [Float]] {
        try run(rgb: try Geometry.render(img, size: size, fit: fit, contentHash: "").pixels, count: 1)
    }
}

/// Decodes each file and ranks its classes with `score` (the decoded image in, top pairs out), with
/// the error handling above.
func rankImages(_ paths: [String], labels: [String],
                score: (RGBImage) throws -> [(index: Int, probability: Float)]) -> [RankedImage] {
    paths.map { path in
        do {
            let ranked = try score(try ImageCodec.decode(file: URL(fileURLWithPath: path)))
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
