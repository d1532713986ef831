import Foundation

extension FeatureStore {
    /// The (image, augmentation) pairs already stored for an extraction, so a resumed run skips them.
    public func existingFeatureKeys(extractionID: Int64) throws -> Set<FeatureKey> {
        let statement = try connection.prepare("SELECT image_id, aug_index FROM features WHERE extraction_id = ?")
        statement.bind(1, extractionID)
        defer { statement.reset() }
        var keys = Set<FeatureKey>()
        while try statement.step() { keys.insert(FeatureKey(imageID: statement.int64(0), augIndex: statement.int(1))) }
        return keys
    }

    /// Number of feature rows of an extraction.
    public func featureCount(extractionID: Int64) throws -> Int {
        let statement = try connection.prepare("SELECT count(*) FROM features WHERE extraction_id = ?")
        statement.bind(1, extractionID)
        defer { statement.reset() }
        _ = try statement.step()
        return statement.int(0)
    }

    /// Stores a batch of vectors in ONE transaction: after a crash either the whole batch is in
    /// the store or none of it. Rows whose (image, aug index) is already stored are skipped, so
    /// re-running is harmless. Every row must have exactly the extraction's dimension; otherwise
    /// nothing of the batch is written. Returns the number of rows actually added.
    @discardableResult
    public func insertFeatures(extractionID: Int64, rows: [FeatureRow]) throws -> Int {
        try requireWritable("store features")
        let extraction = try requireExtraction(extractionID)
        let dim = extraction.settings.featureDim
        let dtype = extraction.settings.featureDType
        for row in rows {
            if row.values.count != dim {
                throw StoreError.invalidArgument(path: path, reason: "feature row for image \(row.imageID) aug \(row.augIndex) has \(row.values.count) values, but extraction \(extractionID) (\(extraction.settings.backbone)) has dimension \(dim); nothing of this batch was written")
            }
            if row.augIndex < 0 {
                throw StoreError.invalidArgument(path: path, reason: "feature row for image \(row.imageID) has negative aug index \(row.augIndex)")
            }
        }
        // f16 rows are converted into this scratch buffer; f32 rows are bound straight from the array.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, dim * dtype.bytesPerValue), alignment: 16)
        defer { scratch.deallocate() }
        return try connection.transaction(write: true) {
            let insert = try connection.prepare("""
                INSERT INTO features(extraction_id, image_id, aug_index, vector) VALUES (?, ?, ?, ?)
                ON CONFLICT(extraction_id, image_id, aug_index) DO NOTHING
                """)
            insert.bind(1, extractionID)
            var added = 0
            // Hot loop: bind, step, reset per row; no per-row allocation for f32.
            for row in rows {
                insert.bind(2, row.imageID)
                insert.bind(3, row.augIndex)
                try row.values.withUnsafeBufferPointer { values in
                    switch dtype {
                    case .f32:
                        insert.bindNoCopy(4, UnsafeRawBufferPointer(values))
                    case .f16:
                        VectorCodec.encode(values, as: .f16, into: scratch)
                        insert.bindNoCopy(4, UnsafeRawBufferPointer(scratch))
                    }
                    try insert.step("storing features for image \(row.imageID) aug \(row.augIndex) of extraction \(extractionID)")
                }
                added += connection.changes
                insert.resetKeepingBindings()
            }
            insert.reset()
            return added
        }
    }

    /// Loads the features of one extraction into one contiguous matrix, from one consistent
    /// snapshot. `split` keeps only train or test images; `maxAugIndex` keeps rows with
    /// `augIndex <= maxAugIndex` (0 = only the un-augmented images).
    ///
    /// Every vector's size is checked against the extraction's dimension and dtype; a wrong-size
    /// blob throws `.dimensionMismatch` naming the row.
    public func loadFeatures(extractionID: Int64, split: ImageSplit? = nil, maxAugIndex: Int? = nil) throws -> FeatureMatrix {
        try readSnapshot {
            let extraction = try requireExtraction(extractionID)
            let dim = extraction.settings.featureDim
            let dtype = extraction.settings.featureDType
            let expectedBytes = dim * dtype.bytesPerValue
            let classNames = try self.classNames(datasetID: extraction.settings.datasetID)

            var filter = "f.extraction_id = ?1"
            if split != nil { filter += " AND i.split = ?2" }
            if maxAugIndex != nil { filter += " AND f.aug_index <= ?3" }
            let count = try connection.prepare("SELECT count(*) FROM features f JOIN images i ON i.id = f.image_id WHERE \(filter)")
            let select = try connection.prepare("""
                SELECT f.id, f.image_id, f.aug_index, f.vector, i.class_index, i.split, i.path, i.sha256
                FROM features f JOIN images i ON i.id = f.image_id
                WHERE \(filter) ORDER BY f.image_id, f.aug_index
                """)
            for statement in [count, select] {
                statement.bind(1, extractionID)
                if let split { statement.bind(2, split.rawValue) }
                if let maxAugIndex { statement.bind(3, maxAugIndex) }
            }
            _ = try count.step("counting features of extraction \(extractionID)")
            let rows = count.int(0)
            count.reset()

            var imageIDs: [Int64] = [], augIndex: [Int] = [], labels: [Int] = []
            var splits: [ImageSplit] = [], paths: [String] = [], shas: [String] = []
            imageIDs.reserveCapacity(rows); augIndex.reserveCapacity(rows); labels.reserveCapacity(rows)
            splits.reserveCapacity(rows); paths.reserveCapacity(rows); shas.reserveCapacity(rows)
            defer { select.reset() }

            let values = try [Float](unsafeUninitializedCapacity: rows * dim) { buffer, initialized in
                initialized = 0
                var row = 0
                // Hot loop: one step per row, the blob is copied (or widened) straight into place.
                while try select.step("loading features of extraction \(extractionID)") {
                    let blob = select.blob(3)
                    if blob.count != expectedBytes {
                        throw StoreError.dimensionMismatch(
                            path: path,
                            row: "features row \(select.int64(0)) (extraction \(extractionID), image \(select.int64(1)) \"\(select.text(6))\", aug \(select.int(2)))",
                            expectedBytes: expectedBytes, actualBytes: blob.count)
                    }
                    guard row < rows else { break }
                    let out = UnsafeMutableBufferPointer(rebasing: buffer[(row * dim)..<((row + 1) * dim)])
                    VectorCodec.decode(blob, as: dtype, into: out)
                    imageIDs.append(select.int64(1))
                    augIndex.append(select.int(2))
                    labels.append(select.int(4))
                    splits.append(select.text(5) == "test" ? .test : .train)
                    paths.append(select.text(6))
                    shas.append(select.text(7))
                    row += 1
                }
                initialized = row * dim
            }
            return FeatureMatrix(extractionID: extractionID, rows: imageIDs.count, dim: dim, values: values,
                                 imageIDs: imageIDs, augIndex: augIndex, labels: labels, splits: splits,
                                 paths: paths, sha256s: shas, classNames: classNames)
        }
    }

    /// Checks every stored vector of an extraction (or of all extractions) has the right size,
    /// without loading them. Throws `.dimensionMismatch` for the first bad row.
    public func checkFeatureSizes(extractionID: Int64? = nil) throws {
        let statement = try connection.prepare("""
            SELECT f.id, f.extraction_id, f.image_id, f.aug_index, length(f.vector),
                   e.feature_dim * CASE e.feature_dtype WHEN 'f16' THEN 2 ELSE 4 END
            FROM features f JOIN extractions e ON e.id = f.extraction_id
            WHERE (?1 IS NULL OR f.extraction_id = ?1)
              AND length(f.vector) <> e.feature_dim * CASE e.feature_dtype WHEN 'f16' THEN 2 ELSE 4 END
            LIMIT 1
            """)
        statement.bind(1, extractionID)
        defer { statement.reset() }
        if try statement.step("checking feature sizes") {
            throw StoreError.dimensionMismatch(
                path: path,
                row: "features row \(statement.int64(0)) (extraction \(statement.int64(1)), image \(statement.int64(2)), aug \(statement.int(3)))",
                expectedBytes: statement.int(5), actualBytes: statement.int(4))
        }
    }
}
