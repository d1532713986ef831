import Foundation
import GRDB

extension FeatureStore {
    // MARK: datasets

    /// Finds the dataset with this root, or creates it; extends its class list with any of
    /// `classes` it does not have yet, appended in the given order. Existing classes keep their
    /// indices, so labels never shift when a class folder is added later.
    ///
    /// `name` defaults to the root's last path component.
    public func dataset(root: String, classes: [String], name: String? = nil) throws -> DatasetRecord {
        try requireWritable("record a dataset")
        if Set(classes).count != classes.count {
            throw StoreError.invalidArgument(path: path, reason: "the class list for dataset \(root) has duplicate names")
        }
        return try write("creating dataset \(root)") { db in
            try FeatureStore.dataset(db, root: root, classes: classes, name: name ?? (root as NSString).lastPathComponent)
        }
    }

    /// `dataset(root:classes:name:)` inside a write transaction (merging uses it too).
    static func dataset(_ db: Database, root: String, classes: [String], name: String) throws -> DatasetRecord {
        var dataset = try DatasetRow.filter(Column("root") == root).fetchOne(db)
        if dataset == nil {
            var row = DatasetRow(root: root, name: name, createdAt: Date())
            try row.insert(db)
            dataset = try DatasetRow.fetchOne(db, key: row.id) // as stored (timestamps to the millisecond)
        }
        guard let dataset, let id = dataset.id else { throw DatabaseError(message: "dataset \(root) has no id") }
        var existing = try classNames(db, datasetID: id)
        for className in classes where !existing.contains(className) {
            var row = ClassRow(datasetID: id, classIndex: existing.count, name: className)
            try row.insert(db)
            existing.append(className)
        }
        return try record(db, dataset)
    }

    private static func record(_ db: Database, _ row: DatasetRow) throws -> DatasetRecord {
        let id = row.id ?? 0
        return DatasetRecord(id: id, root: row.root, name: row.name, classes: try classNames(db, datasetID: id),
                             createdAt: row.createdAt)
    }

    /// The dataset with this root, or nil (never creates one; works read-only).
    public func findDataset(root: String) throws -> DatasetRecord? {
        try read("reading dataset \(root)") { db in
            try DatasetRow.filter(Column("root") == root).fetchOne(db).map { try FeatureStore.record(db, $0) }
        }
    }

    /// The dataset with this id, or nil.
    public func dataset(id: Int64) throws -> DatasetRecord? {
        try read("reading dataset \(id)") { db in try DatasetRow.fetchOne(db, key: id).map { try FeatureStore.record(db, $0) } }
    }

    /// All datasets, by id.
    public func datasets() throws -> [DatasetRecord] {
        try read("reading datasets") { db in
            try DatasetRow.order(Column("id")).fetchAll(db).map { try FeatureStore.record(db, $0) }
        }
    }

    /// The class names of a dataset in label order.
    public func classNames(datasetID: Int64) throws -> [String] {
        try read("reading the classes of dataset \(datasetID)") { try FeatureStore.classNames($0, datasetID: datasetID) }
    }

    static func classNames(_ db: Database, datasetID: Int64) throws -> [String] {
        try ClassRow.filter(Column("dataset_id") == datasetID).order(Column("class_index")).fetchAll(db).map(\.name)
    }

    // MARK: images

    /// Inserts or updates images by (dataset, sha256), in one transaction, and returns their ids
    /// in input order.
    ///
    /// - A known sha256 at a new path is a rename: the row keeps its id (and its features) and its
    ///   path, class and split are updated.
    /// - A new sha256 at a known path is a changed file: it is a new image, and the image that had
    ///   that path with other content is deleted together with its features (they described bytes
    ///   that no longer exist).
    /// - Identical content at two paths is one image (the last path wins); its id appears twice.
    @discardableResult
    public func upsertImages(_ images: [ImageRecord]) throws -> [Int64] {
        try requireWritable("record images")
        var classCounts: [Int64: Int] = [:]
        for image in images {
            if classCounts[image.datasetID] == nil {
                classCounts[image.datasetID] = try classNames(datasetID: image.datasetID).count
            }
            try check(image, classCount: classCounts[image.datasetID] ?? 0)
        }
        return try write("storing images") { db in
            // Cached statements: this runs once per image of the dataset on every `extract` run.
            let previous = try db.cachedStatement(sql: "SELECT id, sha256 FROM images WHERE dataset_id = ? AND path = ? AND sha256 <> ?")
            let upsert = try db.cachedStatement(sql: ImageRow.upsertSQL)
            // Content that moves to another path within this batch is a rename, not a deletion.
            let batchContent = Set(images.map { "\($0.datasetID)/\($0.sha256)" })
            var ids: [Int64] = []
            ids.reserveCapacity(images.count)
            for image in images {
                try storeErrors("storing image \(image.path)") {
                    for stale in try Row.fetchAll(previous, arguments: [image.datasetID, image.path, image.sha256])
                    where !batchContent.contains("\(image.datasetID)/\(stale[1] as String)") {
                        _ = try ImageRow.deleteOne(db, key: stale[0] as Int64)
                    }
                    var row = ImageRow(image)
                    row.id = nil
                    guard let id = try Int64.fetchOne(upsert, arguments: StatementArguments(row.databaseDictionary)) else {
                        throw DatabaseError(message: "no id returned")
                    }
                    ids.append(id)
                }
            }
            return ids
        }
    }

    private func check(_ image: ImageRecord, classCount: Int) throws {
        let where_ = "image \(image.path) (dataset \(image.datasetID))"
        if classCount == 0 && image.split != .unlabeled {   // a folder of unlabeled images is a dataset without classes
            throw StoreError.invalidArgument(path: path, reason: "\(where_): dataset \(image.datasetID) does not exist or has no classes; call dataset(root:classes:) first")
        }
        if (image.split == .unlabeled) != (image.classIndex == ImageSplit.noClass) {
            throw StoreError.invalidArgument(path: path, reason: "\(where_) is \(image.split.rawValue) with class index \(image.classIndex); "
                                             + "unlabeled images and only they have class index \(ImageSplit.noClass)")
        }
        if image.split != .unlabeled && (image.classIndex < 0 || image.classIndex >= classCount) {
            throw StoreError.invalidArgument(path: path, reason: "\(where_) has class index \(image.classIndex), but the dataset has \(classCount) classes")
        }
        if image.sha256.count != 64 || !image.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
            throw StoreError.invalidArgument(path: path, reason: "\(where_) has sha256 \"\(image.sha256)\", expected 64 lowercase hex digits")
        }
        if image.width <= 0 || image.height <= 0 {
            throw StoreError.invalidArgument(path: path, reason: "\(where_) has size \(image.width)x\(image.height)")
        }
    }

    /// All images of a dataset, by id.
    public func images(datasetID: Int64) throws -> [ImageRecord] {
        try read("reading the images of dataset \(datasetID)") { db in
            try ImageRow.filter(Column("dataset_id") == datasetID).order(Column("id")).fetchAll(db).map(\.record)
        }
    }

    // MARK: failures

    /// Records an image that could not be processed (one small transaction).
    public func recordFailure(datasetID: Int64?, extractionID: Int64?, path failedPath: String, reason: String) throws {
        try write("recording the failure of \(failedPath)") { db in
            var row = FailureRow(datasetID: datasetID, extractionID: extractionID, path: failedPath, reason: reason, createdAt: Date())
            try row.insert(db)
        }
    }

    /// Recorded failures, oldest first; optionally only those of one extraction.
    public func failures(extractionID: Int64? = nil) throws -> [FailureRecord] {
        try read("reading failures") { db in
            var request = FailureRow.order(Column("id"))
            if let extractionID { request = request.filter(Column("extraction_id") == extractionID) }
            return try request.fetchAll(db).map(\.record)
        }
    }
}
