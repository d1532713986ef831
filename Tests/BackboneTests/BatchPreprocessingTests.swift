import Backbones
import Foundation
import Imaging
import XCTest

/// The extractor's path from a pipeline batch to backbone input: `Preprocessing.apply` on the batch's
/// HWC bytes (the only normalization there is) gives NCHW floats (v - mean[c]) / std[c], channels in order.
final class BatchPreprocessingTests: XCTestCase {
    func testPipelineBatchToNCHW() throws {
        let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/photos")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("BatchPreprocessing-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("a"), withIntermediateDirectories: true)
        for name in ["chelsea.png", "coffee.jpg"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: dir.appendingPathComponent("a/\(name)"))
        }
        var batches: [ImagePipeline.Batch] = []
        try ImagePipeline(items: try DatasetScan.scan(dir).items, size: 8, batchSize: 2, threads: 1).run({ batches.append($0) })
        let batch = try XCTUnwrap(batches.first)
        XCTAssertEqual(batch.count, 2)
        for pre in [Preprocessing.imagenet, .caffe] {
            var out = [Float](repeating: .nan, count: 2 * 3 * 64)
            batch.pixels.withUnsafeBufferPointer { px in
                out.withUnsafeMutableBufferPointer { pre.apply(rgb: px.baseAddress!, count: 2, size: 8, into: $0.baseAddress!) }
            }
            for n in 0..<2 {
                for p in 0..<64 {
                    for c in 0..<3 {
                        let v = Float(batch.pixels[(n * 64 + p) * 3 + (pre.order == .rgb ? c : 2 - c)])
                        XCTAssertEqual(out[(n * 3 + c) * 64 + p], (v - pre.mean[c]) / pre.std[c], accuracy: 1e-5)
                    }
                }
            }
        }
    }
}
