import BackboneEngine
import Foundation
import WeightFormats

/// A backbone with its weights loaded and validated, ready to compile for a batch size.
public struct LoadedBackbone {
    public let spec: BackboneSpec
    public private(set) var network: Network
    public let weightsFile: URL
    public let weightsSHA256: String
    /// The published file the weights are, when known: the one found in the cache under its
    /// published name, or a given file whose SHA-256 matches a published digest (an md5-published
    /// Keras file given with --weights is not recognized: that would take a second hash of it).
    public let published: PublishedWeights?
    /// What the weights are, as an extraction records it (`weights_source`): the layout and the
    /// published file's name, or the given file's name, e.g. `keras layout, published file
    /// efficientnetb0_notop.h5` or `torchvision layout, file my-resnet50.pth`.
    public var weightsSource: String {
        "\(layout.name) layout, " + (published.map { "published file \($0.fileName)" } ?? "file \(weightsFile.lastPathComponent)")
    }
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
        var cached: PublishedWeights?
        if let file {
            url = file
        } else if let (entry, found) = spec.published.lazy.compactMap({ p in p.locate().map { (p, $0) } }).first {
            url = found
            cached = entry
        } else {
            throw BackboneError.weightsNotFound(backbone: spec.displayName, looked: spec.published.map { $0.cachePath().path })
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
        let sha256 = try FileDigest.sha256(url)
        weightsSHA256 = sha256
        published = cached ?? spec.published.first { $0.digest.identifies(sha256: sha256) }
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
    /// `calibration`: the activation ranges `precision: .int8` needs (`calibrateInt8`).
    public func compile(batch: Int, size: Int? = nil, precision: Precision = .fp32, calibration: Int8Calibration? = nil,
                        outputs: [String] = ["features"], algorithm: ConvolutionAlgorithm = .auto) throws -> CompiledNetwork {
        let s = size ?? spec.inputSize
        return try CompiledNetwork(engineNetwork(outputs), batch: batch, height: s, width: s, precision: precision,
                                   calibration: calibration, algorithm: algorithm)
    }

    /// `Network.winogradShare` of what `compile` would run at fp32 under `algorithm` (0 for `.direct`).
    public func winogradShare(batch: Int, size: Int? = nil, outputs: [String] = ["features"],
                              algorithm: ConvolutionAlgorithm) -> Double {
        guard algorithm == .auto else { return 0 }
        let s = size ?? spec.inputSize
        return engineNetwork(outputs).winogradShare(batch: batch, height: s, width: s)
    }

    /// What `compile` runs: the layers `outputs` need, without the input normalization.
    func engineNetwork(_ outputs: [String]) -> Network {
        var net = network.pruned(to: outputs)
        net.inputAffine = nil
        return net
    }

    /// The activation ranges of `count` square images (`size` x `size` x 3 RGB bytes each, contiguous)
    /// for an int8 `compile` with the same `outputs`: the fp32 network run on them, every layer's
    /// output observed (`Int8Calibration.measure`); `depthwise`: whether depthwise convolutions run in int8.
    public func calibrateInt8(rgb: UnsafePointer<UInt8>, count: Int, size: Int? = nil,
                              outputs: [String] = ["features"], depthwise: Bool = true) throws -> Int8Calibration {
        try calibrateInt8Keeping(rgb: rgb, count: count, size: size, outputs: outputs, depthwise: depthwise).calibration
    }

    /// `calibrateInt8`, and the fp32 values of `outputs[0]` for the `count` images (count x its size)
    /// as the calibration computed them: what a run's int8 check compares with, without a second
    /// fp32 network.
    public func calibrateInt8Keeping(rgb: UnsafePointer<UInt8>, count: Int, size: Int? = nil, outputs: [String] = ["features"],
                                     depthwise: Bool = true) throws -> (calibration: Int8Calibration, fp32: [Float]) {
        let s = size ?? spec.inputSize, per = 3 * s * s
        var input = [Float](repeating: 0, count: count * per)
        input.withUnsafeMutableBufferPointer { inputPreprocessing.apply(rgb: rgb, count: count, size: s, into: $0.baseAddress!) }
        let network = engineNetwork(outputs)
        guard let layer = network.outputs[outputs[0]] else { throw BackboneError.missingOutput("\(spec.id) has no output \(outputs[0])") }
        var kept: [Float] = []
        let calibration = try Int8Calibration.measure(network, height: s, width: s, inputs: input, count: count, depthwise: depthwise) {
            if $0 == layer { kept += $1 }
        }
        return (calibration, kept)
    }
}
