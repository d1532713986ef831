import Foundation

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
        return try connection.transaction(write: true) {
            let find = try connection.prepare("SELECT id FROM datasets WHERE root = ?")
            find.bind(1, root)
            var datasetID: Int64
            if try find.step() {
                datasetID = find.int64(0)
                find.reset()
            } else {
                find.reset()
                let insert = try connection.prepare("INSERT INTO datasets(root, name, created_at) VALUES (?, ?, ?)")
                insert.bind(1, root)
                insert.bind(2, name ?? (root as NSString).lastPathComponent)
                insert.bind(3, Timestamp.string())
                try insert.step("creating dataset \(root)")
                insert.reset()
                datasetID = connection.lastInsertRowID
            }
            var existing = try classNames(datasetID: datasetID)
            let add = try connection.prepare("INSERT INTO classes(dataset_id, class_index, name) VALUES (?, ?, ?)")
            for className in classes where !existing.contains(className) {
                add.bind(1, datasetID)
                add.bind(2, existing.count)
                add.bind(3, className)
                try add.step("adding class \(className) to dataset \(root)")
                add.reset()
                existing.append(className)
            }
            guard let record = try dataset(id: datasetID) else {
                throw StoreError.notFound(path: path, what: "dataset \(datasetID)")
            }
            return record
        }
    }

    /// The dataset with this root, or nil (never creates one; works read-only).
    public func findDataset(root: String) throws -> DatasetRecord? {
        let find = try connection.prepare("SELECT id FROM datasets WHERE root = ?")
        find.bind(1, root)
        guard try find.step() else { find.reset(); return nil }
        let id = find.int64(0)
        find.reset()
        return try dataset(id: id)
    }

    /// The dataset with this id, or nil.
    public func dataset(id: Int64) throws -> DatasetRecord? {
        let statement = try connection.prepare("SELECT id, root, name, created_at FROM datasets WHERE id = ?")
        statement.bind(1, id)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        let (root, name, created) = (statement.text(1), statement.text(2), statement.text(3))
        statement.reset()
        return DatasetRecord(id: id, root: root, name: name, classes: try classNames(datasetID: id),
                             createdAt: Timestamp.date(created))
    }

    /// All datasets, by id.
    public func datasets() throws -> [DatasetRecord] {
        let statement = try connection.prepare("SELECT id FROM datasets ORDER BY id")
        var ids: [Int64] = []
        while try statement.step() { ids.append(statement.int64(0)) }
        statement.reset()
        return try ids.compactMap { try dataset(id: $0) }
    }

    /// The class names of a dataset in label order.
    public func classNames(datasetID: Int64) throws -> [String] {
        let statement = try connection.prepare("SELECT name FROM classes WHERE dataset_id = ? ORDER BY class_index")
        statement.bind(1, datasetID)
        defer { statement.reset() }
        var names: [String] = []
        while try statement.step() { names.append(statement.text(0)) }
        return names
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
        return try connection.transaction(write: true) {
            let upsert = try connection.prepare("""
                INSERT INTO images(dataset_id, sha256, path, class_index, split, width, height)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(dataset_id, sha256) DO UPDATE SET
                    path = excluded.path, class_index = excluded.class_index, split = excluded.split,
                    width = excluded.width, height = excluded.height
                RETURNING id
                """)
            let previous = try connection.prepare("SELECT id, sha256 FROM images WHERE dataset_id = ? AND path = ? AND sha256 <> ?")
            let delete = try connection.prepare("DELETE FROM images WHERE id = ?")
            // Content that moves to another path within this batch is a rename, not a deletion.
            let batchContent = Set(images.map { "\($0.datasetID)/\($0.sha256)" })
            var ids: [Int64] = []
            ids.reserveCapacity(images.count)
            for image in images {
                previous.bind(1, image.datasetID)
                previous.bind(2, image.path)
                previous.bind(3, image.sha256)
                var stale: [Int64] = []
                while try previous.step("looking up the old content of \(image.path)") {
                    if !batchContent.contains("\(image.datasetID)/\(previous.text(1))") { stale.append(previous.int64(0)) }
                }
                previous.reset()
                for id in stale {
                    delete.bind(1, id)
                    try delete.step("replacing the old content of \(image.path)")
                    delete.reset()
                }

                upsert.bind(1, image.datasetID)
                upsert.bind(2, image.sha256)
                upsert.bind(3, image.path)
                upsert.bind(4, image.classIndex)
                upsert.bind(5, image.split.rawValue)
                upsert.bind(6, image.width)
                upsert.bind(7, image.height)
                guard try upsert.step("storing image \(image.path)") else {
                    throw StoreError.sqlite(path: path, code: 0, message: "no id returned", context: "storing image \(image.path)")
                }
                ids.append(upsert.int64(0))
                upsert.reset()
            }
            return ids
        }
    }

    private func check(_ image: ImageRecord, classCount: Int) throws {
        let where_ = "image \(image.path) (dataset \(image.datasetID))"
        if classCount == 0 {
            throw StoreError.invalidArgument(path: path, reason: "\(where_): dataset \(image.datasetID) does not exist or has no classes; call dataset(root:classes:) first")
        }
        if image.classIndex < 0 || image.classIndex >= classCount {
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
        let statement = try connection.prepare("""
            SELECT id, sha256, path, class_index, split, width, height FROM images WHERE dataset_id = ? ORDER BY id
            """)
        statement.bind(1, datasetID)
        defer { statement.reset() }
        var result: [ImageRecord] = []
        while try statement.step() {
            result.append(ImageRecord(id: statement.int64(0), datasetID: datasetID, sha256: statement.text(1),
                                      path: statement.text(2), classIndex: statement.int(3),
                                      split: ImageSplit(rawValue: statement.text(4)) ?? .train,
                                      width: statement.int(5), height: statement.int(6)))
        }
        return result
    }

    /// Deletes images (and their features) by id, e.g. for files that disappeared from the dataset.
    /// Returns how many were deleted.
    @discardableResult
    public func deleteImages(ids: [Int64]) throws -> Int {
        try requireWritable("delete images")
        return try connection.transaction(write: true) {
            let delete = try connection.prepare("DELETE FROM images WHERE id = ?")
            var count = 0
            for id in ids {
                delete.bind(1, id)
                try delete.step("deleting image \(id)")
                count += connection.changes
                delete.reset()
            }
            return count
        }
    }

    // MARK: failures

    /// Records an image that could not be processed (one small transaction).
    public func recordFailure(datasetID: Int64?, extractionID: Int64?, path failedPath: String, reason: String) throws {
        try requireWritable("record a failure")
        try connection.transaction(write: true) {
            let insert = try connection.prepare("""
                INSERT INTO failures(dataset_id, extraction_id, path, reason, created_at) VALUES (?, ?, ?, ?, ?)
                """)
            insert.bind(1, datasetID)
            insert.bind(2, extractionID)
            insert.bind(3, failedPath)
            insert.bind(4, reason)
            insert.bind(5, Timestamp.string())
            try insert.step("recording the failure of \(failedPath)")
            insert.reset()
        }
    }

    /// Recorded failures, oldest first; optionally only those of one extraction.
    public func failures(extractionID: Int64? = nil) throws -> [FailureRecord] {
        let sql = "SELECT id, dataset_id, extraction_id, path, reason, created_at FROM failures"
            + (extractionID == nil ? "" : " WHERE extraction_id = ?") + " ORDER BY id"
        let statement = try connection.prepare(sql)
        if let extractionID { statement.bind(1, extractionID) }
        defer { statement.reset() }
        var result: [FailureRecord] = []
        while try statement.step() {
            result.append(FailureRecord(id: statement.int64(0), datasetID: statement.optionalInt64(1),
                                        extractionID: statement.optionalInt64(2), path: statement.text(3),
                                        reason: statement.text(4), createdAt: Timestamp.date(statement.text(5))))
        }
        return result
    }
}
