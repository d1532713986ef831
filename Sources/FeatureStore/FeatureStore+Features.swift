import Foundation
import GRDB
import GRDBSQLite

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
        try insertFeatures(extractionID: extractionID, rows: rows, blockInputs: nil).features
    }

    /// `insertFeatures(extractionID:rows:)` with the batch's block inputs (`extract --cache-blocks`)
    /// in the same transaction, in their definition's dtype, skipped likewise when already stored; their block
    /// definition must be stored first (`saveBlockDefinition`). Returns the rows added of each.
    @discardableResult
    public func insertFeatures(extractionID: Int64, rows: [FeatureRow], blockInputs: BlockInputRows?) throws -> (features: Int, blockInputs: Int) {
        try requireWritable("store features")
        let extraction = try requireExtraction(extractionID)
        let dim = extraction.settings.featureDim
        let dtype = extraction.settings.featureDType
        try checkRows(rows, dim: dim, what: "feature row", extractionID: extractionID, owner: "extraction \(extractionID) (\(extraction.settings.backbone))")
        var blockDim = 0, blockDType = FeatureDType.f16
        if let blockInputs {
            guard let d = try blockDefinition(extractionID: extractionID, blocks: blockInputs.blocks) else {
                throw StoreError.invalidArgument(path: path, reason: "extraction \(extractionID) has no definition of its last \(blockInputs.blocks) block(s); store it (saveBlockDefinition) before their inputs")
            }
            blockDim = d.inputCount; blockDType = d.dtype
            try checkRows(blockInputs.rows, dim: blockDim, what: "block input", extractionID: extractionID,
                          owner: "the \(blockInputs.blocks)-block definition \(d.inputShape)")
        }
        return try write("storing features of extraction \(extractionID)") { db in
            let added = try insertVectors(db, sql: """
                INSERT INTO features(extraction_id, image_id, aug_index, vector) VALUES (?, ?, ?, ?)
                ON CONFLICT(extraction_id, image_id, aug_index) DO NOTHING
                """, keys: [extractionID], rows: rows, dim: dim, dtype: dtype, what: "features", extractionID: extractionID)
            guard let blockInputs else { return (added, 0) }
            let blocks = try insertVectors(db, sql: """
                    INSERT INTO block_inputs(extraction_id, blocks, image_id, aug_index, vector) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(extraction_id, image_id, aug_index, blocks) DO NOTHING
                    """, keys: [extractionID, Int64(blockInputs.blocks)], rows: blockInputs.rows, dim: blockDim, dtype: blockDType,
                    what: "block inputs", extractionID: extractionID)
            return (added, blocks)
        }
    }

    private func checkRows(_ rows: [FeatureRow], dim: Int, what: String, extractionID: Int64, owner: String) throws {
        for row in rows {
            if row.values.count != dim {
                throw StoreError.invalidArgument(path: path, reason: "\(what) for image \(row.imageID) aug \(row.augIndex) has \(row.values.count) values, but \(owner) has dimension \(dim); nothing of this batch was written")
            }
            if row.augIndex < 0 {
                throw StoreError.invalidArgument(path: path, reason: "\(what) for image \(row.imageID) has negative aug index \(row.augIndex)")
            }
        }
    }

    /// Inserts `rows` with `sql`, whose parameters are `keys`, then image id, aug index, vector.
    /// Returns the number of rows added.
    @discardableResult
    private func insertVectors(_ db: Database, sql: String, keys: [Int64], rows: [FeatureRow], dim: Int, dtype: FeatureDType,
                               what: String, extractionID: Int64) throws -> Int {
        // f16 rows are converted into this scratch buffer; f32 rows are bound straight from the array.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, dim * dtype.bytesPerValue), alignment: 16)
        defer { scratch.deallocate() }
        // Hot loop on the C API of GRDB's prepared statement: bind, step, reset per row; the
        // vector is bound in place (no copy, no per-row allocation for f32).
        let insert = try db.makeStatement(sql: sql)
        let handle = insert.sqliteStatement
        defer { sqlite3_clear_bindings(handle) }
        for (i, k) in keys.enumerated() { sqlite3_bind_int64(handle, CInt(i + 1), k) }
        let n = CInt(keys.count)
        var added = 0
        for row in rows {
            sqlite3_bind_int64(handle, n + 1, row.imageID)
            sqlite3_bind_int64(handle, n + 2, Int64(row.augIndex))
            let code = row.values.withUnsafeBytes { values -> CInt in
                let bytes: UnsafeRawBufferPointer
                switch dtype {
                case .f32: bytes = values
                case .f16:
                    VectorCodec.encode(values.assumingMemoryBound(to: Float.self), as: .f16, into: scratch)
                    bytes = UnsafeRawBufferPointer(scratch)
                }
                sqlite3_bind_blob(handle, n + 3, bytes.baseAddress, CInt(bytes.count), nil) // nil: SQLITE_STATIC
                return sqlite3_step(handle)
            }
            if code != SQLITE_DONE {
                let error = stepError(db, insert, code, "storing \(what) for image \(row.imageID) aug \(row.augIndex) of extraction \(extractionID)")
                sqlite3_reset(handle)
                throw error
            }
            sqlite3_reset(handle)
            added += db.changesCount
        }
        return added
    }

    /// Loads the features of one extraction into one contiguous matrix, from one consistent
    /// snapshot. `split` keeps only train or test images; `maxAugIndex` keeps rows with
    /// `augIndex <= maxAugIndex` (0 = only the un-augmented images).
    ///
    /// Every vector's size is checked against the extraction's dimension and dtype; a wrong-size
    /// blob throws `.dimensionMismatch` naming the row. `vectors: false` reads the rows' images,
    /// labels and copies only (`values` empty): for callers that pair them with other data.
    public func loadFeatures(extractionID: Int64, split: ImageSplit? = nil, maxAugIndex: Int? = nil,
                             vectors: Bool = true) throws -> FeatureMatrix {
        try read("loading features of extraction \(extractionID)") { db in
            let extraction = try requireExtraction(extractionID)
            let dim = extraction.settings.featureDim
            let dtype = extraction.settings.featureDType
            let expectedBytes = dim * dtype.bytesPerValue
            let classNames = try self.classNames(datasetID: extraction.settings.datasetID)

            // Images kept out (label conflicts, `extract --conflicts drop`) are never trained or evaluated on.
            var filter = "f.extraction_id = :extraction" + (try Schema.hasImageFiles(db) ? " AND i.exclusion IS NULL" : "")
            var arguments: StatementArguments = ["extraction": extractionID]
            if let split { filter += " AND i.split = :split"; arguments += ["split": split.rawValue] }
            if let maxAugIndex { filter += " AND f.aug_index <= :maxAug"; arguments += ["maxAug": maxAugIndex] }
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM features f JOIN images i ON i.id = f.image_id WHERE \(filter)",
                                        arguments: arguments) ?? 0
            let select = try db.makeStatement(sql: """
                SELECT f.id, f.image_id, f.aug_index, \(vectors ? "f.vector" : "NULL"), i.class_index, i.split, i.path, i.sha256
                FROM features f JOIN images i ON i.id = f.image_id
                WHERE \(filter) ORDER BY f.image_id, f.aug_index
                """)
            try select.setArguments(arguments)
            let handle = select.sqliteStatement
            defer { sqlite3_reset(handle) }
            func int(_ column: CInt) -> Int64 { sqlite3_column_int64(handle, column) }
            func text(_ column: CInt) -> String { sqlite3_column_text(handle, column).map { String(cString: $0) } ?? "" }

            var imageIDs: [Int64] = [], augIndex: [Int] = [], labels: [Int] = []
            var splits: [ImageSplit] = [], paths: [String] = [], shas: [String] = []
            imageIDs.reserveCapacity(rows); augIndex.reserveCapacity(rows); labels.reserveCapacity(rows)
            splits.reserveCapacity(rows); paths.reserveCapacity(rows); shas.reserveCapacity(rows)

            let values = try [Float](unsafeUninitializedCapacity: vectors ? rows * dim : 0) { buffer, initialized in
                initialized = 0
                var index = 0
                // Hot loop on the C API of GRDB's prepared statement: one step per row, the blob is
                // copied (or widened) straight into place.
                while index < rows {
                    let code = sqlite3_step(handle)
                    if code == SQLITE_DONE { break }
                    guard code == SQLITE_ROW else { throw stepError(db, select, code, "loading features of extraction \(extractionID)") }
                    if vectors {
                        let blob = sqlite3_column_blob(handle, 3)
                        let count = Int(sqlite3_column_bytes(handle, 3))
                        if count != expectedBytes {
                            throw StoreError.dimensionMismatch(
                                path: path, row: "features row \(int(0)) (extraction \(extractionID), image \(int(1)) \"\(text(6))\", aug \(int(2)))",
                                expectedBytes: expectedBytes, actualBytes: count)
                        }
                        let out = UnsafeMutableBufferPointer(rebasing: buffer[(index * dim)..<((index + 1) * dim)])
                        VectorCodec.decode(UnsafeRawBufferPointer(start: blob, count: count), as: dtype, into: out)
                    }
                    imageIDs.append(int(1))
                    augIndex.append(Int(int(2)))
                    labels.append(sqlite3_column_type(handle, 4) == SQLITE_NULL ? ImageSplit.noClass : Int(int(4)))
                    splits.append(ImageSplit(rawValue: text(5)) ?? .train)
                    paths.append(text(6))
                    shas.append(text(7))
                    index += 1
                }
                initialized = vectors ? index * dim : 0
            }
            return FeatureMatrix(extractionID: extractionID, rows: imageIDs.count, dim: dim, values: values,
                                 imageIDs: imageIDs, augIndex: augIndex, labels: labels, splits: splits,
                                 paths: paths, sha256s: shas, classNames: classNames)
        }
    }

    /// The store error for a `sqlite3_step` of `statement` that returned `code`, while doing `context`.
    private func stepError(_ db: Database, _ statement: Statement, _ code: CInt, _ context: String) -> StoreError {
        let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
        return StoreError(DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql), path: path, context: context)
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
