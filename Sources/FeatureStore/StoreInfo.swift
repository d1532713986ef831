import Foundation
import GRDB

/// A summary of a store, for `info` commands. Its JSON keys are part of the tools' interface:
/// snake_case, always present (null when empty), never renamed.
///
/// ```json
/// {"path": "...", "schema_version": 3, "images": 2400, "datasets": [...],
///  "extractions": [{"id": 1, "backbone": "resnet50", "features": 2400, ...}],
///  "failures": [{"path": "...", "reason": "..."}], "failure_count": 1, "heads": 0, "sweeps": 0}
/// ```
public struct StoreInfo: Codable, Equatable, Sendable {
    public var path: String
    public var schemaVersion: Int
    /// Number of distinct images over all datasets.
    public var images: Int
    public var datasets: [DatasetInfo]
    public var extractions: [ExtractionInfo]
    /// The most recent failures (at most the limit passed to `info`), oldest first.
    public var failures: [FailureInfo]
    /// All failures, including those not listed.
    public var failureCount: Int
    public var heads: Int
    public var sweeps: Int

    enum CodingKeys: String, CodingKey {
        case path, schemaVersion = "schema_version", images, datasets, extractions, failures
        case failureCount = "failure_count", heads, sweeps
    }

    /// Pretty (or compact) JSON with sorted keys.
    public func jsonString(pretty: Bool = true) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct DatasetInfo: Codable, Equatable, Sendable {
    public var id: Int64
    public var root: String
    public var name: String
    public var classes: [String]
    public var images: Int
    public var trainImages: Int
    public var testImages: Int

    enum CodingKeys: String, CodingKey {
        case id, root, name, classes, images, trainImages = "train_images", testImages = "test_images"
    }
}

public struct ExtractionInfo: Codable, Equatable, Sendable {
    public var id: Int64
    public var datasetID: Int64
    public var backbone: String
    public var settingsKey: String
    public var weightsSHA256: String
    /// The weight layout the extractor recognised (keras, torchvision, timm, pypi).
    public var weightsSource: String
    /// The backbone's own input normalisation, as recorded by the extractor.
    public var preprocessing: String
    public var featureDim: Int
    public var featureDType: String
    public var imageSize: Int
    public var fit: String
    public var precision: String
    public var augmentationHash: String
    public var seed: Int64
    public var toolVersion: String
    /// Feature rows (images x augmentations).
    public var features: Int
    /// Distinct images with at least one feature row.
    public var images: Int
    public var heads: Int
    /// Bytes of cached block inputs (`extract --cache-blocks`), all block counts together.
    public var blockCacheBytes: Int
    public var createdAt: String
    /// nil (JSON null) while unfinished.
    public var finishedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, datasetID = "dataset_id", backbone, settingsKey = "settings_key", weightsSHA256 = "weights_sha256"
        case weightsSource = "weights_source", preprocessing
        case featureDim = "feature_dim", featureDType = "feature_dtype", imageSize = "image_size", fit, precision
        case augmentationHash = "augmentation_hash", seed, toolVersion = "tool_version", features, images, heads
        case blockCacheBytes = "block_cache_bytes", createdAt = "created_at", finishedAt = "finished_at"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(datasetID, forKey: .datasetID)
        try c.encode(backbone, forKey: .backbone); try c.encode(settingsKey, forKey: .settingsKey)
        try c.encode(weightsSHA256, forKey: .weightsSHA256); try c.encode(featureDim, forKey: .featureDim)
        try c.encode(weightsSource, forKey: .weightsSource); try c.encode(preprocessing, forKey: .preprocessing)
        try c.encode(featureDType, forKey: .featureDType); try c.encode(imageSize, forKey: .imageSize)
        try c.encode(fit, forKey: .fit); try c.encode(precision, forKey: .precision)
        try c.encode(augmentationHash, forKey: .augmentationHash); try c.encode(seed, forKey: .seed)
        try c.encode(toolVersion, forKey: .toolVersion); try c.encode(features, forKey: .features)
        try c.encode(images, forKey: .images); try c.encode(heads, forKey: .heads)
        try c.encode(blockCacheBytes, forKey: .blockCacheBytes)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(finishedAt, forKey: .finishedAt) // explicit null keeps the key present
    }
}

extension ExtractionInfo {
    /// As encoded; `block_cache_bytes` is absent from the JSON of tools before store step 5: 0.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys) throws -> T { try c.decode(T.self, forKey: key) }
        self.init(id: try value(.id), datasetID: try value(.datasetID), backbone: try value(.backbone),
                  settingsKey: try value(.settingsKey), weightsSHA256: try value(.weightsSHA256),
                  weightsSource: try value(.weightsSource), preprocessing: try value(.preprocessing),
                  featureDim: try value(.featureDim), featureDType: try value(.featureDType), imageSize: try value(.imageSize),
                  fit: try value(.fit), precision: try value(.precision), augmentationHash: try value(.augmentationHash),
                  seed: try value(.seed), toolVersion: try value(.toolVersion), features: try value(.features),
                  images: try value(.images), heads: try value(.heads),
                  blockCacheBytes: try c.decodeIfPresent(Int.self, forKey: .blockCacheBytes) ?? 0,
                  createdAt: try value(.createdAt), finishedAt: try c.decodeIfPresent(String.self, forKey: .finishedAt))
    }
}

public struct FailureInfo: Codable, Equatable, Sendable {
    public var path: String
    public var reason: String
    public var datasetID: Int64?
    public var extractionID: Int64?
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case path, reason, datasetID = "dataset_id", extractionID = "extraction_id", createdAt = "created_at"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path); try c.encode(reason, forKey: .reason)
        try c.encode(datasetID, forKey: .datasetID); try c.encode(extractionID, forKey: .extractionID)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

extension FeatureStore {
    /// Summarises the store from one snapshot. Lists at most `maxFailures` failures (the newest).
    public func info(maxFailures: Int = 1000) throws -> StoreInfo {
        try read("summarising the store") { db in
            func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
            let datasets = try self.datasets().map { record -> DatasetInfo in
                let counts = try Row.fetchOne(db, sql: """
                    SELECT count(*), coalesce(sum(split = 'train'), 0), coalesce(sum(split = 'test'), 0)
                    FROM images WHERE dataset_id = ?
                    """, arguments: [record.id])
                return DatasetInfo(id: record.id, root: record.root, name: record.name, classes: record.classes,
                                   images: counts?[0] ?? 0, trainImages: counts?[1] ?? 0, testImages: counts?[2] ?? 0)
            }

            var featureCounts: [Int64: (rows: Int, images: Int)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT extraction_id, count(*), count(DISTINCT image_id) FROM features GROUP BY extraction_id") {
                featureCounts[row[0]] = (row[1], row[2])
            }
            var headCounts: [Int64: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT extraction_id, count(*) FROM heads GROUP BY extraction_id") {
                headCounts[row[0]] = row[1]
            }

            let cacheBytes = try blockCacheBytes(db)
            let extractions = try self.extractions().map { e -> ExtractionInfo in
                let s = e.settings
                return ExtractionInfo(
                    id: e.id, datasetID: s.datasetID, backbone: s.backbone, settingsKey: e.settingsKey,
                    weightsSHA256: s.weightsSHA256, weightsSource: s.weightsSource, preprocessing: s.preprocessing, featureDim: s.featureDim, featureDType: s.featureDType.rawValue,
                    imageSize: s.imageSize, fit: s.fit, precision: s.precision, augmentationHash: e.augmentationHash,
                    seed: s.seed, toolVersion: s.toolVersion, features: featureCounts[e.id]?.rows ?? 0,
                    images: featureCounts[e.id]?.images ?? 0, heads: headCounts[e.id] ?? 0,
                    blockCacheBytes: cacheBytes[e.id] ?? 0,
                    createdAt: Timestamp.string(e.createdAt), finishedAt: e.finishedAt.map { Timestamp.string($0) })
            }

            let failures = try FailureRow.fetchAll(db, sql: "SELECT * FROM (SELECT * FROM failures ORDER BY id DESC LIMIT ?) ORDER BY id",
                                                   arguments: [max(0, maxFailures)]).map {
                FailureInfo(path: $0.path, reason: $0.reason, datasetID: $0.datasetID, extractionID: $0.extractionID,
                            createdAt: Timestamp.string($0.createdAt))
            }

            return StoreInfo(path: path, schemaVersion: try fileSchemaVersion(), images: try count("images"), datasets: datasets,
                             extractions: extractions, failures: failures, failureCount: try count("failures"),
                             heads: try count("heads"), sweeps: try count("sweeps"))
        }
    }
}
