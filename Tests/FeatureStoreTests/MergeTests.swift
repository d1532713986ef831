import FeatureStore
import Foundation
import XCTest

final class MergeTests: StoreTestCase {
    let imageCount = 30

    /// Writes a store holding the images `indices` (in that order) with two extractions: "tiny"
    /// (f32, dim 8, 2 augmentations) and "small" (f16, dim 4, 1 augmentation).
    private func writeStore(_ path: String, indices: [Int], classes: [String] = ["a", "b", "c"], seed: Int64 = 7,
                            failure: String? = nil) throws {
        let store = try FeatureStore(path: path, mode: .create)
        let dataset = try store.dataset(root: "/data/scenes", classes: classes)
        let names = ["a", "b", "c"]
        let records = indices.map { i -> ImageRecord in
            var image = images(datasetID: dataset.id, range: i..<(i + 1))[0]
            image.classIndex = dataset.classes.firstIndex(of: names[i % 3])!
            return image
        }
        let ids = try store.upsertImages(records)
        let tiny = try store.extraction(for: settings(datasetID: dataset.id, backbone: "tiny", dim: 8, seed: seed))
        let small = try store.extraction(for: settings(datasetID: dataset.id, backbone: "small", dim: 4, dtype: .f16))
        var tinyRows: [FeatureRow] = [], smallRows: [FeatureRow] = []
        for (i, id) in zip(indices, ids) {
            for aug in 0..<2 { tinyRows.append(FeatureRow(imageID: id, augIndex: aug, values: vector("image-\(i)", aug: aug, dim: 8))) }
            smallRows.append(FeatureRow(imageID: id, augIndex: 0, values: vector("small-\(i)", aug: 0, dim: 4)))
        }
        try store.insertFeatures(extractionID: tiny.id, rows: tinyRows)
        try store.insertFeatures(extractionID: small.id, rows: smallRows)
        try store.finishExtraction(tiny.id)
        try store.finishExtraction(small.id)
        if let failure { try store.recordFailure(datasetID: dataset.id, extractionID: tiny.id, path: failure, reason: "unreadable") }
        store.close()
    }

    /// Everything a store holds, by natural keys (no ids), as sorted lines.
    private func contentLines(_ path: String) throws -> [String] {
        let store = try FeatureStore(path: path, mode: .readOnly)
        var lines: [String] = []
        for dataset in try store.datasets() {
            for image in try store.images(datasetID: dataset.id) {
                lines.append("image \(dataset.root) \(image.sha256) \(image.path) \(dataset.classes[image.classIndex]) \(image.split) \(image.width)x\(image.height)")
            }
        }
        for extraction in try store.extractions() {
            let m = try store.loadFeatures(extractionID: extraction.id)
            lines.append("extraction \(extraction.settingsKey) \(extraction.settings.backbone) rows=\(m.rows) finished=\(extraction.finishedAt != nil)")
            for r in 0..<m.rows {
                lines.append("feature \(extraction.settingsKey) \(m.sha256s[r]) \(m.augIndex[r]) \(m.classNames[m.labels[r]]) \(m.splits[r]) \(m.row(r).map { $0.bitPattern })")
            }
        }
        return lines.sorted()
    }

    func testMergingThreeShardsEqualsOneUnshardedStore() throws {
        let full = storePath("full.sqlite")
        try writeStore(full, indices: Array(0..<imageCount))
        // Shards see images in different orders (so different ids) and one lists classes differently.
        let shards = (0..<3).map { storePath("shard\($0).sqlite") }
        try writeStore(shards[0], indices: Array(stride(from: 0, to: imageCount, by: 3)).reversed(), failure: "x.jpg")
        try writeStore(shards[1], indices: Array(stride(from: 1, to: imageCount, by: 3)), classes: ["c", "a", "b"])
        try writeStore(shards[2], indices: Array(stride(from: 2, to: imageCount, by: 3)).shuffled())

        let merged = storePath("merged.sqlite")
        let report = try FeatureStore.merge(into: merged, from: shards)
        XCTAssertEqual(report.images, imageCount)
        XCTAssertEqual(report.features, imageCount * 3)
        XCTAssertEqual(report.extractions, 2)
        XCTAssertEqual(report.inputs.map(\.imagesAdded), [10, 10, 10])
        XCTAssertEqual(report.inputs.map(\.extractionsAdded), [2, 0, 0])
        XCTAssertEqual(report.inputs.map(\.failuresAdded), [1, 0, 0])
        XCTAssertEqual(report.warnings, [])

        let fullLines = try contentLines(full)
        let mergedLines = try contentLines(merged)
        XCTAssertEqual(fullLines.count, imageCount + 2 + imageCount * 3)
        XCTAssertEqual(mergedLines, fullLines)

        // Merging again adds nothing.
        let again = try FeatureStore.merge(into: merged, from: shards)
        XCTAssertEqual(again.inputs.map(\.featuresAdded), [0, 0, 0])
        XCTAssertEqual(again.inputs.map(\.failuresAdded), [0, 0, 0])
        XCTAssertEqual(try contentLines(merged), fullLines)
        XCTAssertEqual(try FeatureStore(path: merged, mode: .readOnly).verify(), [])
    }

    func testMergeCarriesHeadsAndSweeps() throws {
        let shard = storePath("shard.sqlite")
        try writeStore(shard, indices: [0, 1, 2])
        let store = try FeatureStore(path: shard)
        let extraction = try store.extractions(backbone: "tiny")[0]
        let sweep = try store.sweep(name: "s", config: "{}")
        try store.saveHead(HeadRecord(extractionID: extraction.id, config: "{}", classNames: ["a"], weights: Data([9]),
                                      metrics: "{}", curves: "{}", sweepID: sweep.id, trialKey: "t1"))
        store.close()
        let merged = storePath("merged.sqlite")
        XCTAssertEqual(try FeatureStore.merge(into: merged, from: [shard]).inputs[0].headsAdded, 1)
        XCTAssertEqual(try FeatureStore.merge(into: merged, from: [shard]).inputs[0].headsAdded, 0)
        let out = try FeatureStore(path: merged, mode: .readOnly)
        let outSweep = try out.sweeps()[0]
        XCTAssertEqual(try out.trial(sweepID: outSweep.id, trialKey: "t1")?.weights, Data([9]))
    }

    func testMergeRefusesShardsWithDifferentSettings() throws {
        let a = storePath("a.sqlite"), b = storePath("b.sqlite")
        try writeStore(a, indices: [0, 1, 2])
        try writeStore(b, indices: [3, 4, 5], seed: 8)
        let merged = storePath("merged.sqlite")
        assertStoreError(try FeatureStore.merge(into: merged, from: [a, b]),
                         contains: [a, b, "tiny", "seed: 8 vs 7", "different extraction settings"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged), "nothing may be written when refusing")
    }

    func testMergeRefusesDamagedInputByName() throws {
        let a = storePath("a.sqlite"), bad = storePath("bad.sqlite")
        try writeStore(a, indices: [0, 1, 2])
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: bad))
        let merged = storePath("merged.sqlite")
        assertStoreError(try FeatureStore.merge(into: merged, from: [a, bad]), contains: [bad, "damaged"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged))
        assertStoreError(try FeatureStore.merge(into: a, from: [a]), contains: ["also listed as an input"])
    }
}
