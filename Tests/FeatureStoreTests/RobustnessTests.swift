import FeatureStore
import Foundation
import XCTest

final class RobustnessTests: StoreTestCase {
    private func contents(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testRandomBytesAreACorruptStoreAndNeverOverwritten() throws {
        let path = storePath("random.sqlite")
        var generator = SystemRandomNumberGenerator()
        let bytes = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try bytes.write(to: URL(fileURLWithPath: path))
        for mode in [OpenMode.create, .readWrite, .readOnly, .immutable] {
            assertStoreError(try FeatureStore(path: path, mode: mode), contains: [path, "damaged", "not modified"])
        }
        XCTAssertEqual(try contents(path), bytes)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))
    }

    /// The -wal file is checkpointed as commits go (every 64 pages, 4 MiB), not only at close: after
    /// 20 MB written in 40 commits it holds at most 64 pages plus one commit's, where SQLite's default
    /// of 1,000 pages (64 MiB at our page size) would have kept all 20 MB in it until the close.
    func testWALIsCheckpointedAsCommitsGo() throws {
        let path = storePath("wal.sqlite")
        let (store, dataset, extraction) = try populatedStore(path: path, count: 1, augs: 1, dim: 2048)
        let dim = 2048, perCommit = 64   // 64 rows x 8 KiB = 0.5 MiB per commit
        let ids = try store.upsertImages(images(datasetID: dataset.id, range: 1..<(1 + 40 * perCommit)))
        for c in 0..<40 {
            let rows = ids[c * perCommit ..< (c + 1) * perCommit].map { FeatureRow(imageID: $0, augIndex: 0, values: [Float](repeating: Float(c), count: dim)) }
            try store.insertFeatures(extractionID: extraction.id, rows: Array(rows))
        }
        let wal = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        let main = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertLessThan(wal, (64 + 16) * (65536 + 24) + 32, "the -wal file: \(wal) bytes")
        XCTAssertGreaterThan(main, 15_000_000, "the checkpoints wrote the rows into the store itself: \(main) bytes")
        store.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))
    }

    func testTruncatedStoreIsRefusedAndNeverOverwritten() throws {
        let path = storePath("truncated.sqlite")
        let (store, _, _) = try populatedStore(path: path, count: 200, augs: 2, dim: 256)
        store.close() // checkpoints and removes the -wal file
        let whole = try contents(path)
        XCTAssertGreaterThan(whole.count, 4 * 65536)

        // Cut at a page boundary (header still promises more pages) and mid-page.
        for cut in [whole.count / 2 / 65536 * 65536, whole.count / 2 + 123, 50] {
            let truncated = whole.prefix(cut)
            try truncated.write(to: URL(fileURLWithPath: path))
            for mode in [OpenMode.readWrite, .readOnly, .create] {
                assertStoreError(try FeatureStore(path: path, mode: mode), contains: [path, "damaged"])
            }
            XCTAssertEqual(try contents(path), truncated, "cut at \(cut)")
        }
    }

    func testDamagedPagesAreAClearError() throws {
        let path = storePath("damaged.sqlite")
        let (store, _, extraction) = try populatedStore(path: path, count: 200, augs: 2, dim: 256)
        store.close()
        var bytes = [UInt8](try contents(path))
        // Scribble over every page after the first (the schema page survives, the data does not).
        for i in stride(from: 65536, to: bytes.count, by: 7) { bytes[i] = UInt8(truncatingIfNeeded: i &* 31) }
        let damaged = Data(bytes)
        try damaged.write(to: URL(fileURLWithPath: path))
        do {
            let reopened = try FeatureStore(path: path, mode: .readWrite)
            _ = try reopened.loadFeatures(extractionID: extraction.id)
            let problems = try reopened.verify()
            XCTAssertFalse(problems.isEmpty, "damage went unnoticed")
        } catch let error as StoreError {
            XCTAssertTrue(error.description.contains(path), error.description)
            XCTAssertTrue(error.description.contains("damaged"), error.description)
            XCTAssertEqual(try contents(path), damaged, "a damaged store must not be modified")
        }
    }

    func testReadOnlyOpenRefusesWritesAndKeepsData() throws {
        let path = storePath()
        let (store, dataset, extraction) = try populatedStore(path: path, count: 4, augs: 1)
        store.close()
        let readOnly = try FeatureStore(path: path, mode: .readOnly)
        let ids = try readOnly.images(datasetID: dataset.id).map { $0.id! }
        assertStoreError(try readOnly.insertFeatures(extractionID: extraction.id,
                                                      rows: [FeatureRow(imageID: ids[0], augIndex: 9, values: [Float](repeating: 0, count: 8))]),
                         contains: [path, "read-only", "kept"])
        assertStoreError(try readOnly.dataset(root: "/new", classes: ["x"]), contains: ["read-only"])
        assertStoreError(try readOnly.saveHead(HeadRecord(extractionID: extraction.id, config: "{}", classNames: [], weights: Data(),
                                                          metrics: "{}", curves: "{}")), contains: ["read-only"])
        XCTAssertEqual(try readOnly.featureCount(extractionID: extraction.id), 4)
    }

    func testNonWritableFileIsAClearErrorWhenOpenedForWriting() throws {
        // Root ignores file permissions, so this can only be checked as an ordinary user.
        try XCTSkipIf(getuid() == 0, "running as root: chmod does not block writes")
        let path = storePath()
        try populatedStore(path: path, count: 2, augs: 1).0.close()
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path) }
        assertStoreError(try FeatureStore(path: path, mode: .readWrite), contains: [path, "not writable"])
        XCTAssertEqual(try FeatureStore(path: path, mode: .readOnly).info().images, 2)
    }

    func testImmutableModeReadsWithoutSideFiles() throws {
        let path = storePath()
        let (store, _, extraction) = try populatedStore(path: path, count: 4, augs: 1)
        try store.vacuum()
        store.close()
        let immutable = try FeatureStore(path: path, mode: .immutable)
        XCTAssertEqual(try immutable.loadFeatures(extractionID: extraction.id).rows, 4)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-shm"))
        assertStoreError(try immutable.finishExtraction(extraction.id), contains: ["read-only"])
    }

    func testFullDiskKeepsCommittedBatches() throws {
        let path = storePath()
        let (store, dataset, extraction) = try populatedStore(path: path, count: 10, augs: 1, dim: 1024)
        let ids = try store.upsertImages(images(datasetID: dataset.id, range: 10..<200))
        // Cap the file at its current size: the next batch cannot grow it.
        try store.setMaxPageCount(1)
        let rows = ids.map { FeatureRow(imageID: $0, augIndex: 0, values: [Float](repeating: 0.5, count: 1024)) }
        assertStoreError(try store.insertFeatures(extractionID: extraction.id, rows: rows),
                         contains: [path, "could not grow", "kept"])
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 10)
        XCTAssertEqual(try store.loadFeatures(extractionID: extraction.id).rows, 10)
        XCTAssertEqual(try store.verify(), [])
        // Once space is available again, the same batch goes in.
        try store.setMaxPageCount(1 << 30)
        XCTAssertEqual(try store.insertFeatures(extractionID: extraction.id, rows: rows), 190)
    }

    func testDirectoryPathIsAClearError() {
        assertStoreError(try FeatureStore(path: directory.path, mode: .create), contains: [directory.path, "directory"])
    }
}
