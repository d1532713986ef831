import FeatureStore
import Foundation
import GRDB
import XCTest

/// Schema step 7 ("add-unlabeled-images"): images without a class, split `unlabeled`, class index NULL.
final class UnlabeledImagesTests: StoreTestCase {
    func unlabeledImages(datasetID: Int64, range: Range<Int>) -> [ImageRecord] {
        range.map { i in
            ImageRecord(datasetID: datasetID, sha256: sha("unlabeled-\(i)"), path: "unlabeled/u\(i).jpg",
                        classIndex: ImageSplit.noClass, split: .unlabeled, width: 50, height: 50)
        }
    }

    func testUnlabeledImagesAreStoredLoadedExportedAndMerged() throws {
        let path = storePath()
        let (store, dataset, extraction) = try populatedStore(path: path, count: 8, augs: 2)
        let ids = try store.upsertImages(unlabeledImages(datasetID: dataset.id, range: 0..<3))
        try store.insertFeatures(extractionID: extraction.id, rows: ids.enumerated().flatMap { i, id in
            (0..<2).map { FeatureRow(imageID: id, augIndex: $0, values: vector("unlabeled-\(i)", aug: $0, dim: 8)) }
        })
        try store.recordImageFiles([ImageFileRecord(datasetID: dataset.id, path: "unlabeled/u0.jpg", sha256: sha("unlabeled-0"),
                                                    classIndex: ImageSplit.noClass, split: .unlabeled)])

        let u = try store.loadFeatures(extractionID: extraction.id, split: .unlabeled)
        XCTAssertEqual(u.rows, 6)
        XCTAssertEqual(Set(u.labels), [ImageSplit.noClass])
        XCTAssertEqual(Set(u.splits), [.unlabeled])
        XCTAssertEqual(u.values, ids.indices.flatMap { i in (0..<2).flatMap { vector("unlabeled-\(i)", aug: $0, dim: 8) } })
        // The labeled splits are as before.
        XCTAssertEqual(try store.loadFeatures(extractionID: extraction.id, split: .train).rows
                       + store.loadFeatures(extractionID: extraction.id, split: .test).rows, 16)
        XCTAssertEqual(try store.images(datasetID: dataset.id).filter { $0.split == .unlabeled }.map(\.classIndex), [-1, -1, -1])
        XCTAssertEqual(try store.imageFiles(datasetID: dataset.id).map(\.classIndex), [ImageSplit.noClass])

        // Exported with class index -1 and no class name.
        let dir = directory.appendingPathComponent("export")
        try store.exportNPY(extractionID: extraction.id, to: dir)
        let csv = try String(contentsOf: dir.appendingPathComponent("images.csv"), encoding: .utf8)
        XCTAssertTrue(csv.contains(",unlabeled,-1,,unlabeled/u0.jpg,"), csv)

        // The store refuses a class on an unlabeled image and no class on a labeled one.
        rawExecExpectingFailure(path, "UPDATE images SET class_index = 0 WHERE split = 'unlabeled'")
        rawExecExpectingFailure(path, "UPDATE images SET class_index = NULL WHERE split = 'train'")
        store.close()

        // Merging keeps them unlabeled.
        let merged = storePath("merged.sqlite")
        let report = try FeatureStore.merge(into: merged, from: [path])
        XCTAssertEqual(report.images, 11)
        let m = try FeatureStore(path: merged, mode: .readOnly)
        XCTAssertEqual(try m.loadFeatures(extractionID: 1, split: .unlabeled).values, u.values)
        XCTAssertEqual(try m.imageFiles(datasetID: 1).map(\.split), [.unlabeled])
    }

    /// A store of schema 5 (before step 7) keeps every row and id when step 7 rebuilds its tables,
    /// and then takes unlabeled images.
    func testStepSevenRebuildsImagesWithoutLosingARow() throws {
        let path = storePath()
        let (store, dataset, extraction) = try populatedStore(path: path, count: 8, augs: 2)
        try store.recordImageFiles(try store.images(datasetID: dataset.id).map {
            ImageFileRecord(datasetID: dataset.id, path: $0.path, sha256: $0.sha256, classIndex: $0.classIndex, split: $0.split)
        })
        let images = try store.images(datasetID: dataset.id)
        let features = try store.loadFeatures(extractionID: extraction.id)
        store.close()
        // Back to schema 5 by hand: the tables as step 1 and 4 made them.
        rawExec(path, """
            PRAGMA foreign_keys = OFF;
            CREATE TABLE images_old(id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                sha256 TEXT NOT NULL, path TEXT NOT NULL, class_index INTEGER NOT NULL,
                split TEXT NOT NULL CHECK(split IN ('train', 'test')), width INTEGER NOT NULL, height INTEGER NOT NULL,
                UNIQUE(dataset_id, sha256), FOREIGN KEY(dataset_id, class_index) REFERENCES classes(dataset_id, class_index));
            INSERT INTO images_old SELECT id, dataset_id, sha256, path, class_index, split, width, height FROM images;
            DROP TABLE images;
            ALTER TABLE images_old RENAME TO images;
            ALTER TABLE images ADD COLUMN exclusion TEXT;
            CREATE INDEX images_by_path ON images(dataset_id, path);
            DROP TABLE finetuned_blocks;
            DELETE FROM schema_migrations WHERE version IN (6, 7);
            DELETE FROM grdb_migrations WHERE identifier IN ('add-finetuned-heads', 'add-unlabeled-images');
            PRAGMA user_version = 5;
            """)
        let old = try FeatureStore(path: path, mode: .readOnly)
        XCTAssertEqual(try old.fileSchemaVersion(), 5)
        XCTAssertEqual(try old.loadFeatures(extractionID: extraction.id, split: .unlabeled).rows, 0)
        old.close()

        let migrated = try FeatureStore(path: path, mode: .readWrite)
        XCTAssertEqual(try migrated.fileSchemaVersion(), FeatureStore.schemaVersion)
        XCTAssertEqual(try migrated.images(datasetID: dataset.id), images)
        XCTAssertEqual(try migrated.imageFiles(datasetID: dataset.id).count, 8)
        let after = try migrated.loadFeatures(extractionID: extraction.id)
        XCTAssertEqual(after.values, features.values)
        XCTAssertEqual(after.imageIDs, features.imageIDs)
        XCTAssertEqual(try migrated.upsertImages(unlabeledImages(datasetID: dataset.id, range: 0..<1)).count, 1)
        XCTAssertEqual(try migrated.verify(), [])
    }

    func rawExecExpectingFailure(_ path: String, _ sql: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
            XCTFail("expected the store to refuse: \(sql)", file: file, line: line)
        } catch {}
    }
}
