import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchSupport

/// The trainer's only contact with the extractor: the features in the store.
enum StoreData {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func open(_ path: String) throws -> FeatureStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure(description: "\(path) does not exist. Extract features first, e.g. "
                          + "`extract --backbone efficientnet_lite0 --data DIR --store \(path)`")
        }
        return try FeatureStore(path: path, mode: .readWrite)
    }

    /// The extraction to train on: `--extraction ID`, or the one of `--backbone` with the most features.
    static func extraction(in db: FeatureStore, id: Int64?, backbone: String?) throws -> ExtractionRecord {
        if let id {
            guard let e = try db.extraction(id: id) else {
                let known = try db.extractions().map { "\($0.id) (\($0.settings.backbone))" }
                throw Failure(description: "\(db.path) has no extraction \(id); it has: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
            }
            return e
        }
        let key = BackboneName.key(backbone ?? "")
        let matching = try db.extractions().filter { BackboneName.key($0.settings.backbone) == key }
        guard !matching.isEmpty else {
            let have = Set(try db.extractions().map(\.settings.backbone)).sorted()
            throw Failure(description: "\(db.path) has no features for backbone \(backbone ?? "?")"
                          + (have.isEmpty ? "" : " (it has: \(have.joined(separator: ", ")))")
                          + ". Run `extract --backbone \(backbone ?? "NAME") --data DIR --store \(db.path)` first.")
        }
        let counted = try matching.map { ($0, try db.featureCount(extractionID: $0.id)) }
        return counted.max { $0.1 < $1.1 }!.0
    }

    /// Train split (all stored copies; the trainer keeps 0...K) and test split (copies 0...testCopies, for `tta`), if any.
    /// `vectors: false`: rows without their feature values (for the block cache, which replaces them).
    static func load(_ db: FeatureStore, _ e: ExtractionRecord, testCopies: Int = 0, vectors: Bool = true) throws -> (train: LabeledFeatures, test: LabeledFeatures?) {
        let train = try db.loadFeatures(extractionID: e.id, split: .train, vectors: vectors)
        guard train.rows > 0 else {
            throw Failure(description: "extraction \(e.id) (\(e.settings.backbone)) has no training features in \(db.path); "
                          + "run `extract` on a dataset with a train split")
        }
        let test = try db.loadFeatures(extractionID: e.id, split: .test, maxAugIndex: testCopies, vectors: vectors)
        return (labeled(train), test.rows > 0 ? labeled(test) : nil)
    }

    /// Images stored without a class (`extract --unlabeled`), every copy; nil when there are none: those
    /// of `e`'s own dataset (`DIR/unlabeled/`) and those of folders of unlabeled images (datasets without
    /// classes, `extract --data FOLDER --unlabeled`) extracted with the same backbone, weights,
    /// preprocessing, size, fit, precision and dtype.
    static func unlabeled(_ db: FeatureStore, _ e: ExtractionRecord) throws -> LabeledFeatures? {
        let classless = Set(try db.datasets().filter { $0.classes.isEmpty }.map(\.id))
        let s = e.settings
        let others = try db.extractions().filter { o in
            let t = o.settings
            return o.id != e.id && classless.contains(t.datasetID) && t.backbone == s.backbone && t.weightsSHA256 == s.weightsSHA256
                && t.preprocessing == s.preprocessing && t.imageSize == s.imageSize && t.fit == s.fit && t.precision == s.precision
                && t.featureDType == s.featureDType && t.featureDim == s.featureDim
        }
        var parts = try ([e] + others).map { try db.loadFeatures(extractionID: $0.id, split: .unlabeled) }.filter { $0.rows > 0 }
        guard var m = parts.first else { return nil }
        for p in parts.dropFirst() {
            m.values += p.values; m.imageIDs += p.imageIDs; m.augIndex += p.augIndex; m.labels += p.labels
            m.splits += p.splits; m.paths += p.paths; m.sha256s += p.sha256s; m.rows += p.rows
        }
        parts = []
        var features = labeled(m)
        features.classNames = try db.dataset(id: s.datasetID)?.classes ?? features.classNames
        return features
    }

    static func labeled(_ m: FeatureMatrix) -> LabeledFeatures {
        LabeledFeatures(dim: m.dim, values: m.values, labels: m.labels.map(Int32.init), imageIDs: m.imageIDs,
                        augIndex: m.augIndex.map(Int32.init), classNames: m.classNames)
    }

    /// Keeps a trained head with everything needed to use and compare it later.
    /// Concatenated features also record every extraction (`StoredHeadConfig`).
    static func save(_ result: TrainingResult, config: HeadConfig, features: ExtractionSet, in db: FeatureStore,
                     sweepID: Int64? = nil, trialKey: String? = nil) throws -> Int64 {
        try db.saveHead(try headRecord(result, config: config, features: features, sweepID: sweepID, trialKey: trialKey))
    }

    /// The store's record of a trained head.
    static func headRecord(_ result: TrainingResult, config: HeadConfig, features: ExtractionSet,
                           sweepID: Int64?, trialKey: String?) throws -> HeadRecord {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return HeadRecord(
            extractionID: features.primary.id,
            config: String(decoding: try enc.encode(StoredHeadConfig(config: config, features: features)), as: UTF8.self),
            classNames: result.head.classNames, weights: try result.head.encoded(),
            metrics: String(decoding: try enc.encode(result.metrics), as: UTF8.self),
            curves: String(decoding: try enc.encode(result.curves), as: UTF8.self),
            sweepID: sweepID, trialKey: trialKey)
    }
}
