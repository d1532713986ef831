import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchSupport

/// What a head trains on: one extraction, or the per-image concatenation of several extractions of
/// one dataset (`--backbone efficientnet_lite0+efficientnet_lite2`, `--extraction 1+3`), rows matched
/// by (image, augmentation copy).
struct ExtractionSet {
    /// In feature order; the first is the head's `extraction_id`.
    let parts: [ExtractionRecord]

    init(_ parts: [ExtractionRecord]) { precondition(!parts.isEmpty); self.parts = parts }
    init(_ e: ExtractionRecord) { self.init([e]) }

    var primary: ExtractionRecord { parts[0] }
    /// The backbones joined with "+", e.g. "efficientnet_lite0+efficientnet_lite2".
    var backbone: String { parts.map(\.settings.backbone).joined(separator: "+") }
    /// The extraction ids joined with "+".
    var ids: String { parts.map { "\($0.id)" }.joined(separator: "+") }
    /// Identifies the features for trial keys: a single extraction's own settings key (so keys of
    /// single-backbone trials never change), else the settings keys joined with "+".
    var settingsKey: String { parts.map(\.settingsKey).joined(separator: "+") }
    /// `extraction 3 (efficientnet_lite2)`-style names of the parts.
    func name(_ i: Int) -> String { "extraction \(parts[i].id) (\(parts[i].settings.backbone))" }
    /// What `--json` reports and `--dry-run` prints.
    var description: String { parts.count == 1 ? backbone : "\(backbone) (extractions \(ids))" }
}

extension StoreData {
    /// The features to train on: `--extraction 1+3` or `--backbone a+b` (each part as
    /// `extraction(in:id:backbone:)` picks it). All parts must be of one dataset.
    static func extractionSet(in db: FeatureStore, ids: String?, backbone: String?) throws -> ExtractionSet {
        let parts: [ExtractionRecord]
        if let ids {
            parts = try split(ids).map { text in
                guard let id = Int64(text) else {
                    throw Failure(description: "--extraction takes an id or ids joined with + (e.g. 1+3), not `\(ids)`")
                }
                return try extraction(in: db, id: id, backbone: nil)
            }
        } else {
            parts = try split(backbone ?? "").map { try extraction(in: db, id: nil, backbone: $0) }
        }
        let set = ExtractionSet(parts)
        if let other = parts.firstIndex(where: { $0.settings.datasetID != set.primary.settings.datasetID }) {
            let roots = Dictionary(uniqueKeysWithValues: try db.datasets().map { ($0.id, $0.root) })
            func root(_ e: ExtractionRecord) -> String { roots[e.settings.datasetID] ?? "dataset \(e.settings.datasetID)" }
            throw Failure(description: "\(set.name(0)) is of the dataset \(root(set.primary)) but \(set.name(other)) of \(root(parts[other])); "
                          + "concatenated features need extractions of the same dataset (see `extract store info \(db.path)`)")
        }
        return set
    }

    /// The names of a `+` list; an empty part is an error.
    static func split(_ list: String) throws -> [String] {
        let parts = list.split(separator: "+", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.contains(where: \.isEmpty) {
            throw Failure(description: "`\(list)` has an empty part; join backbones or extraction ids with +, e.g. efficientnet_lite0+efficientnet_lite2")
        }
        return parts
    }

    /// Train split (stored copies up to `maxAugIndex`, all when nil, so rows of copies a trial does not
    /// use need not exist in every part) and test split (copies 0...testCopies) of every part, concatenated row by row.
    /// A row that one part lacks is an error naming the part. One extraction: `load(_:_:)` (all copies).
    static func load(_ db: FeatureStore, _ set: ExtractionSet, maxAugIndex: Int? = nil, testCopies: Int = 0) throws -> (train: LabeledFeatures, test: LabeledFeatures?) {
        guard set.parts.count > 1 else { return try load(db, set.primary, testCopies: testCopies) }
        func matrix(_ split: ImageSplit, _ maxAug: Int?) throws -> FeatureMatrix {
            let parts = try set.parts.map { try db.loadFeatures(extractionID: $0.id, split: split, maxAugIndex: maxAug) }
            do { return try FeatureMatrix.concatenating(parts) } catch let gap as MissingFeatureRows {
                let root = try db.datasets().first { $0.id == set.primary.settings.datasetID }?.root ?? "DATASET_DIR"
                let lines = gap.gaps.map { g in
                    "\(set.name(g.input)) lacks \(g.count) of the \(gap.unionRows) \(split.rawValue) rows (image, copy) the others have "
                        + "(e.g. image \(g.example.imageID) copy \(g.example.augIndex))"
                }
                let lacking = gap.gaps.map { set.parts[$0.input].settings.backbone }
                throw Failure(description: lines.joined(separator: "; ") + ". Extract the missing rows (`extract --backbone \(lacking[0]) "
                              + "--data \(root) --store \(db.path)` with the --augment of the others), or train on fewer copies with --augmented")
            }
        }
        let train = try matrix(.train, maxAugIndex)
        guard train.rows > 0 else {
            throw Failure(description: "extractions \(set.ids) (\(set.backbone)) have no training features in \(db.path); "
                          + "run `extract` on a dataset with a train split")
        }
        let test = try matrix(.test, testCopies)
        return (labeled(train), test.rows > 0 ? labeled(test) : nil)
    }

    /// Unlabeled images (`extract --unlabeled`, for `pseudo_label`) of a single extraction; concatenated
    /// features use only the labels `labeled_fraction` leaves out.
    static func unlabeled(_ db: FeatureStore, _ set: ExtractionSet) throws -> LabeledFeatures? {
        set.parts.count == 1 ? try unlabeled(db, set.primary) : nil
    }
}

/// A head's stored config: the head settings and, for concatenated features, the extractions
/// (`HeadInput.configKey`) in the same JSON object.
struct StoredHeadConfig: Encodable {
    let config: HeadConfig
    let features: ExtractionSet

    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        try config.encode(to: encoder)
        guard features.parts.count > 1 else { return }
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(features.parts.map(HeadInput.init), forKey: Key(stringValue: HeadInput.configKey))
    }
}
