import ConvolutionWindow

/// A backbone as data: an ordered list of layers over named tensors, plus the weights each layer needs.
///
/// The engine (`CompiledNetwork`) turns a `Network` into oneDNN primitives; backbone files build
/// `Network`s and never touch oneDNN. Conventions:
/// - The network's input tensor is named `"input"`: N x C x H x W, already preprocessed.
/// - Convolution weights use PyTorch's layout `[out, in / groups, kh, kw]` (row-major), so a
///   depthwise convolution has `[channels, 1, kh, kw]`. Batch norm is folded in before the layer is
///   added (`BatchNorm.fold`).
/// - Dense (inner product) weights are `[out, in]` where `in` flattens the input tensor as C, H, W.
public struct Network {
    public let name: String
    public let inputChannels: Int
    public private(set) var layers: [Layer] = []
    /// Named outputs, e.g. `"features" -> "head_pool"`, `"logits" -> "fc"`.
    public var outputs: [String: String] = [:]
    /// A per-channel affine map the network applies to its input before the first layer: a model's
    /// own input normalization whose values are in its weights file (Keras EfficientNet's Rescaling
    /// + Normalization layers). `CompiledNetwork` runs it as one oneDNN step; an extractor folds it
    /// into its per-pixel preprocessing table instead, where it costs nothing
    /// (`LoadedBackbone.compile` leaves it out, `LoadedBackbone.inputPreprocessing` applies it).
    /// Never into the first convolution's weights: TensorFlow SAME padding pads the normalized
    /// input with zeros, which a folded convolution would see as un-normalized zeros at the borders.
    public var inputAffine: ChannelAffine?

    public init(name: String, inputChannels: Int = 3) {
        self.name = name
        self.inputChannels = inputChannels
    }

    /// Appends a layer reading `inputs` and returns its output tensor's name (= the layer name).
    @discardableResult
    public mutating func add(_ name: String, _ op: Op, inputs: [String]) -> String {
        layers.append(Layer(name: name, inputs: inputs, op: op))
        return name
    }

    /// Keeps only the layers that some output needs (drops, say, a classifier when only features
    /// are asked for).
    public func pruned(to outputNames: [String]) -> Network {
        var needed = Set(outputNames.compactMap { outputs[$0] })
        var kept: [Layer] = []
        for layer in layers.reversed() where needed.contains(layer.name) {
            kept.append(layer)
            for input in layer.inputs { needed.insert(input) }
            if case .conv(let c) = layer.op, let r = c.residual { needed.insert(r) }
        }
        var copy = self
        copy.layers = kept.reversed()
        copy.outputs = outputs.filter { outputNames.contains($0.key) }
        return copy
    }

    /// The same network with the layers that read `input` reading `name` instead.
    func readingInput(from name: String) -> Network {
        var copy = self
        copy.layers = layers.map { l in Layer(name: l.name, inputs: l.inputs.map { $0 == "input" ? name : $0 }, op: l.op) }
        return copy
    }
}

/// `x * scale[c] + shift[c]` on channel `c`.
public struct ChannelAffine: Equatable, Sendable {
    public let scale: [Float]
    public let shift: [Float]

    public init(scale: [Float], shift: [Float]) {
        self.scale = scale
        self.shift = shift
    }
}

public struct Layer {
    public let name: String
    public let inputs: [String]
    public let op: Op
}

public enum Op {
    case conv(Convolution)
    case maxPool(kernel: Int, stride: Int, padding: Padding)
    case averagePool(kernel: Int, stride: Int, padding: Padding)
    /// Mean over H x W, giving N x C x 1 x 1.
    case globalAveragePool
    case dense(Dense)
    case activation(Activation)
    /// inputs[0] + inputs[1] (same shape), then the activation.
    case add(Activation)
    /// inputs[0] * inputs[1], where inputs[1] may be N x C x 1 x 1 (squeeze-excite gating).
    case multiply
}

/// How a convolution or pooling pads its input.
public enum Padding: Equatable {
    /// TensorFlow's SAME: output = ceil(input / stride); the total padding is split with the extra
    /// pixel at the bottom/right (asymmetric on stride 2).
    case same
    /// No padding (TensorFlow's VALID).
    case valid
    /// The same number of pixels on every side (PyTorch's `padding=p`).
    case symmetric(Int)
    case explicit(top: Int, left: Int, bottom: Int, right: Int)

    /// (before, after) padding along one axis for the given input size.
    public func amounts(input: Int, kernel: Int, stride: Int, vertical: Bool) -> (Int, Int) {
        switch self {
        case .valid: return (0, 0)
        case .symmetric(let p): return (p, p)
        case .explicit(let t, let l, let b, let r): return vertical ? (t, b) : (l, r)
        case .same:
            let p = tfSamePadding(input: input, kernel: kernel, stride: stride)
            return (p.before, p.after)
        }
    }

    /// The padding on each side and the output size of a window (convolution or pool) of `kernel`
    /// moving by `stride` over an input of `input` rows and columns: what the engine, the Winograd
    /// prediction and the ONNX export each compute for a layer.
    public func window(input: (h: Int, w: Int), kernel: (h: Int, w: Int), stride: Int) -> Window {
        let (top, bottom) = amounts(input: input.h, kernel: kernel.h, stride: stride, vertical: true)
        let (left, right) = amounts(input: input.w, kernel: kernel.w, stride: stride, vertical: false)
        return Window(top: top, left: left, bottom: bottom, right: right,
                      height: (input.h + top + bottom - kernel.h) / stride + 1,
                      width: (input.w + left + right - kernel.w) / stride + 1)
    }
}

/// A window's padding on each side and its output rows and columns (`Padding.window`).
public struct Window: Equatable, Hashable {
    public let top: Int, left: Int, bottom: Int, right: Int
    public let height: Int, width: Int

    public init(top: Int, left: Int, bottom: Int, right: Int, height: Int, width: Int) {
        (self.top, self.left, self.bottom, self.right, self.height, self.width) = (top, left, bottom, right, height, width)
    }
}

public enum Activation: Equatable {
    case none, relu, relu6, swish, sigmoid
}

public struct Convolution {
    public let outChannels: Int
    public let kernel: (h: Int, w: Int)
    public let stride: Int
    public let groups: Int
    public let padding: Padding
    public let weights: [Float]
    public let bias: [Float]?
    /// A tensor added to the convolution's output before the activation (residual connection).
    public let residual: String?
    public let activation: Activation

    public init(outChannels: Int, kernel: Int, stride: Int = 1, groups: Int = 1, padding: Padding,
                weights: [Float], bias: [Float]?, residual: String? = nil, activation: Activation) {
        self.outChannels = outChannels
        self.kernel = (kernel, kernel)
        self.stride = stride
        self.groups = groups
        self.padding = padding
        self.weights = weights
        self.bias = bias
        self.residual = residual
        self.activation = activation
    }

    /// Whether each output channel reads one input channel of its own (groups = channels).
    public func isDepthwise(inputChannels: Int) -> Bool {
        groups > 1 && groups == outChannels && groups == inputChannels
    }
}

public struct Dense {
    public let outFeatures: Int
    public let weights: [Float]
    public let bias: [Float]?
    public let activation: Activation

    public init(outFeatures: Int, weights: [Float], bias: [Float]?, activation: Activation) {
        self.outFeatures = outFeatures
        self.weights = weights
        self.bias = bias
        self.activation = activation
    }
}

/// Folding batch normalization (inference statistics) into the preceding convolution:
/// `w' = w * g / sqrt(var + eps)` per output channel and `b' = (b - mean) * g / sqrt(var + eps) + beta`.
public enum BatchNorm {
    public static func fold(weights: [Float], bias: [Float]?, gamma: [Float], beta: [Float],
                            mean: [Float], variance: [Float], epsilon: Float) -> (weights: [Float], bias: [Float]) {
        let out = gamma.count
        precondition(beta.count == out && mean.count == out && variance.count == out && weights.count % out == 0,
                     "batch-norm fold: inconsistent channel counts")
        let perOut = weights.count / out
        var w = weights
        var b = [Float](repeating: 0, count: out)
        for o in 0..<out {
            // Double for the scale keeps folded weights within float rounding of the unfolded math.
            let scale = Double(gamma[o]) / (Double(variance[o]) + Double(epsilon)).squareRoot()
            for i in 0..<perOut { w[o * perOut + i] = Float(Double(weights[o * perOut + i]) * scale) }
            let b0 = Double(bias?[o] ?? 0)
            b[o] = Float((b0 - Double(mean[o])) * scale + Double(beta[o]))
        }
        return (w, b)
    }
}
