import BackboneEngine
import Backbones
import Foundation
import Imaging
import XCTest

/// `--precision bf16` on the four experiment backbones: features within cosine 0.999 of fp32 on
/// scenes6 images, through the public path (a weights file read by `LoadedBackbone`, 8-bit pixels
/// into `FeatureExtractor`). The weights are the deterministic ones of the parity tests
/// (`GeneratedWeights`), written as Keras 3 `.weights.h5` files at test time (no classifier).
final class BF16Tests: XCTestCase {
    static let minimumCosine = 0.999

    func testVGG16() throws { try check("vgg16", VGG.kerasTensors(classifier: false)) }
    func testResNet50() throws { try check("resnet50", ResNet.kerasTensors(.resnet50, classifier: false)) }
    func testResNet101() throws { try check("resnet101", ResNet.kerasTensors(.resnet101, classifier: false)) }
    func testEfficientNetB0() throws { try check("efficientnet_b0", EfficientNet.kerasTensors(classifier: false)) }

    /// Four scenes6 test images (different classes), 224x224 by the extractor's own resize; or
    /// `perClass` images of each of those classes from the `offset`-th on (sorted file names).
    static func scenes(_ size: Int, perClass: Int = 1, offset: Int = 0) throws -> [UInt8] {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let root = repo.deletingLastPathComponent().appendingPathComponent("shared/datasets/scenes6/test")
        guard FileManager.default.fileExists(atPath: root.path) else { throw XCTSkip("scenes6 not beside the repo") }
        var pixels: [UInt8] = []
        for cls in ["buildings", "forest", "glacier", "sea"] {
            let dir = root.appendingPathComponent(cls)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jpg") }.sorted()
            XCTAssertGreaterThanOrEqual(files.count, offset + perClass, "too few images in \(dir.path)")
            for file in files.dropFirst(offset).prefix(perClass) {
                let image = try ImageCodec.decode(file: dir.appendingPathComponent(file))
                pixels += try Geometry.render(image, size: size, fit: .stretch, contentHash: "").pixels
            }
        }
        return pixels
    }

    func check(_ id: String, _ shapes: [String: [Int]]) throws {
        try skipWithoutBF16()
        let spec = try XCTUnwrap(Backbones.experiment.first { $0.id == id })
        let pixels = try Self.scenes(spec.inputSize)
        let count = pixels.count / (spec.inputSize * spec.inputSize * 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bf16-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("\(id).weights.h5")
        try KerasFileWriter.writeGenerated(shapes, to: url)

        let loaded = try LoadedBackbone(spec, weights: url, classifier: false)
        let fp32 = try FeatureExtractor(loaded, batch: count).run(rgb: pixels, count: count)["features"]!
        let bf16 = try FeatureExtractor(loaded, batch: count, precision: .bf16).run(rgb: pixels, count: count)["features"]!
        let d = spec.featureDimension
        for i in 0..<count {
            let c = cosine(fp32[i * d ..< (i + 1) * d], bf16[i * d ..< (i + 1) * d])
            print(String(format: "bf16 %@ image %d: cosine %.6f", id, i, c))
            XCTAssertGreaterThanOrEqual(c, Self.minimumCosine, "\(id) image \(i)")
        }
    }
}
