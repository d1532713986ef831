import FeatureStore
import WorkbenchSupport
import Foundation
import XCTest

/// A store written by the tools before the store moved to GRDB (Fixtures/store-v3.sqlite, made by
/// Fixtures/make-store-v3.sh with the binaries of commit 1ef804b) opens, reads the same rows the old
/// tools read, resumes with nothing to recompute, and merges.
final class CompatibilityTests: StoreTestCase {
    struct Expected: Decodable {
        let info: StoreInfo
        let export1: [String: String]
        let export2: [String: String]
    }

    private func fixture() throws -> (path: String, expected: Expected) {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let path = storePath("store-v3.sqlite")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("store-v3.sqlite"), to: URL(fileURLWithPath: path))
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
        return (path, expected)
    }

    /// The same content as the old tools saw: `store info` and the exported files, byte for byte.
    private func assertSameContent(_ store: FeatureStore, _ expected: Expected, file: StaticString = #filePath, line: UInt = #line) throws {
        var info = try store.info()
        info.path = expected.info.path
        info.schemaVersion = expected.info.schemaVersion   // a read-write open migrates it (step 4 adds the file list)
        XCTAssertEqual(info, expected.info, file: file, line: line)
        for (id, digests) in [(Int64(1), expected.export1), (2, expected.export2)] {
            let dir = directory.appendingPathComponent("export-\(UUID().uuidString)")
            try store.exportNPY(extractionID: id, to: dir)
            for (name, digest) in digests {
                XCTAssertEqual(SHA256Digest.hex(try Data(contentsOf: dir.appendingPathComponent(name))), digest,
                               "extraction \(id) \(name)", file: file, line: line)
            }
        }
    }

    func testOldStoreReadsTheSameRows() throws {
        let (path, expected) = try fixture()
        let store = try FeatureStore(path: path, mode: .readOnly)
        XCTAssertEqual(try store.fileSchemaVersion(), 3)
        try assertSameContent(store, expected)
        let heads = try store.heads(extractionID: 1)
        XCTAssertEqual(heads.count, 1)
        XCTAssertEqual(heads.first?.classNames, ["forest", "sea"])
        XCTAssertFalse(heads.first?.weights.isEmpty ?? true)
        XCTAssertEqual(try store.verify(), [])
    }

    func testOldStoreResumesWithNothingRecomputed() throws {
        let (path, expected) = try fixture()
        let store = try FeatureStore(path: path, mode: .readWrite)
        XCTAssertEqual(try store.appliedMigrationNames(),
                       ["create-datasets-images-extractions-features", "create-sweeps-heads", "add-lookup-indexes",
                        "add-image-files-and-exclusions", "add-block-cache", "add-finetuned-heads", "add-unlabeled-images"])
        let dataset = try XCTUnwrap(try store.findDataset(root: "/tmp/fsfixture/data"))
        let images = try store.images(datasetID: dataset.id)
        XCTAssertEqual(images.count, 6)
        // The extractor's resume: the same images get the same ids, the same settings find the
        // same extraction (the settings key is computed as before), and every feature is there.
        XCTAssertEqual(try store.upsertImages(images), images.map { $0.id! })
        for old in try store.extractions() {
            XCTAssertEqual(try FeatureStore.settingsKey(old.settings), old.settingsKey)
            var settings = old.settings
            settings.toolVersion = "a later version"
            XCTAssertEqual(try store.extraction(for: settings).id, old.id)
            let keys = try store.existingFeatureKeys(extractionID: old.id)
            let rows = keys.map { FeatureRow(imageID: $0.imageID, augIndex: $0.augIndex, values: [Float](repeating: 0, count: settings.featureDim)) }
            XCTAssertEqual(try store.insertFeatures(extractionID: old.id, rows: rows), 0)
        }
        try assertSameContent(store, expected)
        store.close()
        // Opened by the new code, it still reads the same in read-only mode.
        try assertSameContent(try FeatureStore(path: path, mode: .readOnly), expected)
    }

    func testOldStoreMergesIntoANewStore() throws {
        let (path, expected) = try fixture()
        let merged = storePath("merged.sqlite")
        let report = try FeatureStore.merge(into: merged, from: [path])
        XCTAssertEqual(report.images, 6)
        XCTAssertEqual(report.features, 18)
        XCTAssertEqual(report.extractions, 2)
        XCTAssertEqual(report.inputs.first?.headsAdded, 1)
        XCTAssertEqual(report.inputs.first?.failuresAdded, 2)
        try assertSameContent(try FeatureStore(path: merged, mode: .readOnly), expected)
    }
}
