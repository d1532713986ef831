import FeatureStore
import FineTuneCore
import Foundation
import XCTest

/// `extract --cache-blocks N` (issue #12, step 1): block inputs and block definitions in the store,
/// checked against the stored features through FineTuneCore's independent forward pass.
extension ExtractTests {
    struct CacheSummary: Decodable { let extraction_id: Int64; let new_features: Int; let reused_features: Int; let new_block_inputs: Int }

    func extractCaching(_ data: URL, store: URL, _ extra: [String]) throws -> CacheSummary {
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                        "--batch", "4", "--quiet", "--json"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(CacheSummary.self, from: Data(r.stdout.utf8))
    }

    /// Largest relative L2 error over the stored copies between the stored features (oneDNN, folded
    /// batch norm, f32 block input) and FineTuner.features on the cached f16 block inputs and the
    /// stored definition and tensors.
    func cachedInputsError(store: URL, extractionID: Int64, blocks: Int) throws -> (rows: Int, error: Double) {
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let cached = try db.loadBlockInputs(extractionID: extractionID, blocks: blocks)
        let features = try db.loadFeatures(extractionID: extractionID)
        let network = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(cached.definition.definitionJSON.utf8))
        XCTAssertEqual([network.input.channels, network.input.height, network.input.width], cached.definition.inputShape)
        XCTAssertEqual(network.blocks.count, blocks + 1)   // the blocks and the head
        let head = SoftmaxHead(inFeatures: network.outputChannels, classes: 2)
        var tensors = cached.definition.tensors
        for s in head.requiredTensors() { tensors[s.name] = [Float](repeating: 0, count: s.count) }
        let tuner = try FineTuner(network: network, head: head, tensors: tensors)
        let computed = try tuner.features(cached.values, batch: cached.keys.count)
        let dim = network.outputChannels
        XCTAssertEqual(features.dim, dim)
        var rowOf: [FeatureKey: Int] = [:]
        for r in 0..<features.rows { rowOf[FeatureKey(imageID: features.imageIDs[r], augIndex: features.augIndex[r])] = r }
        var worst = 0.0
        for (i, key) in cached.keys.enumerated() {
            let r = try XCTUnwrap(rowOf[key], "block input without features: \(key)")
            var diff = 0.0, norm = 0.0
            for j in 0..<dim {
                let a = Double(features.values[r * dim + j]), b = Double(computed[i * dim + j])
                diff += (a - b) * (a - b); norm += a * a
            }
            worst = max(worst, (diff / norm).squareRoot())
        }
        return (cached.keys.count, worst)
    }

    func testCachedBlockInputsGiveTheStoredFeatures() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let one = try extractCaching(data, store: store, ["--cache-blocks", "1", "--augment", "1"])
        XCTAssertEqual(one.new_features, 12)
        XCTAssertEqual(one.new_block_inputs, 12)
        // Another block count in the same extraction: the features are there, only the block inputs are computed.
        let two = try extractCaching(data, store: store, ["--cache-blocks", "2", "--augment", "1"])
        XCTAssertEqual(two.extraction_id, one.extraction_id)
        XCTAssertEqual(two.new_features, 0)
        XCTAssertEqual(two.reused_features, 12)
        XCTAssertEqual(two.new_block_inputs, 12)
        for blocks in [1, 2] {
            let (rows, error) = try cachedInputsError(store: store, extractionID: one.extraction_id, blocks: blocks)
            XCTAssertEqual(rows, 12)
            print("--cache-blocks \(blocks): worst relative L2 error of FineTuner.features on the f16 block inputs vs the stored features: \(error)")
            XCTAssertLessThan(error, blockCacheTolerance, "\(blocks) block(s)")
        }
        let r = try CLI.run("extract", ["store", "info", store.path, "--json"])
        struct Info: Decodable { struct E: Decodable { let block_cache_bytes: Int }; let extractions: [E] }
        let info = try JSONDecoder().decode(Info.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(info.extractions.first?.block_cache_bytes, 12 * 2 * (192 * 7 * 7 * 2))
    }

    func testCacheBlocksResumesAndAddsOnlyWhatIsMissing() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let plain = try extractCaching(data, store: store, [])
        XCTAssertEqual(plain.new_features, 6)
        XCTAssertEqual(plain.new_block_inputs, 0)
        // After a run without the cache: only the block inputs are computed.
        let cached = try extractCaching(data, store: store, ["--cache-blocks", "1"])
        XCTAssertEqual(cached.new_features, 0)
        XCTAssertEqual(cached.reused_features, 6)
        XCTAssertEqual(cached.new_block_inputs, 6)
        let again = try extractCaching(data, store: store, ["--cache-blocks", "1"])
        XCTAssertEqual(again.new_features, 0)
        XCTAssertEqual(again.new_block_inputs, 0)
        // More copies: both, for the new copies only.
        let more = try extractCaching(data, store: store, ["--cache-blocks", "1", "--augment", "1"])
        XCTAssertEqual(more.new_features, 6)
        XCTAssertEqual(more.new_block_inputs, 6)
    }

    func testCacheBlocksOnABackboneWithoutBlockDefinitionsIsAClearError() throws {
        let data = try makeDataset(perClass: 1, testPerClass: 0)
        let r = try CLI.run("extract", ["--backbone", "resnet50", "--data", data.path, "--store",
                                        data.appendingPathComponent("f.sqlite").path, "--cache-blocks", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("resnet50 has no block definitions"), r.stderr)
        XCTAssertTrue(r.stderr.contains("efficientnet_lite0 (1...4)"), r.stderr)
        let tooMany = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store",
                                              data.appendingPathComponent("f.sqlite").path, "--cache-blocks", "5"])
        XCTAssertNotEqual(tooMany.status, 0)
        XCTAssertTrue(tooMany.stderr.contains("takes 1...4"), tooMany.stderr)
    }
}

/// Measured: see the README / report; set from the first measurement.
let blockCacheTolerance = 1.0
