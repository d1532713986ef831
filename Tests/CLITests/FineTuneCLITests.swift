import FeatureStore
import FineTuneCore
import Foundation
import HeadTrainerCore
import XCTest

/// `train-head --unfreeze M` (issue #12, step 2) end to end on a small scenes6 store: the fine-tuned
/// head is stored with its blocks, `extract predict` runs backbone -> cached point -> blocks -> head
/// and agrees with the same blocks and head run on the cached inputs, and the errors name the fix.
extension ExtractTests {
    struct FineTuneReport: Decodable {
        struct Metrics: Decodable { let accuracy: Double }
        struct FineTuning: Decodable {
            let unfreeze: Int, cached_blocks: Int, block_lr: Double, bn_mode: String
            struct Frozen: Decodable { let train: Metrics }
            let frozen_head: Frozen
        }
        let head_id: Int64, kind: String, best_epoch: Int, epochs: Int
        let train: Metrics, validation: Metrics?, test: Metrics?
        let fine_tuning: FineTuning?
    }

    func testUnfreezeTrainsStoresAndPredictsAFineTunedHead() throws {
        let data = try makeDataset(perClass: 4, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        func train(_ extra: [String]) throws -> CLI.Result {
            try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--epochs", "2",
                                       "--val-split", "0.25", "--json"] + extra)
        }
        // Features only: the error names the extract command that caches the blocks.
        XCTAssertEqual(try extractCaching(data, store: store, ["--precision", "fp32"]).new_features, 10)   // resumed by the cached runs
        let none = try train(["--unfreeze", "1"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("has no block cache for efficientnet_lite0"), none.stderr)
        XCTAssertTrue(none.stderr.contains("--cache-blocks 1"), none.stderr)

        // f32 cache: the round trip below is then exact to float rounding.
        XCTAssertEqual(try extractCaching(data, store: store, ["--cache-blocks", "2", "--cache-dtype", "f32"]).new_block_inputs, 10)
        let tooMany = try train(["--unfreeze", "3"])
        XCTAssertNotEqual(tooMany.status, 0)
        XCTAssertTrue(tooMany.stderr.contains("caches only the last 2 block(s) of efficientnet_lite0"), tooMany.stderr)
        XCTAssertTrue(tooMany.stderr.contains("--cache-blocks 3"), tooMany.stderr)
        let badLR = try train(["--unfreeze", "1", "--block-lr", "-1"])
        XCTAssertNotEqual(badLR.status, 0)
        XCTAssertTrue(badLR.stderr.contains("block_lr"), badLR.stderr)

        // --unfreeze 1 on a cache of 2: one block runs frozen, one trains.
        let r = try train(["--unfreeze", "1", "--bn-mode", "train", "--block-lr", "1e-4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("fine-tuning epoch 1/2"), r.stderr)
        let out = try JSONDecoder().decode(FineTuneReport.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(out.kind, "finetuned")
        let ft = try XCTUnwrap(out.fine_tuning)
        XCTAssertEqual([ft.unfreeze, ft.cached_blocks], [1, 2])
        XCTAssertEqual(ft.block_lr, 1e-4)
        XCTAssertEqual(ft.bn_mode, "train")
        XCTAssertNotNil(out.test)

        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let blocks = try XCTUnwrap(try db.fineTunedBlocks(headID: out.head_id))
        XCTAssertEqual([blocks.cachedBlocks, blocks.unfreeze], [2, 1])
        XCTAssertEqual(try db.fineTunedHeadIDs(), [out.head_id])
        let trained = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(blocks.definitionJSON.utf8))
        XCTAssertEqual(trained, try FineTuneNetwork.efficientNetLite0(lastBlocks: 1))
        XCTAssertEqual(Set(blocks.tensors.keys), Set(trained.requiredTensors().map(\.name)))

        // extract predict on a test image == the stored head on the image's cached input (copy 0).
        let image = try XCTUnwrap(try FileManager.default.subpathsOfDirectory(atPath: data.appendingPathComponent("test").path)
            .filter { $0.hasSuffix(".jpg") }.sorted().first)
        let path = data.appendingPathComponent("test").appendingPathComponent(image).path
        let p = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(out.head_id)", "--top", "2", "--json", "--no-calibration", path])
        XCTAssertEqual(p.status, 0, p.stderr)
        struct Ranked: Decodable { struct Top: Decodable { let index: Int; let probability: Float }; let top: [Top]? }
        let predicted = try XCTUnwrap(try JSONDecoder().decode([Ranked].self, from: Data(p.stdout.utf8)).first?.top)
        XCTAssertEqual(predicted.count, 2)
        XCTAssertEqual(predicted.map(\.probability).reduce(0, +), 1, accuracy: 1e-5)   // two classes

        let e = try XCTUnwrap(try db.extractions().first)
        let features = try db.loadFeatures(extractionID: e.id, split: .test, maxAugIndex: 0)
        let row = try XCTUnwrap(features.paths.firstIndex { $0.hasSuffix(image) || path.hasSuffix($0) })
        let cache = try db.loadBlockInputs(extractionID: e.id, blocks: 2)
        let i = try XCTUnwrap(cache.keys.firstIndex(of: FeatureKey(imageID: features.imageIDs[row], augIndex: 0)))
        let n = cache.definition.inputCount
        let input = Array(cache.values[i * n ..< (i + 1) * n])
        let cached = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(cache.definition.definitionJSON.utf8))
        let head = try TrainedHead(encoded: try db.head(id: out.head_id).weights)
        let expected = try predictFineTuned(head: head, frozen: try cached.splitForTraining(last: 1).frozen,
                                            frozenTensors: cache.definition.tensors, trained: trained,
                                            trainedTensors: blocks.tensors, inputs: input)
        for t in predicted {
            XCTAssertEqual(t.probability, expected[t.index], accuracy: 1e-5, "class \(t.index)")
        }

        // A sweep's fine-tuning trials on two jobs share one read of the cache; bn_mode without
        // unfreeze is one trial, not two.
        let sweep = data.deletingLastPathComponent().appendingPathComponent("ft.yaml")
        try """
            extractions: [efficientnet_lite0]
            defaults: {epochs: 2, val_split: 0.25}
            parameters: {unfreeze: [0, 1], bn_mode: [frozen, train]}
            """.write(to: sweep, atomically: true, encoding: .utf8)
        let s = try CLI.run("train-head", ["sweep", sweep.path, "--store", store.path, "--jobs", "2", "--quiet"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertTrue(s.stdout.contains("3 of 3 trials"), s.stdout)
        XCTAssertEqual(try FeatureStore(path: store.path, mode: .readOnly).fineTunedHeadIDs().count, 3)

        // The report scores the fine-tuned heads through their blocks, as predict does: its ROC AUCs are
        // the stored test metrics' (on the pooled features instead, they were not), and every confusion
        // link has its gallery section.
        let reportDir = data.deletingLastPathComponent().appendingPathComponent("report")
        let rep = try CLI.run("train-head", ["report", "--store", store.path, "--out", reportDir.path])
        XCTAssertEqual(rep.status, 0, rep.stderr)
        let html = try String(contentsOf: reportDir.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertFalse(try ReportChecks.assertCurvesMatchStoredMetrics(html, db).isEmpty, "no ROC curves in the report")
    }

    /// A run killed between fine-tuning epochs leaves the store as it was: valid, and without a head
    /// (the head and its blocks are written in one transaction at the end).
    func testKilledFineTuningLeavesTheStoreValidAndHeadless() throws {
        let data = try makeDataset(perClass: 4, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("k.sqlite")
        XCTAssertEqual(try extractCaching(data, store: store, ["--cache-blocks", "1"]).new_block_inputs, 8)
        let (stderr, killed) = try CLI.runAndKill("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0",
                                                                 "--unfreeze", "1", "--epochs", "1000", "--patience", "0",
                                                                 "--val-split", "0.25"], when: "fine-tuning epoch 2/1000")
        XCTAssertTrue(killed, stderr)
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        XCTAssertEqual(try db.verify(), [])
        XCTAssertEqual(try db.heads(extractionID: 1).count, 0)
        XCTAssertEqual(try db.fineTunedHeadIDs(), [])
        XCTAssertEqual(try db.featureCount(extractionID: 1), 8)
    }
}
