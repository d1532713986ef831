import Foundation
import BackboneEngine
import HeadTrainerCore

/// Builds the ONNX graph of `train-head export --format onnx`: image bytes -> the backbone's
/// preprocessing -> the backbone (ONNXBackbone.swift) -> a fine-tuned head's blocks
/// (ONNXBlocks.swift) -> the head -> logits / temperature -> softmax. Tensors are NCHW float32 with
/// a symbolic batch `N`; shapes are tracked as [C, H, W] (or [D] after a dense layer) to turn
/// TensorFlow SAME padding into ONNX's explicit pads.
struct ONNXGraphBuilder {
    static let inputName = "image", outputName = "probabilities"
    /// Every op type the exporter writes (all in the default domain at opset 17).
    static let supportedOps: Set<String> = ["Cast", "Transpose", "Gather", "Sub", "Div", "Conv", "Add", "Mul", "Relu", "Clip",
                                            "Sigmoid", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Gemm",
                                            "BatchNormalization", "Softmax"]

    private(set) var graph = ONNX.Graph(name: "transfer-workbench")
    private var names: Set<String> = []
    /// Clip's min and max (ReLU6), shared by every Clip.
    private var clipBounds: (min: String, max: String)?
    /// Shape of each float tensor without the batch dimension.
    var shapes: [String: [Int]] = [:]

    /// Whatever a backbone or block activation is called in its module.
    enum ActivationKind { case none, relu, relu6, swish, sigmoid }

    /// A fresh name: `base`, or `base_2`, `base_3`, ... if taken.
    private mutating func unique(_ base: String) -> String {
        var name = base, k = 1
        while names.contains(name) { k += 1; name = "\(base)_\(k)" }
        names.insert(name)
        return name
    }

    /// A float32 initializer; returns its name.
    mutating func constant(_ name: String, dims: [Int], _ values: [Float]) -> String {
        let n = unique(name)
        graph.initializers.append(ONNX.Tensor(name: n, dims: dims, floats: values))
        return n
    }

    mutating func constant(_ name: String, dims: [Int], int64s values: [Int]) -> String {
        let n = unique(name)
        graph.initializers.append(ONNX.Tensor(name: n, dims: dims, int64s: values))
        return n
    }

    /// Adds a node with one output named `name`, whose shape (without the batch) is `shape`.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, shape: [Int],
                       _ attributes: [ONNX.Attribute] = []) -> String {
        precondition(Self.supportedOps.contains(op), "ONNX export: \(op) is not in ONNXGraphBuilder.supportedOps")
        let out = unique(name)
        graph.nodes.append(ONNX.Node(op: op, name: out, inputs: inputs, outputs: [out], attributes: attributes))
        shapes[out] = shape
        return out
    }

    mutating func activation(_ kind: ActivationKind, _ x: String, name: String) -> String {
        let shape = shapes[x]!
        switch kind {
        case .none: return x
        case .relu: return node("Relu", [x], name: name + ".relu", shape: shape)
        case .relu6:
            let bounds = clipBounds ?? (constant("relu6.min", dims: [], [0]), constant("relu6.max", dims: [], [6]))
            clipBounds = bounds
            return node("Clip", [x, bounds.min, bounds.max], name: name + ".relu6", shape: shape)
        case .sigmoid: return node("Sigmoid", [x], name: name + ".sigmoid", shape: shape)
        case .swish:
            let s = node("Sigmoid", [x], name: name + ".swish_gate", shape: shape)
            return node("Mul", [x, s], name: name + ".swish", shape: shape)
        }
    }

    /// A convolution (weights [out, in / groups, kh, kw]), its `padding` written as explicit pads
    /// (top, left, bottom, right).
    mutating func conv(_ x: String, name: String, weights: [Float], bias: [Float]?, outChannels: Int, kernel: (h: Int, w: Int),
                       stride: Int, groups: Int, padding: BackboneEngine.Padding) -> String {
        let s = shapes[x]!, inChannels = s[0]
        let w = constant(name + ".weight", dims: [outChannels, inChannels / groups, kernel.h, kernel.w], weights)
        let b = bias.map { constant(name + ".bias", dims: [outChannels], $0) }
        let p = padding.window(input: (s[1], s[2]), kernel: kernel, stride: stride)
        return node("Conv", [x, w] + (b.map { [$0] } ?? []), name: name, shape: [outChannels, p.height, p.width],
                    [.ints("kernel_shape", [kernel.h, kernel.w]), .ints("strides", [stride, stride]),
                     .ints("pads", [p.top, p.left, p.bottom, p.right]), .int("group", groups)])
    }

    mutating func globalAveragePool(_ x: String, name: String) -> String {
        node("GlobalAveragePool", [x], name: name, shape: [shapes[x]![0], 1, 1])
    }

    /// [N, ...] -> [N, product] (no node when already flat).
    mutating func flatten(_ x: String, name: String) -> String {
        let s = shapes[x]!
        return s.count == 1 ? x : node("Flatten", [x], name: name, shape: [s.reduce(1, *)], [.int("axis", 1)])
    }

    // MARK: Input and output

    /// The graph input `image`: uint8 [N, H, W, 3] RGB (the layout of a decoded image in NumPy, PIL or
    /// OpenCV after BGR->RGB), turned into NCHW float `(pixel - mean[c]) / std[c]` with channels in
    /// `bgr ? BGR : RGB` order: the same float operations as `Preprocessing.apply`.
    mutating func imageInput(size: Int, mean: [Float], std: [Float], bgr: Bool) -> String {
        graph.inputs.append(.init(name: Self.inputName, type: .uint8, shape: [.symbol("N"), .value(size), .value(size), .value(3)]))
        shapes[Self.inputName] = [size, size, 3]
        names.insert(Self.inputName)
        let f = node("Cast", [Self.inputName], name: "preprocess.cast", shape: [size, size, 3], [.int("to", ONNX.DataType.float.rawValue)])
        var x = node("Transpose", [f], name: "preprocess.nchw", shape: [3, size, size], [.ints("perm", [0, 3, 1, 2])])
        if bgr {
            let order = constant("preprocess.bgr_order", dims: [3], int64s: [2, 1, 0])
            x = node("Gather", [x, order], name: "preprocess.bgr", shape: [3, size, size], [.int("axis", 1)])
        }
        let m = constant("preprocess.mean", dims: [1, 3, 1, 1], mean), s = constant("preprocess.std", dims: [1, 3, 1, 1], std)
        x = node("Sub", [x, m], name: "preprocess.centered", shape: [3, size, size])
        return node("Div", [x, s], name: "preprocess.input", shape: [3, size, size])
    }

    /// The head on [N, D] features (inference: batch norm with its moving statistics as
    /// BatchNormalization-equivalent scale and shift, no dropout), logits / `temperature`, softmax;
    /// the graph output `probabilities` float [N, classes].
    mutating func head(_ features: String, _ trained: TrainedHead) {
        let w = trained.weights
        var x = features
        func batchNorm(_ b: BatchNormWeights?, _ name: String) {
            guard let b else { return }
            // y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale (as the head computes it).
            let n = b.gamma.count
            let scale = (0..<n).map { b.gamma[$0] / (b.movingVariance[$0] + b.epsilon).squareRoot() }
            let shift = (0..<n).map { b.beta[$0] - b.movingMean[$0] * scale[$0] }
            let sc = constant(name + ".scale", dims: [n], scale), sh = constant(name + ".shift", dims: [n], shift)
            x = node("Mul", [x, sc], name: name + ".scaled", shape: [n])
            x = node("Add", [x, sh], name: name, shape: [n])
        }
        func dense(_ d: DenseWeights, _ name: String) {
            // Our kernels are [in, out]: Gemm's B without transposition.
            let k = constant(name + ".kernel", dims: [d.inputs, d.outputs], d.kernel), b = constant(name + ".bias", dims: [d.outputs], d.bias)
            x = node("Gemm", [x, k, b], name: name, shape: [d.outputs])
        }
        batchNorm(w.inputBatchNorm, "head.bn1")
        if let h = w.hidden {
            dense(h, "head.hidden")
            x = activation(.relu, x, name: "head.hidden")
            batchNorm(w.hiddenBatchNorm, "head.bn2")
        }
        dense(w.output, "head.out")
        let t = Float(trained.temperature ?? 1)
        if t != 1 {
            let tc = constant("head.temperature", dims: [], [t])
            x = node("Div", [x, tc], name: "head.calibrated_logits", shape: [trained.classCount])
        }
        let p = node("Softmax", [x], name: Self.outputName, shape: [trained.classCount], [.int("axis", 1)])
        graph.outputs.append(.init(name: p, type: .float, shape: [.symbol("N"), .value(trained.classCount)]))
    }
}
