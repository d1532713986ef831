import Foundation
import GRDB
import WorkbenchSupport

extension FeatureStore {
    /// Finds the extraction with exactly these settings (see `ExtractionSettings` for which fields
    /// count), or creates it. Re-running `extract` with the same settings resumes the same one.
    public func extraction(for settings: ExtractionSettings) throws -> ExtractionRecord {
        try requireWritable("record an extraction")
        var settings = settings
        try validate(&settings)
        let key = try FeatureStore.settingsKey(settings)
        return try write("creating the \(settings.backbone) extraction") { db in
            if let existing = try ExtractionRow.filter(Column("dataset_id") == settings.datasetID && Column("settings_key") == key).fetchOne(db) {
                return existing.record
            }
            var row = ExtractionRow(settingsKey: key, settings: settings,
                                    augmentationHash: SHA256Digest.hex(settings.augmentationPolicy), createdAt: Date())
            try row.insert(db)
            // Read back, so the record holds exactly what the store holds (timestamps to the millisecond).
            guard let stored = try ExtractionRow.fetchOne(db, key: row.id) else {
                throw StoreError.notFound(path: path, what: "extraction just created")
            }
            return stored.record
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
        try read("reading extraction \(id)") { db in try ExtractionRow.fetchOne(db, key: id)?.record }
    }

    /// All extractions (optionally of one backbone and/or dataset), by id.
    public func extractions(backbone: String? = nil, datasetID: Int64? = nil) throws -> [ExtractionRecord] {
        try read("reading extractions") { db in
            var request = ExtractionRow.order(Column("id"))
            if let backbone { request = request.filter(Column("backbone") == backbone) }
            if let datasetID { request = request.filter(Column("dataset_id") == datasetID) }
            return try request.fetchAll(db).map(\.record)
        }
    }

    func requireExtraction(_ id: Int64) throws -> ExtractionRecord {
        guard let record = try extraction(id: id) else { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        return record
    }

    /// Marks an extraction finished (now).
    public func finishExtraction(_ id: Int64) throws {
        try write("finishing extraction \(id)") { db in
            let changed = try ExtractionRow.filter(key: id).updateAll(db, Column("finished_at").set(to: Timestamp.string()))
            if changed == 0 { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        }
    }

    /// Deletes an extraction with its features, failures and heads.
    public func deleteExtraction(_ id: Int64) throws {
        try write("deleting extraction \(id)") { db in
            if try !ExtractionRow.deleteOne(db, key: id) { throw StoreError.notFound(path: path, what: "extraction \(id)") }
        }
    }
}
