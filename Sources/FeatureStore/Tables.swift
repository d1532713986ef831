import Foundation
import GRDB

/// The rows of the store's tables as GRDB records: each struct's `CodingKeys` are the table's
/// columns, so a column is named once, and GRDB maps rows both ways.
///
/// Internal on purpose: the public surface is `FeatureStore` with the records in Records.swift,
/// so no caller depends on the table layout.
protocol TableRow: Codable, FetchableRecord, MutablePersistableRecord {}

extension TableRow {
    /// Timestamps are ISO-8601 UTC text with milliseconds (see `Timestamp`).
    static var databaseDateEncodingStrategy: DatabaseDateEncodingStrategy { .custom { Timestamp.string($0) } }
    static var databaseDateDecodingStrategy: DatabaseDateDecodingStrategy {
        .custom { String.fromDatabaseValue($0).map(Timestamp.date) }
    }
}

/// A row whose `id` is the table's integer primary key, set when the row is inserted.
protocol IdentifiedRow: TableRow {
    var id: Int64? { get set }
}

extension IdentifiedRow {
    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

struct DatasetRow: IdentifiedRow {
    static let databaseTableName = "datasets"
    var id: Int64?
    var root: String
    var name: String
    var createdAt: Date

    enum CodingKeys: String, CodingKey { case id, root, name, createdAt = "created_at" }
}

struct ClassRow: TableRow {
    static let databaseTableName = "classes"
    var datasetID: Int64
    var classIndex: Int
    var name: String

    enum CodingKeys: String, CodingKey { case datasetID = "dataset_id", classIndex = "class_index", name }
}

struct ImageRow: IdentifiedRow {
    static let databaseTableName = "images"
    var id: Int64?
    var datasetID: Int64
    var sha256: String
    var path: String
    /// NULL for unlabeled images (`ImageSplit.noClass` in the record).
    var classIndex: Int?
    var split: ImageSplit
    var width: Int
    var height: Int
    var exclusion: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, datasetID = "dataset_id", sha256, path, classIndex = "class_index", split, width, height, exclusion
    }

    /// Inserts the row, or, for a known (dataset, sha256), keeps its id and takes the new path,
    /// class, split and size; returns the id. Arguments by column name (`databaseDictionary`).
    static let upsertSQL: String = {
        let columns = CodingKeys.allCases.map(\.rawValue)
        let updated = CodingKeys.allCases.filter { ![.id, .datasetID, .sha256].contains($0) }.map(\.rawValue)
        return """
            INSERT INTO images(\(columns.joined(separator: ", "))) VALUES (\(columns.map { ":" + $0 }.joined(separator: ", ")))
            ON CONFLICT(dataset_id, sha256) DO UPDATE SET \(updated.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
            RETURNING id
            """
    }()

    init(_ r: ImageRecord) {
        id = r.id; datasetID = r.datasetID; sha256 = r.sha256; path = r.path; classIndex = r.classIndex == ImageSplit.noClass ? nil : r.classIndex
        split = r.split; width = r.width; height = r.height; exclusion = r.exclusion
    }

    var record: ImageRecord {
        ImageRecord(id: id, datasetID: datasetID, sha256: sha256, path: path, classIndex: classIndex ?? ImageSplit.noClass, split: split,
                    width: width, height: height, exclusion: exclusion)
    }
}

struct ExtractionRow: IdentifiedRow {
    static let databaseTableName = "extractions"
    var id: Int64?
    var datasetID: Int64
    var settingsKey: String
    var backbone: String
    var weightsSHA256: String
    var weightsSource: String
    var preprocessing: String
    var augmentationPolicy: String
    var augmentationHash: String
    var imageSize: Int
    var fit: String
    var precision: String
    var featureDType: FeatureDType
    var featureDim: Int
    var toolVersion: String
    var seed: Int64
    var createdAt: Date
    var finishedAt: Date?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, datasetID = "dataset_id", settingsKey = "settings_key", backbone, weightsSHA256 = "weights_sha256"
        case weightsSource = "weights_source", preprocessing, augmentationPolicy = "augmentation_policy"
        case augmentationHash = "augmentation_hash", imageSize = "image_size", fit, precision
        case featureDType = "feature_dtype", featureDim = "feature_dim", toolVersion = "tool_version", seed
        case createdAt = "created_at", finishedAt = "finished_at"
    }

    /// The columns that describe the extraction itself (all but its id and its dataset's id).
    static let contentColumns = CodingKeys.allCases.filter { $0 != .id && $0 != .datasetID }.map(\.rawValue)

    init(settingsKey: String, settings s: ExtractionSettings, augmentationHash: String, createdAt: Date) {
        datasetID = s.datasetID; self.settingsKey = settingsKey; backbone = s.backbone; weightsSHA256 = s.weightsSHA256
        weightsSource = s.weightsSource; preprocessing = s.preprocessing; augmentationPolicy = s.augmentationPolicy
        self.augmentationHash = augmentationHash; imageSize = s.imageSize; fit = s.fit; precision = s.precision
        featureDType = s.featureDType; featureDim = s.featureDim; toolVersion = s.toolVersion; seed = s.seed
        self.createdAt = createdAt
    }

    var record: ExtractionRecord {
        let settings = ExtractionSettings(
            datasetID: datasetID, backbone: backbone, weightsSHA256: weightsSHA256, weightsSource: weightsSource,
            preprocessing: preprocessing, augmentationPolicy: augmentationPolicy, imageSize: imageSize, fit: fit,
            precision: precision, featureDType: featureDType, featureDim: featureDim, toolVersion: toolVersion, seed: seed)
        return ExtractionRecord(id: id ?? 0, settingsKey: settingsKey, settings: settings, augmentationHash: augmentationHash,
                                createdAt: createdAt, finishedAt: finishedAt)
    }
}

struct FailureRow: IdentifiedRow {
    static let databaseTableName = "failures"
    var id: Int64?
    var datasetID: Int64?
    var extractionID: Int64?
    var path: String
    var reason: String
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, datasetID = "dataset_id", extractionID = "extraction_id", path, reason, createdAt = "created_at"
    }

    var record: FailureRecord {
        FailureRecord(id: id ?? 0, datasetID: datasetID, extractionID: extractionID, path: path, reason: reason, createdAt: createdAt)
    }
}

struct SweepRow: IdentifiedRow {
    static let databaseTableName = "sweeps"
    var id: Int64?
    var name: String
    var config: String
    var createdAt: Date

    enum CodingKeys: String, CodingKey { case id, name, config, createdAt = "created_at" }

    var record: SweepRecord { SweepRecord(id: id ?? 0, name: name, config: config, createdAt: createdAt) }
}

struct HeadRow: IdentifiedRow {
    static let databaseTableName = "heads"
    var id: Int64?
    var extractionID: Int64
    var config: String
    /// The class names as a JSON array (text).
    var classNames: String
    var weights: Data
    var metrics: String
    var curves: String
    var createdAt: Date
    var sweepID: Int64?
    var trialKey: String?

    /// Empty weights are stored as an empty value, not NULL (which GRDB would bind for empty Data).
    static var databaseDataEncodingStrategy: DatabaseDataEncodingStrategy { .custom { $0.isEmpty ? "" : $0 } }

    enum CodingKeys: String, CodingKey {
        case id, extractionID = "extraction_id", config, classNames = "class_names", weights, metrics, curves
        case createdAt = "created_at", sweepID = "sweep_id", trialKey = "trial_key"
    }

    init(_ h: HeadRecord) throws {
        id = h.id; extractionID = h.extractionID; config = h.config
        classNames = String(decoding: try JSONEncoder().encode(h.classNames), as: UTF8.self)
        weights = h.weights; metrics = h.metrics; curves = h.curves; createdAt = h.createdAt
        sweepID = h.sweepID; trialKey = h.trialKey
    }

    /// The public record; nil when `class_names` is not a JSON array of strings.
    var record: HeadRecord? {
        guard let names = try? JSONDecoder().decode([String].self, from: Data(classNames.utf8)) else { return nil }
        return HeadRecord(id: id, extractionID: extractionID, config: config, classNames: names, weights: weights,
                          metrics: metrics, curves: curves, createdAt: createdAt, sweepID: sweepID, trialKey: trialKey)
    }
}

struct ImageFileRow: TableRow {
    static let databaseTableName = "image_files"
    var datasetID: Int64
    var path: String
    var sha256: String
    var classIndex: Int?
    var split: ImageSplit

    enum CodingKeys: String, CodingKey { case datasetID = "dataset_id", path, sha256, classIndex = "class_index", split }

    init(_ r: ImageFileRecord) {
        datasetID = r.datasetID; path = r.path; sha256 = r.sha256; classIndex = r.classIndex == ImageSplit.noClass ? nil : r.classIndex; split = r.split
    }
    var record: ImageFileRecord {
        ImageFileRecord(datasetID: datasetID, path: path, sha256: sha256, classIndex: classIndex ?? ImageSplit.noClass, split: split)
    }
}
