import Foundation

extension FineTuner {
    /// Inference over `inputs` (any number of NCHW rows of `network.input.count` values) in batches
    /// of 64; the outputs row after row (`outputShape.count` values each).
    public func outputs(rows inputs: [Float]) throws -> [Float] {
        let d = network.input.count, out = outputShape.count
        guard d > 0, inputs.count % d == 0 else {
            throw FineTuneError.badInput("\(inputs.count) values is not a whole number of block inputs of \(d) (\(network.input))")
        }
        let n = inputs.count / d
        var values = [Float](repeating: 0, count: n * out)
        inputs.withUnsafeBufferPointer { x in
            values.withUnsafeMutableBufferPointer { y in
                var lo = 0
                while lo < n {
                    let b = min(64, n - lo)
                    outputs(x.baseAddress! + lo * d, batch: b, into: y.baseAddress! + lo * out)
                    lo += b
                }
            }
        }
        return values
    }
}

/// The blocks below a fine-tuned head, as `extract predict` runs them on block-cache inputs: the
/// blocks that stayed frozen (with the cache's tensors), then the trained blocks (with the head's).
public struct BlockInference {
    public let frozen: FineTuner?
    public let trained: FineTuner

    public init(frozen: FineTuneNetwork?, frozenTensors: [String: [Float]], trained: FineTuneNetwork,
                trainedTensors: [String: [Float]], threads: Int? = nil) throws {
        var options = FineTuneOptions()
        options.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        self.frozen = try frozen.map { try FineTuner(network: $0, head: nil, tensors: frozenTensors, options: options) }
        self.trained = try FineTuner(network: trained, head: nil, tensors: trainedTensors, options: options)
    }

    /// The trained blocks' outputs (the head's features) for rows of block inputs.
    public func features(_ inputs: [Float]) throws -> [Float] {
        try trained.outputs(rows: try frozen.map { try $0.outputs(rows: inputs) } ?? inputs)
    }
}

/// The blocks between the backbone and a fine-tuned head (`train-head --unfreeze M` on a cache of N
/// blocks), from the store's two records: the N - M cached blocks that stayed frozen (the cache's
/// definition and tensors) and the M trained ones (the head's). `extract predict`, `train-head export`
/// and the report all build it here.
public struct FineTunedBlockPath {
    public let frozen: FineTuneNetwork?
    public let frozenTensors: [String: [Float]]
    public let trained: FineTuneNetwork
    public let trainedTensors: [String: [Float]]

    public init(cachedDefinitionJSON: String, cachedTensors: [String: [Float]], unfreeze: Int,
                trainedDefinitionJSON: String, trainedTensors: [String: [Float]]) throws {
        let decoder = JSONDecoder()
        let cached = try decoder.decode(FineTuneNetwork.self, from: Data(cachedDefinitionJSON.utf8))
        trained = try decoder.decode(FineTuneNetwork.self, from: Data(trainedDefinitionJSON.utf8))
        frozen = try cached.splitForTraining(last: unfreeze).frozen
        frozenTensors = cachedTensors
        self.trainedTensors = trainedTensors
    }

    /// Both parts, ready to run.
    public func inference(threads: Int? = nil) throws -> BlockInference {
        try BlockInference(frozen: frozen, frozenTensors: frozenTensors, trained: trained, trainedTensors: trainedTensors, threads: threads)
    }
}
