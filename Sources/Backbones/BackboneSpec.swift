import BackboneEngine
import struct FineTuneCore.FineTuneNetwork
import WeightFormats

/// Everything that defines a backbone apart from the engine: input size, feature size, the layouts
/// its weights come in (each fixing the architecture variant and preprocessing), the files they are
/// published as, and how each layout turns into a `Network` (timm-style pretrained config).
public struct BackboneSpec: Sendable {
    public let id: String
    public let displayName: String
    public let inputSize: Int
    public let featureDimension: Int
    public let layouts: [WeightLayout]
    /// The published weights files, preferred first: `extract weights fetch` downloads the first
    /// with a URL, and `LoadedBackbone` without a file takes the first found in the cache.
    public let published: [PublishedWeights]
    /// Outputs besides the pooled `features` that `extract --feature` may store, with what each
    /// needs (VGG16: `fc7`, from the classifier's weights at the native input size).
    public let classifierOutputs: [String]
    /// Outputs holding the inputs of the last blocks, for `extract --cache-blocks N`: element N - 1
    /// names the input of the N-th block from the end (Lite0: `block_input.15` for N = 1, the input
    /// of `_blocks.15`). Empty: the backbone has no block definitions for fine-tuning yet.
    public let blockInputOutputs: [String]
    /// The fine-tuning definition of the last N blocks + head (N in 1...blockInputOutputs.count), as
    /// `extract --cache-blocks N` stores it and `train-head --unfreeze` trains it; nil with no blocks.
    public let blockNetwork: (@Sendable (Int) throws -> FineTuneNetwork)?

    public init(id: String, displayName: String, inputSize: Int, featureDimension: Int, layouts: [WeightLayout],
                published: [PublishedWeights], classifierOutputs: [String] = [], blockInputOutputs: [String] = [],
                blockNetwork: (@Sendable (Int) throws -> FineTuneNetwork)? = nil) {
        self.id = id
        self.displayName = displayName
        self.inputSize = inputSize
        self.featureDimension = featureDimension
        self.layouts = layouts
        self.published = published
        self.classifierOutputs = classifierOutputs
        self.blockInputOutputs = blockInputOutputs
        self.blockNetwork = blockNetwork
    }
}

extension BackboneSpec {
    /// The output holding the input of the last `blocks` blocks (`extract --cache-blocks N`), for a
    /// fine-tuned head (`head`, named in the error) that starts there.
    public func blockInputOutput(blocks: Int, head: Int64) throws -> String {
        guard blockInputOutputs.indices.contains(blocks - 1) else {
            throw BackboneError.missingOutput("head \(head) was fine-tuned on the last \(blocks) block(s) of \(id), which this version cannot cut there")
        }
        return blockInputOutputs[blocks - 1]
    }

    /// Recognizes the layout of `weights`, checks every tensor by name and shape, and builds the
    /// network: what `LoadedBackbone` does once it has read a file. Public so that tests and
    /// converters can build from tensors already in memory through the same code path.
    public func network(from weights: StateDict) throws -> (layout: WeightLayout, network: Network) {
        let layout = try layout(of: weights)
        return (layout, try network(from: weights, layout: layout))
    }

    /// The first layout `listing` (a loaded state dict or a file's index) is in.
    func layout(of listing: any TensorListing) throws -> WeightLayout {
        guard let layout = layouts.first(where: { $0.matches(listing) }) else {
            throw BackboneError.unknownLayout(backbone: displayName, file: listing.file.path,
                                              layouts: layouts.map(\.name), sample: Array(listing.names.prefix(4)))
        }
        return layout
    }

    /// Checks `weights` against `layout` (already recognized, e.g. from the file's index before the
    /// classifier was left out) and builds the network.
    func network(from weights: StateDict, layout: WeightLayout) throws -> Network {
        try weights.validate(expected: layout.expected(weights), ignoring: layout.ignoring)
        return try layout.build(weights)
    }
}
