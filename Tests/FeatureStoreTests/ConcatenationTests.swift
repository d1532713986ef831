import FeatureStore
import Foundation
import XCTest

/// Per-image concatenation of extractions (heads on `a+b` backbones) and the extraction list heads keep.
final class ConcatenationTests: StoreTestCase {
    /// A second extraction ("other", `dim` wide) of the populated store's images, rows inserted in
    /// reverse order and without `skip` (indexes into the (image, copy) list).
    func addExtraction(_ store: FeatureStore, dataset: DatasetRecord, backbone: String = "other", dim: Int = 3,
                       skip: Set<Int> = []) throws -> ExtractionRecord {
        let e = try store.extraction(for: settings(datasetID: dataset.id, backbone: backbone, dim: dim))
        let ids = try store.images(datasetID: dataset.id).compactMap(\.id).sorted()
        var rows: [FeatureRow] = []
        for (i, id) in ids.enumerated() {
            for aug in 0..<2 where !skip.contains(i * 2 + aug) {
                rows.append(FeatureRow(imageID: id, augIndex: aug, values: vector("\(backbone)-\(i)", aug: aug, dim: dim)))
            }
        }
        try store.insertFeatures(extractionID: e.id, rows: rows.reversed())
        return e
    }

    func testRowsAreMatchedByImageAndCopy() throws {
        let (store, dataset, a) = try populatedStore(path: storePath(), count: 12, augs: 2, dim: 8)
        let b = try addExtraction(store, dataset: dataset)
        let ma = try store.loadFeatures(extractionID: a.id, split: .train), mb = try store.loadFeatures(extractionID: b.id, split: .train)
        let both = try FeatureMatrix.concatenating([ma, mb])
        XCTAssertEqual(both.dim, 11)
        XCTAssertEqual(both.rows, ma.rows)
        XCTAssertEqual(both.extractionID, a.id)
        XCTAssertEqual(both.labels, ma.labels)
        let images = try store.images(datasetID: dataset.id).sorted { $0.id! < $1.id! }
        for r in 0..<both.rows {
            let i = images.firstIndex { $0.id == both.imageIDs[r] }!
            XCTAssertEqual(Array(both.row(r)), vector("image-\(i)", aug: both.augIndex[r], dim: 8) + vector("other-\(i)", aug: both.augIndex[r], dim: 3))
        }
        // The same extraction twice: each row repeated.
        let twice = try FeatureMatrix.concatenating([ma, ma])
        for r in 0..<twice.rows { XCTAssertEqual(Array(twice.row(r)), Array(ma.row(r)) + Array(ma.row(r))) }
    }

    func testMissingRowsAreCountedPerInput() throws {
        let (store, dataset, a) = try populatedStore(path: storePath(), count: 12, augs: 2, dim: 8)
        // Image 0 copy 1, image 5 copy 0 and image 5 copy 1 are missing in b.
        let b = try addExtraction(store, dataset: dataset, skip: [1, 10, 11])
        let ma = try store.loadFeatures(extractionID: a.id), mb = try store.loadFeatures(extractionID: b.id)
        XCTAssertThrowsError(try FeatureMatrix.concatenating([ma, mb, ma])) { error in
            let gap = error as? MissingFeatureRows
            XCTAssertEqual(gap?.unionRows, 24)
            XCTAssertEqual(gap?.gaps.map(\.input), [1])
            XCTAssertEqual(gap?.gaps.map(\.count), [3])
            XCTAssertEqual(gap?.gaps.first?.example, FeatureKey(imageID: ma.imageIDs[0], augIndex: 1))
        }
        // Copy 0 only: one row missing.
        let a0 = try store.loadFeatures(extractionID: a.id, maxAugIndex: 0), b0 = try store.loadFeatures(extractionID: b.id, maxAugIndex: 0)
        XCTAssertThrowsError(try FeatureMatrix.concatenating([b0, a0])) { XCTAssertEqual(($0 as? MissingFeatureRows)?.gaps.map(\.count), [1]) }
    }

    /// A head keeps its extractions by settings key: the list still names the right extractions after
    /// `extract store merge` renumbers them.
    func testHeadExtractionsSurviveMerge() throws {
        let (store, dataset, a) = try populatedStore(path: storePath("a.sqlite"), count: 4, augs: 2, dim: 8)
        let b = try addExtraction(store, dataset: dataset)
        let config = #"{"extractions":[{"backbone":"other","settings_key":"\#(b.settingsKey)"},{"backbone":"tiny","settings_key":"\#(a.settingsKey)"}],"hidden":0}"#
        let id = try store.saveHead(HeadRecord(extractionID: b.id, config: config, classNames: ["a", "b", "c"], weights: Data([1]),
                                               metrics: "{}", curves: "{}"))
        XCTAssertEqual(try store.extractions(of: store.head(id: id)).map(\.id), [b.id, a.id])
        XCTAssertEqual(try store.extractions(of: HeadRecord(extractionID: a.id, config: "{}", classNames: [], weights: Data(),
                                                            metrics: "{}", curves: "{}")).map(\.id), [a.id])
        store.close()

        // The output store already has another extraction, so the merged ones get new ids.
        let (out, outDataset, _) = try populatedStore(path: storePath("out.sqlite"), count: 2, augs: 1, dim: 8)
        _ = try addExtraction(out, dataset: outDataset, backbone: "third", dim: 2)
        out.close()
        _ = try FeatureStore.merge(into: storePath("out.sqlite"), from: [storePath("a.sqlite")])
        let merged = try FeatureStore(path: storePath("out.sqlite"), mode: .readOnly)
        let head = try XCTUnwrap(merged.extractions().flatMap { try merged.heads(extractionID: $0.id) }.first)
        XCTAssertEqual(try merged.extractions(of: head).map(\.settingsKey), [b.settingsKey, a.settingsKey])
        XCTAssertNotEqual(head.extractionID, b.id)

        // An extraction the store no longer has is a clear error.
        let gone = HeadRecord(id: 9, extractionID: head.extractionID, config: #"{"extractions":[{"backbone":"x","settings_key":"feed"}]}"#,
                              classNames: [], weights: Data(), metrics: "{}", curves: "{}")
        assertStoreError(try merged.extractions(of: gone), contains: ["head 9", "x extraction", "no longer has"])
    }
}
