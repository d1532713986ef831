import BackboneEngine
import WeightFormats

/// ResNet-50 and ResNet-101: a 7x7/2 stem and 3x3/2 max pool, then four stages of bottleneck
/// blocks (1x1 reduce, 3x3, 1x1 expand x4, plus the block input), global average pool.
///
/// He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
/// (arXiv:1512.03385).
///
/// Two published variants, told apart by the weights' layout (never by a flag):
/// - torchvision and timm: "v1.5", the stride-2 of a stage's first block sits in the 3x3
///   convolution; convolutions have no bias; batch norm epsilon 1e-5; ImageNet preprocessing.
///   Names `conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc` (timm uses the same names).
/// - Keras applications: "v1" as in the paper, the stride sits in the first 1x1 convolution (and
///   in the projection shortcut); every convolution has a bias; batch norm epsilon 1.001e-5; caffe
///   preprocessing (BGR, mean subtracted, 0-255). Names `conv1_conv`, `conv2_block1_1_conv`,
///   `conv2_block1_0_conv` (projection shortcut), `predictions`. Keras pads explicitly
///   (ZeroPadding2D(3) before the 7x7 valid convolution, ZeroPadding2D(1) before the 3x3 valid
///   max pool); that is the same geometry as PyTorch's symmetric padding and is written as such.
/// Batch norm is folded into the convolutions. The max pool's zero padding equals ignoring the
/// border since it follows a ReLU.
///
/// Outputs: `features` (2048, global average pool of the last stage), with the classifier `logits`
/// (1000), and `block_input.layer4.<block>` for the last `cacheableBlocks` blocks (`extract --cache-blocks`).
///
/// Published files (`spec(_:).published`, `extract weights list`): Keras
/// `resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5`, `resnet101_...`; torchvision
/// `resnet50-0676ba61.pth`, `resnet50-11ad3fa6.pth` (V2 recipe, same network),
/// `resnet101-63fe2227.pth`, `resnet101-cd907fc2.pth`. timm `resnet50.a1_in1k` etc. (same tensor
/// names as torchvision; safetensors) load as the torchvision layout with --weights.
public enum ResNet {
    public enum Depth: Int, CaseIterable, Sendable {
        case resnet50 = 50, resnet101 = 101

        /// Bottleneck blocks per stage.
        var blocks: [Int] { self == .resnet50 ? [3, 4, 6, 3] : [3, 4, 23, 3] }
    }

    /// Where the stride of a downsampling block sits.
    enum Variant { case v1, v1_5 }

    /// Bottleneck width of each stage; a block outputs 4x as many channels.
    static let widths = [64, 128, 256, 512]
    static let expansion = 4
    public static let featureDimension = 2048
    /// Blocks whose inputs are named outputs, counted from the end: the last blocks of the last stage
    /// with an identity shortcut (2048 x 7 x 7 inputs at 224), `block_input.layer4.<block>`.
    public static let cacheableBlocks = 2
    static let classes = 1000

    /// A convolution of the network (with its batch norm), independent of any naming.
    enum Part {
        case stem
        /// Stage 0...3, block, convolution 1...3 of the bottleneck.
        case conv(stage: Int, block: Int, index: Int)
        /// The projection shortcut of a stage's first block.
        case shortcut(stage: Int)
        case classifier
    }

    // MARK: Tensor lists

    /// Visits every part with its shape: (part, output channels, input channels, kernel).
    static func parts(_ depth: Depth, _ visit: (Part, Int, Int, Int) -> Void) {
        visit(.stem, 64, 3, 7)
        var inp = 64
        for (s, blocks) in depth.blocks.enumerated() {
            let width = widths[s], out = width * expansion
            for b in 0..<blocks {
                visit(.conv(stage: s, block: b, index: 1), width, inp, 1)
                visit(.conv(stage: s, block: b, index: 2), width, width, 3)
                visit(.conv(stage: s, block: b, index: 3), out, width, 1)
                if b == 0 { visit(.shortcut(stage: s), out, inp, 1) }
                inp = out
            }
        }
    }

    static func torchvisionName(_ part: Part) -> (conv: String, bn: String) {
        switch part {
        case .stem: return ("conv1", "bn1")
        case .conv(let s, let b, let i): return ("layer\(s + 1).\(b).conv\(i)", "layer\(s + 1).\(b).bn\(i)")
        case .shortcut(let s): return ("layer\(s + 1).0.downsample.0", "layer\(s + 1).0.downsample.1")
        case .classifier: return ("fc", "")
        }
    }

    static func kerasName(_ part: Part) -> (conv: String, bn: String) {
        switch part {
        case .stem: return ("conv1_conv", "conv1_bn")
        case .conv(let s, let b, let i): return ("conv\(s + 2)_block\(b + 1)_\(i)_conv", "conv\(s + 2)_block\(b + 1)_\(i)_bn")
        case .shortcut(let s): return ("conv\(s + 2)_block1_0_conv", "conv\(s + 2)_block1_0_bn")
        case .classifier: return ("predictions", "")
        }
    }

    public static func torchvisionTensors(_ depth: Depth, classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        parts(depth) { part, out, inp, k in
            let (conv, bn) = torchvisionName(part)
            shapes["\(conv).weight"] = [out, inp, k, k]
            TorchWeights.batchNorm(bn, out, into: &shapes)
        }
        if classifier {
            shapes["fc.weight"] = [classes, featureDimension]
            shapes["fc.bias"] = [classes]
        }
        return shapes
    }

    /// Canonical Keras names (`layer/weight`) and stored shapes.
    public static func kerasTensors(_ depth: Depth, classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        parts(depth) { part, out, inp, k in
            let (conv, bn) = kerasName(part)
            shapes["\(conv)/kernel"] = [k, k, inp, out]
            shapes["\(conv)/bias"] = [out]
            KerasWeights.batchNorm(bn, out, into: &shapes)
        }
        if classifier {
            shapes["predictions/kernel"] = [featureDimension, classes]
            shapes["predictions/bias"] = [classes]
        }
        return shapes
    }

    // MARK: The network

    /// One definition for both variants; `read` supplies each part's weights (batch norm folded)
    /// in the engine's layout.
    static func network(_ depth: Depth, variant: Variant, classifier: Bool,
                        read: (Part) throws -> (weights: [Float], bias: [Float]?)) throws -> Network {
        var net = Network(name: "resnet\(depth.rawValue)")
        func conv(_ name: String, _ part: Part, input: String, out: Int, kernel: Int, stride: Int = 1,
                  residual: String? = nil, activation: Activation) throws -> String {
            let (w, b) = try read(part)
            return net.add(name, .conv(Convolution(outChannels: out, kernel: kernel, stride: stride,
                                                   padding: .symmetric(kernel / 2), weights: w, bias: b,
                                                   residual: residual, activation: activation)),
                           inputs: [input])
        }

        var x = try conv("stem", .stem, input: "input", out: 64, kernel: 7, stride: 2, activation: .relu)
        x = net.add("stem.pool", .maxPool(kernel: 3, stride: 2, padding: .symmetric(1)), inputs: [x])
        for (s, blocks) in depth.blocks.enumerated() {
            let width = widths[s], out = width * expansion
            for b in 0..<blocks {
                let stride = b == 0 && s > 0 ? 2 : 1
                let p = "stage\(s + 1).block\(b + 1)"
                if s == widths.count - 1 && b >= blocks - cacheableBlocks { net.outputs["block_input.layer4.\(b)"] = x }
                // The stride sits in the first 1x1 (v1) or in the 3x3 (v1.5).
                let (stride1, stride2) = variant == .v1 ? (stride, 1) : (1, stride)
                let shortcut = b == 0
                    ? try conv("\(p).shortcut", .shortcut(stage: s), input: x, out: out, kernel: 1, stride: stride,
                               activation: .none)
                    : x
                var h = try conv("\(p).conv1", .conv(stage: s, block: b, index: 1), input: x, out: width, kernel: 1,
                                 stride: stride1, activation: .relu)
                h = try conv("\(p).conv2", .conv(stage: s, block: b, index: 2), input: h, out: width, kernel: 3,
                             stride: stride2, activation: .relu)
                x = try conv("\(p).conv3", .conv(stage: s, block: b, index: 3), input: h, out: out, kernel: 1,
                             residual: shortcut, activation: .relu)
            }
        }
        let pooled = net.add("pool", .globalAveragePool, inputs: [x])
        net.outputs["features"] = pooled
        if classifier {
            let (w, b) = try read(.classifier)
            net.outputs["logits"] = net.add("fc", .dense(Dense(outFeatures: classes, weights: w, bias: b,
                                                               activation: .none)), inputs: [pooled])
        }
        return net
    }

    static let torchvisionEpsilon: Float = 1e-5
    static let kerasEpsilon: Float = 1.001e-5

    static func torchvisionNetwork(_ depth: Depth, weights sd: StateDict) throws -> Network {
        let t = TorchWeights(sd: sd)
        return try network(depth, variant: .v1_5, classifier: sd.tensors["fc.weight"] != nil) { part in
            if case .classifier = part { return try t.dense("fc") }
            let (conv, bn) = torchvisionName(part)
            return try t.conv(conv, bn: bn, epsilon: torchvisionEpsilon)
        }
    }

    static func kerasNetwork(_ depth: Depth, weights sd: StateDict) throws -> Network {
        let k = KerasWeights(sd)
        return try network(depth, variant: .v1, classifier: k.has("predictions", "kernel")) { part in
            if case .classifier = part { return try k.dense("predictions") }
            let (conv, bn) = kerasName(part)
            return try k.conv(conv, bn: bn, epsilon: kerasEpsilon)
        }
    }

    // MARK: The backbones

    static func spec(_ depth: Depth) -> BackboneSpec {
        // The last block of stage 3 tells ResNet50 (6 blocks) and ResNet101 (23) apart.
        let last = depth.blocks[2] - 1
        let torchvision = WeightLayout(
            name: "torchvision", preprocessing: .imagenet,
            matches: { $0.shape(of: "layer3.\(last).conv1.weight") != nil && $0.shape(of: "layer3.\(last + 1).conv1.weight") == nil },
            expected: { torchvisionTensors(depth, classifier: $0.tensors["fc.weight"] != nil) },
            ignoring: { TorchWeights.ignoring($0) },
            classifier: ["fc."],
            build: { try torchvisionNetwork(depth, weights: $0) })
        let keras = WeightLayout(
            name: "keras", preprocessing: .caffe,
            matches: { sd in
                let k = KerasNames(sd)
                return k.has("conv4_block\(last + 1)_1_conv", "kernel") && !k.has("conv4_block\(last + 2)_1_conv", "kernel")
            },
            expected: { sd in let k = KerasWeights(sd); return k.expected(kerasTensors(depth, classifier: k.has("predictions", "kernel"))) },
            classifier: ["predictions/", "probs/"],
            build: { try kerasNetwork(depth, weights: $0) })
        let lastStage = depth.blocks[widths.count - 1]
        return BackboneSpec(id: "resnet\(depth.rawValue)", displayName: "ResNet\(depth.rawValue)", inputSize: 224,
                            featureDimension: featureDimension, layouts: [torchvision, keras],
                            published: published(depth, keras: keras, torchvision: torchvision),
                            blockInputOutputs: (1...cacheableBlocks).map { "block_input.layer4.\(lastStage - $0)" },
                            blockNetworks: { try blockNetwork(depth, layout: $0, lastBlocks: $1) })
    }

    /// The Keras and torchvision files of each depth, preferred first.
    static func published(_ depth: Depth, keras: WeightLayout, torchvision: WeightLayout) -> [PublishedWeights] {
        switch depth {
        case .resnet50: return [
            .keras(keras, "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   md5: "4d473c1dd8becc155b73f8504c6f6626", bytes: 94_765_736, note: "no classifier"),
            .keras(keras, "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                   md5: "2cb95161c43110f7111970584f804107", bytes: 102_967_424, note: "with classifier"),
            .torchvision(torchvision, "resnet50-0676ba61.pth", note: "IMAGENET1K_V1"),
            .torchvision(torchvision, "resnet50-11ad3fa6.pth", note: "IMAGENET1K_V2, new recipe"),
        ]
        case .resnet101: return [
            .keras(keras, "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   md5: "88cf7a10940856eca736dc7b7e228a21", bytes: 171_446_536, note: "no classifier"),
            .keras(keras, "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
                   md5: "f1aeb4b969a6efcfb50fad2f0c20cfc5", note: "with classifier"),
            .torchvision(torchvision, "resnet101-63fe2227.pth", note: "IMAGENET1K_V1"),
            .torchvision(torchvision, "resnet101-cd907fc2.pth", note: "IMAGENET1K_V2, new recipe"),
        ]
        }
    }
}
