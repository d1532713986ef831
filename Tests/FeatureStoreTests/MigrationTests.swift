import FeatureStore
import Foundation
import XCTest

final class MigrationTests: StoreTestCase {
    /// Schema version 1, written out by hand exactly as the first release created it (frozen:
    /// this must not follow later changes to the library's migrations).
    static let version1SQL = """
        PRAGMA page_size = 65536;
        PRAGMA journal_mode = WAL;
        PRAGMA application_id = 1415005779;
        CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        CREATE TABLE datasets(id INTEGER PRIMARY KEY, root TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE classes(
            dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            class_index INTEGER NOT NULL CHECK(class_index >= 0), name TEXT NOT NULL,
            PRIMARY KEY(dataset_id, class_index), UNIQUE(dataset_id, name));
        CREATE TABLE images(
            id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            sha256 TEXT NOT NULL, path TEXT NOT NULL, class_index INTEGER NOT NULL,
            split TEXT NOT NULL CHECK(split IN ('train', 'test')), width INTEGER NOT NULL, height INTEGER NOT NULL,
            UNIQUE(dataset_id, sha256),
            FOREIGN KEY(dataset_id, class_index) REFERENCES classes(dataset_id, class_index));
        CREATE TABLE extractions(
            id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            settings_key TEXT NOT NULL, backbone TEXT NOT NULL, weights_sha256 TEXT NOT NULL,
            weights_source TEXT NOT NULL, preprocessing TEXT NOT NULL, augmentation_policy TEXT NOT NULL,
            augmentation_hash TEXT NOT NULL, image_size INTEGER NOT NULL, fit TEXT NOT NULL, precision TEXT NOT NULL,
            feature_dtype TEXT NOT NULL CHECK(feature_dtype IN ('f32', 'f16')),
            feature_dim INTEGER NOT NULL CHECK(feature_dim > 0), tool_version TEXT NOT NULL, seed INTEGER NOT NULL,
            created_at TEXT NOT NULL, finished_at TEXT, UNIQUE(dataset_id, settings_key));
        CREATE TABLE features(
            id INTEGER PRIMARY KEY, extraction_id INTEGER NOT NULL REFERENCES extractions(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            aug_index INTEGER NOT NULL CHECK(aug_index >= 0), vector BLOB NOT NULL,
            UNIQUE(extraction_id, image_id, aug_index));
        CREATE TABLE failures(
            id INTEGER PRIMARY KEY, dataset_id INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
            extraction_id INTEGER REFERENCES extractions(id) ON DELETE CASCADE,
            path TEXT NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL);
        INSERT INTO schema_migrations VALUES (1, 'create-datasets-images-extractions-features', '2024-01-01T00:00:00.000Z');
        PRAGMA user_version = 1;
        """

    /// Version-1 content: one dataset, two images, one f32 extraction of dim 2 with one vector each.
    static let version1Data = """
        INSERT INTO datasets VALUES (1, '/data/old', 'old', '2024-01-01T00:00:00.000Z');
        INSERT INTO classes VALUES (1, 0, 'cat'), (1, 1, 'dog');
        INSERT INTO images VALUES (1, 1, '\(String(repeating: "1", count: 64))', 'cat/1.jpg', 0, 'train', 10, 10),
                                  (2, 1, '\(String(repeating: "2", count: 64))', 'dog/2.jpg', 1, 'test', 10, 10);
        INSERT INTO extractions VALUES (1, 1, 'key', 'resnet50', 'w', 'src', 'pre', 'null', 'h', 224, 'center-crop',
                                        'f32', 'f32', 2, '0.0.1', 0, '2024-01-01T00:00:00.000Z', NULL);
        -- little-endian f32: 1.0 = 0000803f, 2.0 = 00000040, 3.0 = 00004040, 4.0 = 00008040
        INSERT INTO features VALUES (1, 1, 1, 0, x'0000803f00000040'), (2, 1, 2, 0, x'0000404000008040');
        INSERT INTO failures VALUES (1, 1, 1, 'bad.jpg', 'truncated JPEG', '2024-01-01T00:00:00.000Z');
        """

    func testVersion1StoreIsMigratedAndKeepsItsData() throws {
        let path = storePath("v1.sqlite")
        rawExec(path, MigrationTests.version1SQL + MigrationTests.version1Data)

        // Read-only cannot migrate: a clear error, file untouched.
        assertStoreError(try FeatureStore(path: path, mode: .readOnly),
                         contains: [path, "schema version 1", "needs version \(FeatureStore.schemaVersion)", "read-write"])

        let store = try FeatureStore(path: path, mode: .readWrite)
        XCTAssertEqual(try store.fileSchemaVersion(), FeatureStore.schemaVersion)
        XCTAssertEqual(try store.appliedMigrationNames().first, "create-datasets-images-extractions-features")
        XCTAssertEqual(try store.appliedMigrationNames().count, FeatureStore.schemaVersion)

        let matrix = try store.loadFeatures(extractionID: 1)
        XCTAssertEqual(matrix.values, [1, 2, 3, 4])
        XCTAssertEqual(matrix.labels, [0, 1])
        XCTAssertEqual(matrix.splits, [.train, .test])
        XCTAssertEqual(matrix.classNames, ["cat", "dog"])
        XCTAssertEqual(try store.failures().map(\.reason), ["truncated JPEG"])

        // Tables added by later migrations work.
        let headID = try store.saveHead(HeadRecord(extractionID: 1, config: "{}", classNames: ["cat", "dog"], weights: Data([1, 2]),
                                                   metrics: "{}", curves: "{}"))
        XCTAssertEqual(try store.head(id: headID).weights, Data([1, 2]))
        XCTAssertEqual(try store.verify(), [])
        store.close()

        // Now at the current version, read-only works.
        let readOnly = try FeatureStore(path: path, mode: .readOnly)
        XCTAssertEqual(try readOnly.info().images, 2)
    }

    func testNewerStoreIsRefusedAndUntouched() throws {
        let path = storePath("future.sqlite")
        try FeatureStore(path: path, mode: .create).close()
        let future = FeatureStore.schemaVersion + 5
        rawExec(path, "INSERT INTO schema_migrations VALUES (\(future), 'something-from-the-future', 'x'); PRAGMA user_version = \(future);")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        for mode in [OpenMode.readWrite, .readOnly, .create] {
            assertStoreError(try FeatureStore(path: path, mode: mode),
                             contains: [path, "schema version \(future)", "up to \(FeatureStore.schemaVersion)", "Upgrade the tool"])
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }

    func testForeignMigrationLineageIsRefused() throws {
        let path = storePath("other.sqlite")
        try FeatureStore(path: path, mode: .create).close()
        rawExec(path, "UPDATE schema_migrations SET name = 'someone-elses-step' WHERE version = 2")
        assertStoreError(try FeatureStore(path: path), contains: [path, "migration 2", "someone-elses-step", "create-sweeps-heads"])
    }

    func testOtherSQLiteDatabaseIsNotAFeatureStore() throws {
        let path = storePath("other.db")
        rawExec(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        assertStoreError(try FeatureStore(path: path, mode: .readWrite), contains: [path, "not a feature store"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }
}
