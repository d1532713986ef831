import Foundation

/// Batch-norm parameters and running statistics of one layer (Keras: momentum 0.99, epsilon 1e-3).
public struct BatchNormWeights: Codable, Hashable, Sendable {
    public var gamma: [Float]
    public var beta: [Float]
    public var movingMean: [Float]
    public var movingVariance: [Float]
    public var epsilon: Float

    public init(gamma: [Float], beta: [Float], movingMean: [Float], movingVariance: [Float], epsilon: Float = 1e-3) {
        self.gamma = gamma; self.beta = beta; self.movingMean = movingMean
        self.movingVariance = movingVariance; self.epsilon = epsilon
    }

    /// Keras initial state: gamma 1, beta 0, moving mean 0, moving variance 1.
    public init(features: Int) {
        self.init(gamma: .init(repeating: 1, count: features), beta: .init(repeating: 0, count: features),
                  movingMean: .init(repeating: 0, count: features), movingVariance: .init(repeating: 1, count: features))
    }

    public var features: Int { gamma.count }

    enum CodingKeys: String, CodingKey {
        case gamma, beta, epsilon
        case movingMean = "moving_mean", movingVariance = "moving_variance"
    }
}

/// A dense layer: `kernel` is inputs x outputs, row-major (Keras layout), `bias` has `outputs` entries.
public struct DenseWeights: Codable, Hashable, Sendable {
    public var inputs: Int
    public var outputs: Int
    public var kernel: [Float]
    public var bias: [Float]

    public init(inputs: Int, outputs: Int, kernel: [Float], bias: [Float]) {
        self.inputs = inputs; self.outputs = outputs; self.kernel = kernel; self.bias = bias
    }
}

/// All tensors of a head. Layers absent from the configuration are nil.
public struct HeadWeights: Codable, Hashable, Sendable {
    /// BN on the input features (`batchnorm: true`).
    public var inputBatchNorm: BatchNormWeights?
    /// Dense(hidden, relu) (`hidden > 0`).
    public var hidden: DenseWeights?
    /// BN after dropout (`batchnorm: true` and `hidden > 0`).
    public var hiddenBatchNorm: BatchNormWeights?
    /// Dense(classes), followed by softmax.
    public var output: DenseWeights

    public init(inputBatchNorm: BatchNormWeights?, hidden: DenseWeights?, hiddenBatchNorm: BatchNormWeights?, output: DenseWeights) {
        self.inputBatchNorm = inputBatchNorm; self.hidden = hidden; self.hiddenBatchNorm = hiddenBatchNorm; self.output = output
    }

    enum CodingKeys: String, CodingKey {
        case hidden, output
        case inputBatchNorm = "input_batch_norm", hiddenBatchNorm = "hidden_batch_norm"
    }

    /// Named float blobs, e.g. for storing in a database: "input_bn.gamma", "hidden.kernel", "output.bias", ...
    public var blobs: [(name: String, values: [Float])] {
        var out: [(String, [Float])] = []
        func bn(_ p: String, _ b: BatchNormWeights?) {
            guard let b else { return }
            out += [("\(p).gamma", b.gamma), ("\(p).beta", b.beta), ("\(p).moving_mean", b.movingMean), ("\(p).moving_variance", b.movingVariance)]
        }
        bn("input_bn", inputBatchNorm)
        if let h = hidden { out += [("hidden.kernel", h.kernel), ("hidden.bias", h.bias)] }
        bn("hidden_bn", hiddenBatchNorm)
        out += [("output.kernel", output.kernel), ("output.bias", output.bias)]
        return out
    }

    /// Checks tensor sizes against each other; `source` names the origin in errors.
    public func validate(source: String) throws {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw HeadModelError.corruptHead(source: source, detail: what) } }
        func bnOK(_ b: BatchNormWeights?, _ n: Int, _ name: String) throws {
            guard let b else { return }
            try need(b.gamma.count == n && b.beta.count == n && b.movingMean.count == n && b.movingVariance.count == n, "\(name) has wrong sizes")
        }
        func denseOK(_ d: DenseWeights, _ name: String) throws {
            let size = d.inputs.multipliedReportingOverflow(by: d.outputs)
            try need(d.inputs > 0 && d.outputs > 0 && !size.overflow && d.kernel.count == size.partialValue && d.bias.count == d.outputs,
                     "\(name) has wrong sizes")
        }
        try denseOK(output, "output")
        if let h = hidden {
            try denseOK(h, "hidden")
            try need(h.outputs == output.inputs, "hidden outputs \(h.outputs) != output inputs \(output.inputs)")
            try bnOK(inputBatchNorm, h.inputs, "input_batch_norm")
            try bnOK(hiddenBatchNorm, h.outputs, "hidden_batch_norm")
        } else {
            try need(hiddenBatchNorm == nil, "hidden_batch_norm without a hidden layer")
            try bnOK(inputBatchNorm, output.inputs, "input_batch_norm")
        }
    }

    public var inputDim: Int { hidden?.inputs ?? output.inputs }
    public var classCount: Int { output.outputs }
}
