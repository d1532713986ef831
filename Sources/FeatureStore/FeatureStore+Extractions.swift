import Foundation
import WorkbenchSupport

extension FeatureStore {
    static let extractionColumns = """
        id, dataset_id, settings_key, backbone, weights_sha256, weights_source, preprocessing,
        augmentation_policy, augmentation_hash, image_size, fit, precision, feature_dtype, feature_dim,
        tool_version, seed, created_at, finished_at
        """

    /// Finds the extraction with exactly these settings (see `ExtractionSettings` for which fields
    /// count), or creates it. Re-running `extract` with the same settings resumes the same one.
    public func extraction(for settings: ExtractionSettings) throws -> ExtractionRecord {
        try requireWritable("record an extraction")
        var settings = settings
        try validate(&settings)
        let key = try FeatureStore.settingsKey(settings)
        let augmentationHash = SHA256Digest.hex(settings.augmentationPolicy)
        return try connection.transaction(write: true) {
            let find = try connection.prepare("SELECT id FROM extractions WHERE dataset_id = ? AND settings_key = ?")
            find.bind(1, settings.datasetID)
            find.bind(2, key)
            var id: Int64?
            if try find.step() { id = find.int64(0) }
            find.reset()
            if id == nil {
                let insert = try connection.prepare("""
                    INSERT INTO extractions(dataset_id, settings_key, backbone, weights_sha256, weights_source,
                        preprocessing, augmentation_policy, augmentation_hash, image_size, fit, precision,
                        feature_dtype, feature_dim, tool_version, seed, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                insert.bind(1, settings.datasetID)
                insert.bind(2, key)
                insert.bind(3, settings.backbone)
                insert.bind(4, settings.weightsSHA256)
                insert.bind(5, settings.weightsSource)
                insert.bind(6, settings.preprocessing)
                insert.bind(7, settings.augmentationPolicy)
                insert.bind(8, augmentationHash)
                insert.bind(9, settings.imageSize)
                insert.bind(10, settings.fit)
                insert.bind(11, settings.precision)
                insert.bind(12, settings.featureDType.rawValue)
                insert.bind(13, settings.featureDim)
                insert.bind(14, settings.toolVersion)
                insert.bind(15, settings.seed)
                insert.bind(16, Timestamp.string())
                try insert.step("creating the \(settings.backbone) extraction")
                insert.reset()
                id = connection.lastInsertRowID
            }
            guard let id, let record = try extraction(id: id) else {
                throw StoreError.notFound(path: path, what: "extraction just created")
            }
            return record
        }
    }

    private func validate(_ settings: inout ExtractionSettings) throws {
        let what = "extraction settings for \(settings.backbone)"
        if settings.backbone.isEmpty {
            throw StoreError.invalidArgument(path: path, reason: "extraction settings have an empty backbone name")
        }
        if settings.featureDim <= 0 || settings.imageSize <= 0 {
            throw StoreError.invalidArgument(path: path, reason: "\(what) have feature dimension \(settings.featureDim) and image size \(settings.imageSize); both must be positive")
        }
        guard try dataset(id: settings.datasetID) != nil else {
            throw StoreError.invalidArgument(path: path, reason: "\(what) name dataset \(settings.datasetID), which does not exist; call dataset(root:classes:) first")
        }
        guard let canonical = FeatureStore.canonicalJSON(settings.augmentationPolicy) else {
            throw StoreError.invalidArgument(path: path, reason: "\(what) have an augmentation policy that is not valid JSON: \(settings.augmentationPolicy.prefix(200))")
        }
        settings.augmentationPolicy = canonical
    }

    /// JSON rewritten in canonical form (`CanonicalJSON`), so equal policies hash equally; nil if not JSON.
    static func canonicalJSON(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return (try? CanonicalJSON(parsing: trimmed.isEmpty ? "null" : trimmed))?.text
    }

    /// The settings key: sha256 of a canonical JSON object of every field that determines the
    /// feature values. Not in it: the dataset (a key is per dataset anyway), `weightsSource`
    /// and `toolVersion`. Changing what goes in here changes every key: bump "format".
    public static func settingsKey(_ settings: ExtractionSettings) throws -> String {
        let policy = canonicalJSON(settings.augmentationPolicy) ?? settings.augmentationPolicy
        let fields: [String: CanonicalJSON] = [
            "format": .int(1),
            "backbone": .string(settings.backbone),
            "weights_sha256": .string(settings.weightsSHA256),
            "preprocessing": .string(settings.preprocessing),
            "augmentation_policy": .string(policy),
            "image_size": .int(Int64(settings.imageSize)),
            "fit": .string(settings.fit),
            "precision": .string(settings.precision),
            "feature_dtype": .string(settings.featureDType.rawValue),
            "feature_dim": .int(Int64(settings.featureDim)),
            "seed": .int(settings.seed),
        ]
        return CanonicalJSON.object(fields).sha256
    }

    /// The extraction with this id, or nil.
    public func extraction(id: Int64) throws -> ExtractionRecord? {
        let statement = try connection.prepare("SELECT \(FeatureStore.extractionColumns) FROM extractions WHERE id = ?")
        statement.bind(1, id)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return try extractionRecord(statement)
    }

    /// All extractions (optionally of one backbone and/or dataset), by id.
    public func extractions(backbone: String? = nil, datasetID: Int64? = nil) throws -> [ExtractionRecord] {
        var sql = "SELECT \(FeatureStore.extractionColumns) FROM extractions WHERE 1"
        if backbone != nil { sql += " AND backbone = ?" }
        if datasetID != nil { sql += " AND dataset_id = ?" }
        let statement = try connection.prepare(sql + " ORDER BY id")
        var index: Int32 = 1
        if let backbone { statement.bind(index, backbone); index += 1 }
        if let datasetID { statement.bind(index, datasetID) }
        defer { statement.reset() }
        var result: [ExtractionRecord] = []
        while try statement.step() { result.append(try extractionRecord(statement)) }
        return result
    }

    func extractionRecord(_ s: Statement) throws -> ExtractionRecord {
        let id = s.int64(0)
        guard let dtype = FeatureDType(rawValue: s.text(12)) else {
            throw StoreError.corrupt(path: path, reason: "extraction \(id) has unknown feature dtype \"\(s.text(12))\"")
        }
        let settings = ExtractionSettings(
            datasetID: s.int64(1), backbone: s.text(3), weightsSHA256: s.text(4), weightsSource: s.text(5),
            preprocessing: s.text(6), augmentationPolicy: s.text(7), imageSize: s.int(9), fit: s.text(10),
            precision: s.text(11), featureDType: dtype, featureDim: s.int(13), toolVersion: s.text(14),
            seed: s.int64(15))
        return ExtractionRecord(id: id, settingsKey: s.text(2), settings: settings, augmentationHash: s.text(8),
                                createdAt: Timestamp.date(s.text(16)), finishedAt: s.optionalText(17).map(Timestamp.date))
    }

    func requireExtraction(_ id: Int64) throws -> ExtractionRecord {
        guard let record = try extraction(id: id) else { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        return record
    }

    /// Marks an extraction finished (now).
    public func finishExtraction(_ id: Int64) throws {
        try requireWritable("finish an extraction")
        try connection.transaction(write: true) {
            let update = try connection.prepare("UPDATE extractions SET finished_at = ? WHERE id = ?")
            update.bind(1, Timestamp.string())
            update.bind(2, id)
            try update.step("finishing extraction \(id)")
            update.reset()
            if connection.changes == 0 { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        }
    }

    /// Deletes an extraction with its features, failures and heads.
    public func deleteExtraction(_ id: Int64) throws {
        try requireWritable("delete an extraction")
        try connection.transaction(write: true) {
            let delete = try connection.prepare("DELETE FROM extractions WHERE id = ?")
            delete.bind(1, id)
            try delete.step("deleting extraction \(id)")
            delete.reset()
            if connection.changes == 0 { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        }
    }
}
