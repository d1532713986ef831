import FeatureStore
import Foundation
import WorkbenchSupport
import XCTest

final class StoreTests: StoreTestCase {
    func testNewStoreIsAtCurrentVersionInWALMode() throws {
        let store = try FeatureStore(path: storePath(), mode: .create)
        XCTAssertEqual(try store.fileSchemaVersion(), FeatureStore.schemaVersion)
        XCTAssertEqual(try store.appliedMigrationNames().count, FeatureStore.schemaVersion)
        XCTAssertEqual(try store.pageSize(), 65536)
        store.close()
        // Reopening does not re-run migrations.
        let again = try FeatureStore(path: storePath(), mode: .readWrite)
        XCTAssertEqual(try again.fileSchemaVersion(), FeatureStore.schemaVersion)
    }

    func testMissingFileIsAClearErrorUnlessCreating() {
        assertStoreError(try FeatureStore(path: storePath("missing.sqlite"), mode: .readWrite),
                         contains: ["missing.sqlite", "no such file"])
        assertStoreError(try FeatureStore(path: storePath("missing.sqlite"), mode: .readOnly),
                         contains: ["missing.sqlite"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: storePath("missing.sqlite")))
    }

    func testClassListOnlyAppends() throws {
        let store = try FeatureStore(path: storePath(), mode: .create)
        let first = try store.dataset(root: "/data/x", classes: ["cat", "dog"])
        XCTAssertEqual(first.classes, ["cat", "dog"])
        XCTAssertEqual(first.name, "x")
        // A folder added later (sorted before the others) gets the next index; old labels stay.
        let second = try store.dataset(root: "/data/x", classes: ["ant", "cat", "dog"])
        XCTAssertEqual(second.id, first.id)
        XCTAssertEqual(second.classes, ["cat", "dog", "ant"])
        let third = try store.dataset(root: "/data/x", classes: ["dog"])
        XCTAssertEqual(third.classes, ["cat", "dog", "ant"])
        XCTAssertEqual(try store.datasets().count, 1)
        XCTAssertEqual(try store.findDataset(root: "/data/x")?.id, first.id)
        XCTAssertNil(try store.findDataset(root: "/data/none"))
        assertStoreError(try store.dataset(root: "/data/y", classes: ["a", "a"]), contains: ["duplicate"])
    }

    func testRenamedImageKeepsIdentityChangedImageIsNew() throws {
        let (store, dataset, extraction) = try populatedStore(path: storePath(), count: 4, augs: 1)
        let before = try store.images(datasetID: dataset.id)
        XCTAssertEqual(before.count, 4)

        // Rename image 0 (same bytes): same id, new path, features kept.
        var renamed = before[0]
        renamed.path = "class0/renamed.jpg"
        renamed.id = nil
        XCTAssertEqual(try store.upsertImages([renamed]), [before[0].id!])
        XCTAssertEqual(try store.images(datasetID: dataset.id).first { $0.id == before[0].id }?.path, "class0/renamed.jpg")
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 4)

        // Change image 1's bytes (new sha, same path): a new image; the stale one and its features go.
        var changed = before[1]
        changed.sha256 = sha("new content")
        changed.id = nil
        let newID = try store.upsertImages([changed])[0]
        XCTAssertNotEqual(newID, before[1].id)
        let after = try store.images(datasetID: dataset.id)
        XCTAssertEqual(after.count, 4)
        XCTAssertNil(after.first { $0.id == before[1].id })
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 3)
        XCTAssertFalse(try store.existingFeatureKeys(extractionID: extraction.id).contains(FeatureKey(imageID: before[1].id!, augIndex: 0)))

        // Swap within one batch: image 2's content moves to image 3's path and image 3's content
        // to image 2's path. Both are renames; nothing is deleted.
        var a = before[2], b = before[3]
        (a.path, b.path) = (b.path, a.path)
        a.id = nil; b.id = nil
        XCTAssertEqual(try store.upsertImages([a, b]), [before[2].id!, before[3].id!])
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 3)
    }

    func testImageValidationNamesTheImage() throws {
        let store = try FeatureStore(path: storePath(), mode: .create)
        let dataset = try store.dataset(root: "/d", classes: ["a", "b"])
        var image = images(datasetID: dataset.id, range: 0..<1, classes: 2)[0]
        image.classIndex = 5
        assertStoreError(try store.upsertImages([image]), contains: [image.path, "class index 5", "2 classes"])
        image.classIndex = 0
        image.sha256 = "XYZ"
        assertStoreError(try store.upsertImages([image]), contains: [image.path, "sha256"])
        XCTAssertEqual(try store.images(datasetID: dataset.id).count, 0)
    }

    func testExtractionFindOrCreateBySettings() throws {
        let store = try FeatureStore(path: storePath(), mode: .create)
        let dataset = try store.dataset(root: "/d", classes: ["a"])
        let one = try store.extraction(for: settings(datasetID: dataset.id))
        // Same settings written differently (key order, spacing), another tool version and
        // weights location: the same extraction.
        var same = settings(datasetID: dataset.id, policy: #"{ "crops": 2, "flip": true }"#)
        same.toolVersion = "0.2.0"
        same.weightsSource = "https://example.org/w.bin"
        XCTAssertEqual(try store.extraction(for: same).id, one.id)
        XCTAssertEqual(one.settings.augmentationPolicy, #"{"crops":2,"flip":true}"#)
        XCTAssertEqual(one.augmentationHash, SHA256Digest.hex(#"{"crops":2,"flip":true}"#))
        // A different seed or dtype is a different extraction.
        XCTAssertNotEqual(try store.extraction(for: settings(datasetID: dataset.id, seed: 8)).id, one.id)
        XCTAssertNotEqual(try store.extraction(for: settings(datasetID: dataset.id, dtype: .f16)).id, one.id)
        XCTAssertEqual(try store.extractions().count, 3)
        XCTAssertEqual(try store.extractions(backbone: "tiny").count, 3)
        XCTAssertEqual(try store.extractions(backbone: "other").count, 0)
        XCTAssertNil(one.finishedAt)
        try store.finishExtraction(one.id)
        XCTAssertNotNil(try store.extraction(id: one.id)?.finishedAt)
        assertStoreError(try store.extraction(for: settings(datasetID: dataset.id, policy: "{not json")),
                         contains: ["augmentation policy", "not valid JSON"])
        assertStoreError(try store.extraction(for: settings(datasetID: 99)), contains: ["dataset 99"])
    }

    func testInsertingTheSameRowsTwiceAddsNothing() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 10, augs: 2)
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 20)
        let before = try store.loadFeatures(extractionID: extraction.id)
        // Same keys again, even with different values: nothing added, nothing changed.
        let rows = zip(before.imageIDs, before.augIndex).map { FeatureRow(imageID: $0, augIndex: $1, values: [Float](repeating: 1, count: 8)) }
        XCTAssertEqual(try store.insertFeatures(extractionID: extraction.id, rows: rows), 0)
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 20)
        XCTAssertEqual(try store.loadFeatures(extractionID: extraction.id).values, before.values)
        XCTAssertEqual(try store.existingFeatureKeys(extractionID: extraction.id).count, 20)
    }

    func testLoadFeaturesMatrixAndFilters() throws {
        let (store, dataset, extraction) = try populatedStore(path: storePath(), count: 12, augs: 3, dim: 16)
        let all = try store.loadFeatures(extractionID: extraction.id)
        XCTAssertEqual(all.rows, 36)
        XCTAssertEqual(all.dim, 16)
        XCTAssertEqual(all.values.count, 36 * 16)
        XCTAssertEqual(all.classNames, ["a", "b", "c"])
        let images = try store.images(datasetID: dataset.id)
        for r in 0..<all.rows {
            let i = images.firstIndex { $0.id == all.imageIDs[r] }!
            XCTAssertEqual(Array(all.row(r)), vector("image-\(i)", aug: all.augIndex[r], dim: 16))
            XCTAssertEqual(all.labels[r], i % 3)
            XCTAssertEqual(all.paths[r], images[i].path)
            XCTAssertEqual(all.sha256s[r], images[i].sha256)
            XCTAssertEqual(all.splits[r], images[i].split)
        }
        // Ordered by (image, aug).
        XCTAssertEqual(zip(all.imageIDs, all.augIndex).map { "\($0)/\($1)" },
                       images.flatMap { img in (0..<3).map { "\(img.id!)/\($0)" } })
        let test = try store.loadFeatures(extractionID: extraction.id, split: .test)
        XCTAssertEqual(test.rows, 3 * 3)
        XCTAssertTrue(test.splits.allSatisfy { $0 == .test })
        let originals = try store.loadFeatures(extractionID: extraction.id, split: .train, maxAugIndex: 0)
        XCTAssertEqual(originals.rows, 9)
        XCTAssertTrue(originals.augIndex.allSatisfy { $0 == 0 })
        assertStoreError(try store.loadFeatures(extractionID: 42), contains: ["extraction 42"])
    }

    func testF16RoundTrip() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 5, augs: 1, dim: 64, dtype: .f16)
        let matrix = try store.loadFeatures(extractionID: extraction.id)
        XCTAssertEqual(matrix.rows, 5)
        let images = try store.images(datasetID: extraction.settings.datasetID)
        for r in 0..<matrix.rows {
            let i = images.firstIndex { $0.id == matrix.imageIDs[r] }!
            let original = vector("image-\(i)", aug: 0, dim: 64)
            XCTAssertEqual(Array(matrix.row(r)), original.map { Float(Float16($0)) })
            for (x, y) in zip(matrix.row(r), original) { XCTAssertEqual(x, y, accuracy: abs(y) / 1000 + 1e-4) }
        }
        // Stored as 2 bytes per value.
        let info = try store.info()
        XCTAssertEqual(info.extractions.first?.featureDType, "f16")
    }

    func testHalfConversionMatchesSwiftForEveryBitPattern() {
        let bits = (0...UInt16.max).map { $0 }
        let data = bits.withUnsafeBytes { Data($0) }
        let decoded = VectorCodec.decode(data, as: .f16)
        XCTAssertEqual(decoded.count, 65536)
        for (b, value) in zip(bits, decoded) {
            let expected = Float(Float16(bitPattern: b))
            if expected.isNaN {
                XCTAssertTrue(value.isNaN, "bits \(b)")
            } else if value.bitPattern != expected.bitPattern {
                XCTFail("bits \(String(b, radix: 16)): \(value) != \(expected)")
            }
        }
        let values: [Float] = [0, -0, 1, -2.5, 65504, 1e-7, .infinity, 3.14159]
        XCTAssertEqual(VectorCodec.decode(VectorCodec.encode(values, as: .f16), as: .f16), values.map { Float(Float16($0)) })
        XCTAssertEqual(VectorCodec.decode(VectorCodec.encode(values)), values)
    }

    func testWrongDimensionIsRefusedOnInsertAndDetectedOnRead() throws {
        let (store, dataset, extraction) = try populatedStore(path: storePath(), count: 3, augs: 1, dim: 8)
        let newIDs = try store.upsertImages(images(datasetID: dataset.id, range: 3..<5))
        let rows = [FeatureRow(imageID: newIDs[0], augIndex: 0, values: [Float](repeating: 0, count: 8)),
                    FeatureRow(imageID: newIDs[1], augIndex: 0, values: [Float](repeating: 0, count: 7))]
        assertStoreError(try store.insertFeatures(extractionID: extraction.id, rows: rows),
                         contains: ["image \(newIDs[1])", "7 values", "dimension 8", "nothing of this batch"])
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 3)
        store.close()

        // Damage one blob behind the store's back: the read names the row.
        rawExec(storePath(), "UPDATE features SET vector = zeroblob(12) WHERE id = 2")
        let reopened = try FeatureStore(path: storePath(), mode: .readOnly)
        assertStoreError(try reopened.loadFeatures(extractionID: extraction.id),
                         contains: ["features row 2", "extraction \(extraction.id)", "12 bytes", "32 bytes", storePath()])
        assertStoreError(try reopened.checkFeatureSizes(), contains: ["features row 2"])
    }

    func testUnknownImageIsAForeignKeyErrorAndRollsBackTheBatch() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 2, augs: 1)
        let ids = Array(try store.existingFeatureKeys(extractionID: extraction.id)).map(\.imageID)
        let rows = [FeatureRow(imageID: ids[0], augIndex: 5, values: [Float](repeating: 0, count: 8)),
                    FeatureRow(imageID: 999, augIndex: 0, values: [Float](repeating: 0, count: 8))]
        assertStoreError(try store.insertFeatures(extractionID: extraction.id, rows: rows), contains: ["image 999", "FOREIGN KEY"])
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 2)
    }

    func testFailuresAndInfoJSONShape() throws {
        let (store, dataset, extraction) = try populatedStore(path: storePath(), count: 4, augs: 2)
        try store.recordFailure(datasetID: dataset.id, extractionID: extraction.id, path: "class0/broken.jpg", reason: "not a JPEG")
        try store.recordFailure(datasetID: dataset.id, extractionID: nil, path: "class1/empty.jpg", reason: "empty file")
        XCTAssertEqual(try store.failures().count, 2)
        XCTAssertEqual(try store.failures(extractionID: extraction.id).map(\.path), ["class0/broken.jpg"])

        let info = try store.info()
        XCTAssertEqual(info.images, 4)
        XCTAssertEqual(info.failureCount, 2)
        let json = try JSONSerialization.jsonObject(with: Data(info.jsonString().utf8)) as! [String: Any]
        XCTAssertEqual(json["images"] as? Int, 4)
        XCTAssertEqual(json["schema_version"] as? Int, FeatureStore.schemaVersion)
        let extractions = json["extractions"] as! [[String: Any]]
        XCTAssertEqual(extractions.count, 1)
        XCTAssertEqual(extractions[0]["id"] as? Int, Int(extraction.id))
        XCTAssertEqual(extractions[0]["backbone"] as? String, "tiny")
        XCTAssertEqual(extractions[0]["features"] as? Int, 8)
        XCTAssertEqual(extractions[0]["images"] as? Int, 4)
        XCTAssertEqual(extractions[0]["feature_dim"] as? Int, 8)
        XCTAssertTrue(extractions[0].keys.contains("finished_at")) // present even while null
        XCTAssertTrue(extractions[0]["finished_at"] is NSNull)
        let failures = json["failures"] as! [[String: Any]]
        XCTAssertEqual(failures.map { $0["path"] as? String }, ["class0/broken.jpg", "class1/empty.jpg"])
        XCTAssertEqual(failures.map { $0["reason"] as? String }, ["not a JPEG", "empty file"])
        let datasets = json["datasets"] as! [[String: Any]]
        XCTAssertEqual(datasets[0]["classes"] as? [String], ["a", "b", "c"])
        XCTAssertEqual(datasets[0]["train_images"] as? Int, 3)
        XCTAssertEqual(try store.info(maxFailures: 1).failures.map(\.path), ["class1/empty.jpg"])
        // Round-trips through Codable.
        XCTAssertEqual(try JSONDecoder().decode(StoreInfo.self, from: Data(info.jsonString().utf8)), info)
    }

    func testHeadsSweepsAndTrialResume() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 2, augs: 1)
        let weights = VectorCodec.encode([1, 2, 3, 4.5])
        let plain = try store.saveHead(HeadRecord(extractionID: extraction.id, config: #"{"lr":0.1}"#, classNames: ["a", "b", "c"],
                                                  weights: weights, metrics: #"{"accuracy":0.9}"#, curves: "[]"))
        let loaded = try store.head(id: plain)
        XCTAssertEqual(loaded.classNames, ["a", "b", "c"])
        XCTAssertEqual(VectorCodec.decode(loaded.weights), [1, 2, 3, 4.5])
        XCTAssertEqual(loaded.metrics, #"{"accuracy":0.9}"#)
        XCTAssertNil(loaded.sweepID)

        let sweep = try store.sweep(name: "lr-sweep", config: #"{"lr":[0.1,0.01]}"#)
        XCTAssertEqual(try store.sweep(name: "lr-sweep", config: #"{"other":1}"#).id, sweep.id)
        XCTAssertEqual(try store.sweep(name: "lr-sweep", config: "{}").config, #"{"lr":[0.1,0.01]}"#)
        XCTAssertNil(try store.trial(sweepID: sweep.id, trialKey: "lr=0.1"))
        var trial = HeadRecord(extractionID: extraction.id, config: #"{"lr":0.1}"#, classNames: ["a", "b", "c"], weights: weights,
                               metrics: #"{"accuracy":0.5}"#, curves: #"{"loss":[1,0.5]}"#, sweepID: sweep.id, trialKey: "lr=0.1")
        let trialID = try store.saveHead(trial)
        XCTAssertEqual(try store.trial(sweepID: sweep.id, trialKey: "lr=0.1")?.id, trialID)
        // Re-running a trial replaces it (same id), never duplicates it.
        trial.metrics = #"{"accuracy":0.6}"#
        XCTAssertEqual(try store.saveHead(trial), trialID)
        XCTAssertEqual(try store.trial(sweepID: sweep.id, trialKey: "lr=0.1")?.metrics, #"{"accuracy":0.6}"#)
        XCTAssertEqual(try store.trialKeys(sweepID: sweep.id), ["lr=0.1"])
        XCTAssertEqual(try store.heads(sweepID: sweep.id).count, 1)
        XCTAssertEqual(try store.heads(extractionID: extraction.id).count, 2)
        XCTAssertEqual(try store.sweeps().map(\.name), ["lr-sweep"])

        trial.trialKey = nil
        assertStoreError(try store.saveHead(trial), contains: ["sweepID and trialKey"])
        assertStoreError(try store.saveHead(HeadRecord(extractionID: extraction.id, config: "{", classNames: [], weights: Data(),
                                                       metrics: "{}", curves: "{}")), contains: ["config is not valid JSON"])
        assertStoreError(try store.head(id: 999), contains: ["head 999"])
        try store.deleteHead(id: plain)
        XCTAssertEqual(try store.heads(extractionID: extraction.id).count, 1)
        XCTAssertEqual(try store.info().heads, 1)
    }

    func testDeleteExtractionAndVacuum() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 50, augs: 2, dim: 512)
        try store.deleteExtraction(extraction.id)
        XCTAssertEqual(try store.featureCount(extractionID: extraction.id), 0)
        try store.vacuum()
        XCTAssertEqual(try store.verify(), [])
        XCTAssertEqual(try store.info().extractions.count, 0)
    }
}
