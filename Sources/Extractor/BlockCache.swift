import ArgumentParser
import Backbones
import FeatureStore
import FineTuneCore
import Foundation
import WeightFormats

/// `extract --cache-blocks N`: what the run stores besides the features so that `train-head
/// --unfreeze M` (M <= N) can fine-tune the backbone's last M blocks without the backbone: the
/// input of the N-th block from the end for every (image, copy), and the last N blocks' definition
/// and tensors (a cache of N blocks serves every M <= N: the trainer runs the N - M frozen blocks forward).
struct BlockCache {
    let blocks: Int
    /// The extractor output holding the cached input.
    let output: String
    let spec: BackboneSpec
    let dtype: FeatureDType

    /// Checks that `spec` defines its last `blocks` blocks (`--cache-blocks` validation).
    static func validate(_ spec: BackboneSpec, blocks: Int) throws {
        guard !spec.blockInputOutputs.isEmpty else {
            let offered = Backbones.all.filter { !$0.blockInputOutputs.isEmpty }
                .map { "\($0.id) (1...\($0.blockInputOutputs.count))" }
            throw ValidationError("--cache-blocks: \(spec.id) has no block definitions for fine-tuning yet; "
                                  + "backbones that have them: \(offered.joined(separator: ", ")). Drop --cache-blocks for \(spec.id).")
        }
        guard (1...spec.blockInputOutputs.count).contains(blocks) else {
            throw ValidationError("--cache-blocks for \(spec.id) takes 1...\(spec.blockInputOutputs.count), not \(blocks)")
        }
    }

    init(spec: BackboneSpec, blocks: Int, dtype: FeatureDType) throws {
        try Self.validate(spec, blocks: blocks)
        self.blocks = blocks; self.dtype = dtype; self.spec = spec
        output = spec.blockInputOutputs[blocks - 1]
    }

    /// The definition as the store keeps it: the backbone's last `blocks` blocks under the names of
    /// the layout the weights are in, with the input shape the extractor gives at this image size
    /// (`dimension` values per copy, square), and the blocks' tensors read from the weights file (only those).
    func definition(dimension: Int, backbone: LoadedBackbone) throws -> BlockDefinition {
        var net = try spec.blockNetwork(blocks, layout: backbone.layout.name)
        let c = net.input.channels, side = Int(Double(dimension / c).squareRoot().rounded())
        guard c * side * side == dimension else {
            throw ValidationError("--cache-blocks: the extractor's \(output) has \(dimension) values, not \(c) x H x H")
        }
        net.input.height = side; net.input.width = side
        let tensors = try spec.blockTensors(net, layout: backbone.layout.name, weights: backbone.weightsFile)
        var shapes: [String: [Int]] = [:]
        for s in net.requiredTensors() { shapes[s.name] = s.shape }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return BlockDefinition(blocks: blocks, definitionJSON: String(decoding: try encoder.encode(net), as: UTF8.self),
                               inputShape: [c, side, side], dtype: dtype, tensors: tensors, tensorShapes: shapes)
    }
}
