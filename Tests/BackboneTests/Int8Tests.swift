import BackboneEngine
import Backbones
import Foundation
import XCTest

/// `--precision int8` against fp32 from the same engine: EfficientNet-Lite0 with its published weights
/// (installed by scripts/setup; skipped without them), calibrated on 8 scenes6 images, run on 8 others.
final class Int8Tests: XCTestCase {
    static let minimumCosine = 0.99

    /// `count` scenes6 test images starting at `offset` in each class folder (sorted), stretched to `size`.
    func images(_ size: Int, perClass: Int, offset: Int) throws -> [UInt8] {
        try BF16Tests.scenes(size, perClass: perClass, offset: offset)
    }

    func testLite0FeaturesMatchFP32() throws {
        let loaded = try installedBackbone("efficientnet_lite0")
        let size = loaded.spec.inputSize
        let calibration = try images(size, perClass: 8, offset: 0)
        let cal = try calibration.withUnsafeBufferPointer { try loaded.calibrateInt8(rgb: $0.baseAddress!, count: 32) }
        let pixels = try images(size, perClass: 2, offset: 8)
        let count = 8
        let fp32 = try FeatureExtractor(loaded, batch: count).run(rgb: pixels, count: count)["features"]!
        let int8Extractor = try FeatureExtractor(loaded, batch: count, precision: .int8, calibration: cal)
        print(int8Extractor.implementations.joined(separator: "\n"))
        let int8 = try int8Extractor.run(rgb: pixels, count: count)["features"]!
        let d = loaded.spec.featureDimension
        for i in 0..<count {
            let c = cosine(fp32[i * d ..< (i + 1) * d], int8[i * d ..< (i + 1) * d])
            print(String(format: "int8 lite0 image %d: cosine %.6f", i, c))
            XCTAssertGreaterThanOrEqual(c, Self.minimumCosine, "image \(i)")
        }
    }
}
