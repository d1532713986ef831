import Foundation
import GRDB

extension FeatureStore {
    /// The (image, augmentation) pairs already stored for an extraction, so a resumed run skips them.
    public func existingFeatureKeys(extractionID: Int64) throws -> Set<FeatureKey> {
        try read("reading the feature keys of extraction \(extractionID)") { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT image_id, aug_index FROM features WHERE extraction_id = ?",
                                           arguments: [extractionID])
            var keys = Set<FeatureKey>()
            while let row = try rows.next() { keys.insert(FeatureKey(imageID: row[0], augIndex: row[1])) }
            return keys
        }
    }

    /// Number of feature rows of an extraction.
    public func featureCount(extractionID: Int64) throws -> Int {
        try read("counting the features of extraction \(extractionID)") { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM features WHERE extraction_id = ?", arguments: [extractionID]) ?? 0
        }
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
        return try write("storing features of extraction \(extractionID)") { db in
            let insert = try db.cachedStatement(sql: """
                INSERT INTO features(extraction_id, image_id, aug_index, vector) VALUES (?, ?, ?, ?)
                ON CONFLICT(extraction_id, image_id, aug_index) DO NOTHING
                """)
            var added = 0
            // Hot loop: the vector is bound without a copy (GRDB binds a blob argument in place).
            for row in rows {
                try row.values.withUnsafeBytes { values in
                    let bytes: UnsafeRawBufferPointer
                    switch dtype {
                    case .f32: bytes = values
                    case .f16:
                        VectorCodec.encode(values.assumingMemoryBound(to: Float.self), as: .f16, into: scratch)
                        bytes = UnsafeRawBufferPointer(scratch)
                    }
                    let blob = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: bytes.baseAddress!), count: bytes.count,
                                    deallocator: .none)
                    try storeErrors("storing features for image \(row.imageID) aug \(row.augIndex) of extraction \(extractionID)") {
                        try insert.execute(arguments: [extractionID, row.imageID, row.augIndex, blob])
                    }
                }
                added += db.changesCount
            }
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
        try read("loading features of extraction \(extractionID)") { db in
            let extraction = try requireExtraction(extractionID)
            let dim = extraction.settings.featureDim
            let dtype = extraction.settings.featureDType
            let expectedBytes = dim * dtype.bytesPerValue
            let classNames = try self.classNames(datasetID: extraction.settings.datasetID)

            var filter = "f.extraction_id = :extraction"
            var arguments: StatementArguments = ["extraction": extractionID]
            if let split { filter += " AND i.split = :split"; arguments += ["split": split.rawValue] }
            if let maxAugIndex { filter += " AND f.aug_index <= :maxAug"; arguments += ["maxAug": maxAugIndex] }
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM features f JOIN images i ON i.id = f.image_id WHERE \(filter)",
                                        arguments: arguments) ?? 0
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT f.id, f.image_id, f.aug_index, f.vector, i.class_index, i.split, i.path, i.sha256
                FROM features f JOIN images i ON i.id = f.image_id
                WHERE \(filter) ORDER BY f.image_id, f.aug_index
                """, arguments: arguments)

            var imageIDs: [Int64] = [], augIndex: [Int] = [], labels: [Int] = []
            var splits: [ImageSplit] = [], paths: [String] = [], shas: [String] = []
            imageIDs.reserveCapacity(rows); augIndex.reserveCapacity(rows); labels.reserveCapacity(rows)
            splits.reserveCapacity(rows); paths.reserveCapacity(rows); shas.reserveCapacity(rows)

            let values = try [Float](unsafeUninitializedCapacity: rows * dim) { buffer, initialized in
                initialized = 0
                var index = 0
                // Hot loop: one step per row, the blob is copied (or widened) straight into place.
                while let row = try cursor.next(), index < rows {
                    try row.withUnsafeData(atIndex: 3) { blob in
                        let count = blob?.count ?? 0
                        if count != expectedBytes {
                            throw StoreError.dimensionMismatch(
                                path: path,
                                row: "features row \(row[0] as Int64) (extraction \(extractionID), image \(row[1] as Int64) \"\(row[6] as String)\", aug \(row[2] as Int))",
                                expectedBytes: expectedBytes, actualBytes: count)
                        }
                        let out = UnsafeMutableBufferPointer(rebasing: buffer[(index * dim)..<((index + 1) * dim)])
                        blob?.withUnsafeBytes { VectorCodec.decode($0, as: dtype, into: out) }
                    }
                    imageIDs.append(row[1])
                    augIndex.append(row[2])
                    labels.append(row[4])
                    splits.append(row[5] as String == "test" ? .test : .train)
                    paths.append(row[6])
                    shas.append(row[7])
                    index += 1
                }
                initialized = index * dim
            }
            return FeatureMatrix(extractionID: extractionID, rows: imageIDs.count, dim: dim, values: values,
                                 imageIDs: imageIDs, augIndex: augIndex, labels: labels, splits: splits,
                                 paths: paths, sha256s: shas, classNames: classNames)
        }
    }

    /// Checks every stored vector of an extraction (or of all extractions) has the right size,
    /// without loading them. Throws `.dimensionMismatch` for the first bad row.
    public func checkFeatureSizes(extractionID: Int64? = nil) throws {
        let bad = try read("checking feature sizes") { db in
            try Row.fetchOne(db, sql: """
                SELECT f.id, f.extraction_id, f.image_id, f.aug_index, length(f.vector),
                       e.feature_dim * CASE e.feature_dtype WHEN 'f16' THEN 2 ELSE 4 END
                FROM features f JOIN extractions e ON e.id = f.extraction_id
                WHERE (?1 IS NULL OR f.extraction_id = ?1)
                  AND length(f.vector) <> e.feature_dim * CASE e.feature_dtype WHEN 'f16' THEN 2 ELSE 4 END
                LIMIT 1
                """, arguments: [extractionID])
        }
        if let bad {
            throw StoreError.dimensionMismatch(
                path: path,
                row: "features row \(bad[0] as Int64) (extraction \(bad[1] as Int64), image \(bad[2] as Int64), aug \(bad[3] as Int))",
                expectedBytes: bad[5], actualBytes: bad[4])
        }
    }
}
