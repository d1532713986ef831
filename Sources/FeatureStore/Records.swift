import Foundation

/// How to open a store file.
public enum OpenMode: Sendable {
    /// Read only; the file must exist and be at the current schema version.
    case readOnly
    /// Read and write an existing store (older schemas are migrated).
    case readWrite
    /// Like `.readWrite`, but creates the file (and its directory) when missing.
    case create
    /// Read only with SQLite's `immutable=1`: no locks, no `-wal`/`-shm` files, so it works on
    /// read-only media and directories. Only valid when nobody writes the file while it is open,
    /// and content still in an un-checkpointed `-wal` file is NOT seen (call `vacuum()` before
    /// publishing a store for immutable readers).
    case immutable
}

/// A split of the dataset. Stored as the strings "train" and "test".
public enum ImageSplit: String, Codable, Sendable, CaseIterable {
    case train, test
    /// Images without a class (`extract --unlabeled`; schema step 7): their class index is `ImageSplit.noClass`.
    case unlabeled

    /// The class index of an unlabeled image (NULL in the store).
    public static let noClass = -1
}

/// The element type of stored feature vectors.
public enum FeatureDType: String, Codable, Sendable {
    /// IEEE float32, little-endian: 4 bytes per value.
    case f32
    /// IEEE float16, little-endian: 2 bytes per value (converted with Swift's `Float16`).
    case f16

    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// A dataset: a root folder and its class list, in label order.
public struct DatasetRecord: Codable, Hashable, Sendable {
    public var id: Int64
    /// The root path as given by the extractor (usually absolute); identifies the dataset.
    public var root: String
    public var name: String
    /// Class names; the index in this array is the label. Only ever grows at the end.
    public var classes: [String]
    public var createdAt: Date

    public init(id: Int64, root: String, name: String, classes: [String], createdAt: Date) {
        self.id = id; self.root = root; self.name = name; self.classes = classes; self.createdAt = createdAt
    }
}

/// One image file, identified within its dataset by the sha256 of its bytes.
public struct ImageRecord: Codable, Hashable, Sendable {
    /// nil for an image not yet stored; set on records read back from the store.
    public var id: Int64?
    public var datasetID: Int64
    /// Lowercase hex sha256 of the file's bytes (64 characters).
    public var sha256: String
    /// The path relative to the dataset root (as the extractor reports it).
    public var path: String
    public var classIndex: Int
    public var split: ImageSplit
    public var width: Int
    public var height: Int
    /// Why the image is kept out of training and evaluation (e.g. a label conflict); nil: it is not.
    public var exclusion: String?

    public init(id: Int64? = nil, datasetID: Int64, sha256: String, path: String, classIndex: Int,
                split: ImageSplit, width: Int, height: Int, exclusion: String? = nil) {
        self.id = id; self.datasetID = datasetID; self.sha256 = sha256; self.path = path
        self.classIndex = classIndex; self.split = split; self.width = width; self.height = height
        self.exclusion = exclusion
    }
}

/// Everything that determines the feature values of an extraction.
///
/// Two extractions with equal `settingsKey` are the same extraction. The key covers every field
/// except `weightsSource` (where the weights came from; `weightsSHA256` identifies them) and
/// `toolVersion` (recorded for provenance; a new tool version resumes an old extraction).
public struct ExtractionSettings: Codable, Hashable, Sendable {
    public var datasetID: Int64
    /// Backbone name, e.g. "resnet50".
    public var backbone: String
    public var weightsSHA256: String
    /// Where the weights came from (URL or path); informational.
    public var weightsSource: String
    /// Preprocessing description (free text or JSON: mean/std, interpolation...).
    public var preprocessing: String
    /// Augmentation policy as JSON (`"null"` or `"{}"` for none). Stored in canonical form
    /// (keys sorted), and hashed into `augmentationHash`.
    public var augmentationPolicy: String
    /// Input side length in pixels.
    public var imageSize: Int
    /// How images are brought to `imageSize` x `imageSize`: "pad" (keep the aspect ratio, zero-pad),
    /// "stretch" (resize each axis) or "center-crop" (the extractor's `Fit` raw values).
    public var fit: String
    /// Compute precision of the backbone's convolutions: "fp32" or "bf16" (the extractor's
    /// `Precision` raw values; features are computed in fp32 either way).
    public var precision: String
    public var featureDType: FeatureDType
    public var featureDim: Int
    public var toolVersion: String
    public var seed: Int64

    public init(datasetID: Int64, backbone: String, weightsSHA256: String, weightsSource: String,
                preprocessing: String, augmentationPolicy: String, imageSize: Int, fit: String,
                precision: String, featureDType: FeatureDType, featureDim: Int, toolVersion: String,
                seed: Int64) {
        self.datasetID = datasetID; self.backbone = backbone; self.weightsSHA256 = weightsSHA256
        self.weightsSource = weightsSource; self.preprocessing = preprocessing
        self.augmentationPolicy = augmentationPolicy; self.imageSize = imageSize; self.fit = fit
        self.precision = precision; self.featureDType = featureDType; self.featureDim = featureDim
        self.toolVersion = toolVersion; self.seed = seed
    }
}

/// A stored extraction: its settings plus identity and timing.
public struct ExtractionRecord: Codable, Hashable, Sendable {
    public var id: Int64
    /// sha256 (hex) of the canonical settings; unique per dataset.
    public var settingsKey: String
    public var settings: ExtractionSettings
    /// sha256 (hex) of the canonical augmentation policy JSON.
    public var augmentationHash: String
    public var createdAt: Date
    /// nil while the extraction is running or was interrupted.
    public var finishedAt: Date?

    public init(id: Int64, settingsKey: String, settings: ExtractionSettings, augmentationHash: String,
                createdAt: Date, finishedAt: Date?) {
        self.id = id; self.settingsKey = settingsKey; self.settings = settings
        self.augmentationHash = augmentationHash; self.createdAt = createdAt; self.finishedAt = finishedAt
    }
}

/// Identifies one feature row within an extraction.
public struct FeatureKey: Hashable, Codable, Sendable {
    public var imageID: Int64
    /// 0 = the un-augmented image; 1... = augmented copies.
    public var augIndex: Int
    public init(imageID: Int64, augIndex: Int) { self.imageID = imageID; self.augIndex = augIndex }
}

/// One feature vector to store. `values.count` must equal the extraction's `featureDim`.
public struct FeatureRow: Sendable {
    public var imageID: Int64
    public var augIndex: Int
    public var values: [Float]
    public init(imageID: Int64, augIndex: Int, values: [Float]) {
        self.imageID = imageID; self.augIndex = augIndex; self.values = values
    }
}

/// Features of one extraction loaded into memory, one row per (image, augmentation).
///
/// Rows are ordered by (image id, aug index). `values` is row-major, `rows * dim` contiguous
/// floats (f16 stores are widened to Float on load).
public struct FeatureMatrix: Sendable {
    public var extractionID: Int64
    public var rows: Int
    public var dim: Int
    public var values: [Float]
    public var imageIDs: [Int64]
    public var augIndex: [Int]
    /// Class index per row (an index into `classNames`).
    public var labels: [Int]
    public var splits: [ImageSplit]
    public var paths: [String]
    public var sha256s: [String]
    /// The dataset's class list (index = label).
    public var classNames: [String]

    public init(extractionID: Int64, rows: Int, dim: Int, values: [Float], imageIDs: [Int64], augIndex: [Int],
                labels: [Int], splits: [ImageSplit], paths: [String], sha256s: [String], classNames: [String]) {
        self.extractionID = extractionID; self.rows = rows; self.dim = dim; self.values = values
        self.imageIDs = imageIDs; self.augIndex = augIndex; self.labels = labels; self.splits = splits
        self.paths = paths; self.sha256s = sha256s; self.classNames = classNames
    }

    /// Row `i` as a slice of `values`.
    public func row(_ i: Int) -> ArraySlice<Float> { values[(i * dim)..<((i + 1) * dim)] }
}

/// A failed image (unreadable, undecodable...), kept so `info` can show what was skipped.
public struct FailureRecord: Codable, Hashable, Sendable {
    public var id: Int64
    public var datasetID: Int64?
    public var extractionID: Int64?
    public var path: String
    public var reason: String
    public var createdAt: Date
    public init(id: Int64, datasetID: Int64?, extractionID: Int64?, path: String, reason: String, createdAt: Date) {
        self.id = id; self.datasetID = datasetID; self.extractionID = extractionID
        self.path = path; self.reason = reason; self.createdAt = createdAt
    }
}

/// A hyper-parameter sweep: a named group of trials (heads) that can be resumed.
public struct SweepRecord: Codable, Hashable, Sendable {
    public var id: Int64
    public var name: String
    /// The sweep's configuration as JSON.
    public var config: String
    public var createdAt: Date
    public init(id: Int64, name: String, config: String, createdAt: Date) {
        self.id = id; self.name = name; self.config = config; self.createdAt = createdAt
    }
}

/// A trained head. JSON fields are stored verbatim (and must be valid JSON).
public struct HeadRecord: Codable, Hashable, Sendable {
    /// nil for a head not yet saved.
    public var id: Int64?
    public var extractionID: Int64
    /// Training configuration JSON.
    public var config: String
    /// Class names in output order.
    public var classNames: [String]
    /// Opaque weights, in whatever layout the trainer defines (see `VectorCodec` for floats).
    public var weights: Data
    public var metrics: String
    public var curves: String
    public var createdAt: Date
    /// Set together with `trialKey` for heads that belong to a sweep.
    public var sweepID: Int64?
    /// Unique within a sweep; used to skip finished trials when a sweep resumes.
    public var trialKey: String?

    public init(id: Int64? = nil, extractionID: Int64, config: String, classNames: [String], weights: Data,
                metrics: String, curves: String, createdAt: Date = Date(), sweepID: Int64? = nil,
                trialKey: String? = nil) {
        self.id = id; self.extractionID = extractionID; self.config = config; self.classNames = classNames
        self.weights = weights; self.metrics = metrics; self.curves = curves; self.createdAt = createdAt
        self.sweepID = sweepID; self.trialKey = trialKey
    }
}

/// One file of a dataset as scanned: where it is and what it contains (several files may hold one image).
public struct ImageFileRecord: Codable, Hashable, Sendable {
    public var datasetID: Int64
    /// Relative to the dataset root, as `ImageRecord.path`.
    public var path: String
    public var sha256: String
    public var classIndex: Int
    public var split: ImageSplit

    public init(datasetID: Int64, path: String, sha256: String, classIndex: Int, split: ImageSplit) {
        self.datasetID = datasetID; self.path = path; self.sha256 = sha256; self.classIndex = classIndex; self.split = split
    }
}
