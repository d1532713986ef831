import FeatureStore
import FineTuneCore
import Foundation
import XCTest

/// `extract --cache-blocks N` (issue #12, step 1): block inputs and block definitions in the store,
/// checked against the stored features through FineTuneCore's independent forward pass.
extension ExtractTests {
    struct CacheSummary: Decodable { let extraction_id: Int64; let new_features: Int; let reused_features: Int; let new_block_inputs: Int }

    func extractCaching(_ data: URL, store: URL, _ extra: [String], backbone: String = "efficientnet_lite0") throws -> CacheSummary {
        let r = try CLI.run("extract", ["--backbone", backbone, "--data", data.path, "--store", store.path,
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

    /// The round trip: features recomputed by FineTuneCore from the cached inputs and the stored
    /// definition match the stored features within 1e-5 relative L2 when the inputs are kept as f32
    /// (measured 1.0e-6 worst on 12 copies). f16 inputs are exactly the f32 ones rounded to f16, and
    /// that rounding alone (unit roundoff 2^-11 = 4.9e-4 per value) moves the features by 1.0e-4
    /// (measured), so the f16 cache is checked against the f32 one's error plus that effect computed
    /// by FineTuner on inputs rounded here.
    func testCachedBlockInputsGiveTheStoredFeatures() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 1)
        let dir = data.deletingLastPathComponent()
        var errors: [String: Double] = [:]
        for dtype in ["f32", "f16"] {
            let store = dir.appendingPathComponent("\(dtype).sqlite")
            let one = try extractCaching(data, store: store, ["--cache-blocks", "1", "--augment", "1", "--cache-dtype", dtype])
            XCTAssertEqual(one.new_features, 12)
            XCTAssertEqual(one.new_block_inputs, 12)
            // Another block count in the same extraction: the features are there, only the block inputs are computed.
            let two = try extractCaching(data, store: store, ["--cache-blocks", "2", "--augment", "1", "--cache-dtype", dtype])
            XCTAssertEqual(two.extraction_id, one.extraction_id)
            XCTAssertEqual(two.new_features, 0)
            XCTAssertEqual(two.reused_features, 12)
            XCTAssertEqual(two.new_block_inputs, 12)
            let bytesPerValue = dtype == "f32" ? 4 : 2
            for blocks in [1, 2] {
                let (rows, error) = try cachedInputsError(store: store, extractionID: one.extraction_id, blocks: blocks)
                XCTAssertEqual(rows, 12)
                print("--cache-blocks \(blocks) --cache-dtype \(dtype): worst relative L2 error of FineTuner.features on the cached inputs vs the stored features: \(error)")
                errors["\(dtype)-\(blocks)"] = error
            }
            let r = try CLI.run("extract", ["store", "info", store.path, "--json"])
            struct Info: Decodable { struct E: Decodable { let block_cache_bytes: Int }; let extractions: [E] }
            let info = try JSONDecoder().decode(Info.self, from: Data(r.stdout.utf8))
            XCTAssertEqual(info.extractions.first?.block_cache_bytes, 12 * 2 * 192 * 7 * 7 * bytesPerValue)
        }
        for blocks in [1, 2] {
            XCTAssertLessThan(errors["f32-\(blocks)"]!, 1e-5, "\(blocks) block(s), f32 cache")
            // The f16 cache holds the f32 inputs rounded to f16, bit for bit.
            let f32 = try FeatureStore(path: dir.appendingPathComponent("f32.sqlite").path, mode: .readOnly)
                .loadBlockInputs(extractionID: 1, blocks: blocks)
            let f16 = try FeatureStore(path: dir.appendingPathComponent("f16.sqlite").path, mode: .readOnly)
                .loadBlockInputs(extractionID: 1, blocks: blocks)
            XCTAssertEqual(f16.keys, f32.keys)
            let rounded = f32.values.map { Float(Float16($0)) }
            XCTAssertEqual(f16.values, rounded, "\(blocks) block(s): f16 cache is not the f32 inputs rounded")
            // The rounding's effect on the features, from FineTuner alone; the f16 error stays within it plus the f32 error.
            let network = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(f32.definition.definitionJSON.utf8))
            let head = SoftmaxHead(inFeatures: network.outputChannels, classes: 2)
            var tensors = f32.definition.tensors
            for s in head.requiredTensors() { tensors[s.name] = [Float](repeating: 0, count: s.count) }
            let tuner = try FineTuner(network: network, head: head, tensors: tensors)
            let exact = try tuner.features(f32.values, batch: f32.keys.count)
            let fromRounded = try tuner.features(rounded, batch: f32.keys.count)
            let dim = network.outputChannels
            var effect = 0.0
            for i in 0..<f32.keys.count {
                let a = exact[i * dim ..< (i + 1) * dim], b = fromRounded[i * dim ..< (i + 1) * dim]
                let diff = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                effect = max(effect, (diff / a.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot())
            }
            print("--cache-blocks \(blocks): f16 rounding of the inputs alone moves FineTuner's features by \(effect) (worst relative L2)")
            XCTAssertLessThan(errors["f16-\(blocks)"]!, effect + errors["f32-\(blocks)"]! + 1e-5, "\(blocks) block(s), f16 cache")
        }
    }

    /// Lite1 and Lite2 get their block definitions from the same stages as their networks
    /// (`EfficientNetLite.mbconvBlocks`): the cache reproduces their features as Lite0's does.
    func testLite1AndLite2BlockCachesGiveTheStoredFeatures() throws {
        let data = try makeDataset(perClass: 1, testPerClass: 0)
        for backbone in ["efficientnet_lite1", "efficientnet_lite2"] {
            let store = data.deletingLastPathComponent().appendingPathComponent("\(backbone).sqlite")
            let r = try CLI.run("extract", ["--backbone", backbone, "--data", data.path, "--store", store.path, "--quiet", "--json",
                                            "--cache-blocks", "2", "--cache-dtype", "f32"])
            if r.stderr.contains("no weights") || r.stderr.contains("not in the weights cache") { throw XCTSkip("\(backbone) weights not installed") }
            XCTAssertEqual(r.status, 0, r.stderr)
            let (rows, error) = try cachedInputsError(store: store, extractionID: 1, blocks: 2)
            XCTAssertEqual(rows, 2)
            XCTAssertLessThan(error, 1e-5, backbone)
        }
    }

    func testCacheBlocksResumesAndAddsOnlyWhatIsMissing() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        // fp32, so the test does not depend on the CPU (the cached runs resume it either way).
        let plain = try extractCaching(data, store: store, ["--precision", "fp32"])
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

    func testShardsWithBlockCachesMergeToTheUnshardedCache() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 1)
        let dir = data.deletingLastPathComponent()
        let whole = dir.appendingPathComponent("whole.sqlite")
        XCTAssertEqual(try extractCaching(data, store: whole, ["--cache-blocks", "1"]).new_block_inputs, 6)
        var shards: [String] = []
        for i in 0..<2 {
            let s = dir.appendingPathComponent("shard\(i).sqlite")
            _ = try extractCaching(data, store: s, ["--cache-blocks", "1", "--shard", "\(i)/2"])
            shards.append(s.path)
        }
        let merged = dir.appendingPathComponent("merged.sqlite")
        let r = try CLI.run("extract", ["store", "merge", merged.path] + shards)
        XCTAssertEqual(r.status, 0, r.stderr)
        func cache(_ store: URL) throws -> [String: [Float]] {
            let db = try FeatureStore(path: store.path, mode: .readOnly)
            let images = try db.loadFeatures(extractionID: 1)
            var shaOf: [Int64: String] = [:]
            for i in 0..<images.rows { shaOf[images.imageIDs[i]] = images.sha256s[i] }
            let m = try db.loadBlockInputs(extractionID: 1, blocks: 1)
            XCTAssertEqual(m.definition.tensors.count, FineTuneNetwork.lite0Tensors)
            let n = m.definition.inputCount
            return Dictionary(uniqueKeysWithValues: m.keys.enumerated().map { i, k in
                ("\(shaOf[k.imageID]!)-\(k.augIndex)", Array(m.values[i * n ..< (i + 1) * n]))
            })
        }
        let a = try cache(whole), b = try cache(merged)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a, b)
    }

    func testKilledCachingRunNeverLeavesFeaturesWithoutTheirBlockInputs() throws {
        let data = try makeDataset(classes: ["forest", "sea", "street"], perClass: 16, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        try extractAndKill(data, store: store, ["--cache-blocks", "1"])
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let features = try db.existingFeatureKeys(extractionID: 1)
        XCTAssertLessThan(features.count, 192)
        XCTAssertEqual(try db.existingBlockInputKeys(extractionID: 1, blocks: 1), features)
        let resumed = try extractCaching(data, store: store, ["--augment", "3", "--cache-blocks", "1"])
        XCTAssertEqual(resumed.new_features, 192 - features.count)
        XCTAssertEqual(resumed.new_block_inputs, 192 - features.count)
    }

    func testCacheBlocksBeyondTheBackbonesBlocksIsAClearError() throws {
        let data = try makeDataset(perClass: 1, testPerClass: 0)
        // ResNet50 caches the last blocks with an identity shortcut: two.
        let r = try CLI.run("extract", ["--backbone", "resnet50", "--data", data.path, "--store",
                                        data.appendingPathComponent("f.sqlite").path, "--cache-blocks", "3"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--cache-blocks for resnet50 takes 1...2, not 3"), r.stderr)
        let tooMany = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store",
                                              data.appendingPathComponent("f.sqlite").path, "--cache-blocks", "5"])
        XCTAssertNotEqual(tooMany.status, 0)
        XCTAssertTrue(tooMany.stderr.contains("takes 1...4"), tooMany.stderr)
    }
}

extension FineTuneNetwork {
    /// Tensors of EfficientNet-Lite0's last block and head (what `--cache-blocks 1` stores).
    static var lite0Tensors: Int { (try? efficientNetLite0(lastBlocks: 1).requiredTensors().count) ?? 0 }
}
