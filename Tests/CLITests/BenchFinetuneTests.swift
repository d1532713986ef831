import FineTuneCore
import Foundation
import XCTest

/// `train-head bench-finetune` (issue #12): timing fine-tuning epochs on the network and weights of a
/// store's block cache, and its errors when the store caches no blocks or too few.
extension ExtractTests {
    struct BenchFinetuneOutput: Decodable {
        let backbone: String, cached_blocks: Int, unfreeze: Int, rows: Int, batch: Int, threads: Int, epochs: Int
        let bn_mode: String, gemm: String
        let seconds_per_epoch: Double, fastest_epoch_seconds: Double, gflops: Double, convolution_gflop_per_epoch: Double
        let final_loss: Float
    }

    func testBenchFinetuneTimesTheCachedBlocksAndNamesTheExtractCommandWhenTheCacheIsMissingOrTooSmall() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        func bench(unfreeze: Int) throws -> CLI.Result {
            try CLI.run("train-head", ["bench-finetune", "--store", store.path, "--backbone", "efficientnet_lite0",
                                       "--unfreeze", "\(unfreeze)", "--rows", "64", "--epochs", "1", "--json"])
        }

        // Features only: no block cache.
        XCTAssertEqual(try extractCaching(data, store: store, []).new_features, 4)
        let none = try bench(unfreeze: 1)
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("has no block cache for efficientnet_lite0"), none.stderr)
        XCTAssertTrue(none.stderr.contains("extract --backbone efficientnet_lite0 --data DIR --store \(store.path) --cache-blocks 1"), none.stderr)

        XCTAssertEqual(try extractCaching(data, store: store, ["--cache-blocks", "1"]).new_block_inputs, 4)
        let r = try bench(unfreeze: 1)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try JSONDecoder().decode(BenchFinetuneOutput.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(out.backbone, "efficientnet_lite0")
        XCTAssertEqual([out.cached_blocks, out.unfreeze, out.rows, out.batch, out.threads, out.epochs], [1, 1, 64, 64, 2, 1])
        XCTAssertEqual(out.bn_mode, "frozen")
        XCTAssertTrue(["oneDNN", "openBLAS"].contains(out.gemm), out.gemm)
        XCTAssertGreaterThan(out.seconds_per_epoch, 0)
        XCTAssertGreaterThan(out.fastest_epoch_seconds, 0)
        XCTAssertGreaterThan(out.convolution_gflop_per_epoch, 0)
        XCTAssertGreaterThan(out.gflops, 0)
        XCTAssertTrue(out.final_loss.isFinite)

        let tooFew = try bench(unfreeze: 2)
        XCTAssertNotEqual(tooFew.status, 0)
        XCTAssertTrue(tooFew.stderr.contains("caches only the last 1 block(s) of efficientnet_lite0"), tooFew.stderr)
        XCTAssertTrue(tooFew.stderr.contains("--cache-blocks 2"), tooFew.stderr)
    }

    /// `--unfreeze M` on a cache of N blocks drops the first N - M: the result is the network of the last
    /// M blocks, input shape included (blocks 10...15 of Lite0 span the stride-2 block 11, 14x14 -> 7x7).
    func testDroppingFirstBlocksGivesTheNetworkOfTheLastBlocks() throws {
        let six = try FineTuneNetwork.efficientNetLite0(lastBlocks: 6)
        for k in 1...5 {
            XCTAssertEqual(try six.droppingFirstBlocks(k), try FineTuneNetwork.efficientNetLite0(lastBlocks: 6 - k), "dropping \(k)")
        }
        XCTAssertEqual(try six.droppingFirstBlocks(0), six)
        XCTAssertThrowsError(try six.droppingFirstBlocks(7))
    }
}
