import BackboneEngine
import Foundation
import WeightFormats

/// EfficientNet-B0: MBConv blocks (1x1 expand, depthwise kxk, squeeze-excite, 1x1 project, identity
/// skip when shape allows) with swish activations.
///
/// Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
/// (arXiv:1905.11946); the MBConv block is from MobileNetV2 (Sandler et al., CVPR 2018) and the
/// squeeze-excite gate from Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
///
/// Squeeze-excite here: global average pool -> 1x1 convolution to max(1, block input channels / 4)
/// with bias + swish -> 1x1 convolution back with bias + sigmoid -> multiply the activation.
///
/// Two layouts of the same network:
/// - torchvision: PyTorch symmetric padding (k / 2), batch norm epsilon 1e-5, ImageNet
///   preprocessing. Names `features.0.0` (stem), `features.<stage>.<block>.block.<i>`,
///   `features.8.0` (head), `classifier.1`.
/// - Keras applications: TensorFlow SAME padding (asymmetric on stride 2, as Keras's
///   ZeroPadding2D(correct_pad) + valid), batch norm epsilon 1e-3, and the preprocessing inside
///   the model: Rescaling(1/255), then a Normalization layer whose mean and variance are in the
///   weights file, then (as `EfficientNetB0(weights="imagenet")` builds it) Rescaling by
///   1/sqrt(ImageNet std) per channel (keras-team/keras#15076, tensorflow#49930: the ImageNet file
///   stores the std as the variance). All three are one per-channel affine map, the network's
///   `inputAffine`, which the extractor folds into its per-pixel preprocessing table (folding it
///   into the stem would change what the zero padding means). The layout's preprocessing is
///   therefore raw 0-255 RGB (`Preprocessing.rawRGB`), so nobody can divide by 255 twice, and the
///   map's values come from the weights file. Names `stem_conv`, `block2a_expand_conv`, `block2a_dwconv`,
///   `block2a_se_reduce`, `top_conv`, `normalization`, `predictions`.
///
/// Outputs: `features` (1280, global average pool of the head after BN + swish), with the
/// classifier `logits` (1000), and `block_input.<index>` (the input of block `index`, 0...15) for the
/// last `cacheableBlocks` blocks: what `extract --cache-blocks` stores, `blockNetwork` the blocks after it.
///
/// Published files (`spec.published`, `extract weights list`): Keras `efficientnetb0_notop.h5`,
/// `efficientnetb0.h5` (with the classifier), torchvision `efficientnet_b0_rwightman-7f5810bc.pth`.
/// timm `efficientnet_b0` (e.g. `efficientnet_b0.ra_in1k`): the torchvision network (symmetric
/// padding, epsilon 1e-5, ImageNet preprocessing) under timm's names: `conv_stem`/`bn1`,
/// `blocks.<stage>.<block>.{conv_pw, bn1, conv_dw, bn2, se.conv_reduce, se.conv_expand, conv_pwl,
/// bn3}` (the first stage, which does not expand: `conv_dw`/`bn1`, `conv_pw`/`bn2`),
/// `conv_head`/`bn2`, `classifier`.
public enum EfficientNet {
    typealias Stage = EfficientNetLite.Stage

    /// EfficientNet-B0's seven stages (width and depth multipliers 1.0): the same table the Lite
    /// family starts from (Lite drops squeeze-excite and swish, not stages).
    static let stages = EfficientNetLite.stages
    static let stem = 32
    public static let featureDimension = 1280
    static let classes = 1000
    /// The constant Keras's `EfficientNetB0(weights="imagenet")` divides by (sqrt of) after Normalization.
    static let kerasImagenetStd: [Double] = [0.229, 0.224, 0.225]
    /// Blocks whose inputs are named outputs, counted from the end (12...15: all 192 x 7 x 7 at 224).
    public static let cacheableBlocks = 4

    /// One block of the network with its shape.
    struct Block {
        let stage: Int, repeatIndex: Int, kernel: Int, stride: Int, input: Int, expanded: Int, squeezed: Int, output: Int
        var expands: Bool { expanded != input }
        var skip: Bool { stride == 1 && input == output }
    }

    static let blocks: [Block] = stages.enumerated().flatMap { s, stage in
        (0..<stage.repeats).map { r in
            let inp = r == 0 ? stage.input : stage.output
            return Block(stage: s, repeatIndex: r, kernel: stage.kernel, stride: r == 0 ? stage.stride : 1, input: inp,
                         expanded: inp * stage.expand, squeezed: max(1, inp / 4), output: stage.output)
        }
    }

    enum Part { case stem, expand(Int), depthwise(Int), seReduce(Int), seExpand(Int), project(Int), head, classifier }

    // MARK: Names

    static func torchvisionName(_ part: Part) -> String {
        func block(_ i: Int) -> String { "features.\(blocks[i].stage + 1).\(blocks[i].repeatIndex).block" }
        // Inside a block: [expand], depthwise, squeeze-excite, project.
        func offset(_ i: Int) -> Int { blocks[i].expands ? 1 : 0 }
        switch part {
        case .stem: return "features.0"
        case .expand(let i): return "\(block(i)).0"
        case .depthwise(let i): return "\(block(i)).\(offset(i))"
        case .seReduce(let i): return "\(block(i)).\(offset(i) + 1).fc1"
        case .seExpand(let i): return "\(block(i)).\(offset(i) + 1).fc2"
        case .project(let i): return "\(block(i)).\(offset(i) + 2)"
        case .head: return "features.8"
        case .classifier: return "classifier.1"
        }
    }

    /// timm (convolution, batch norm) names of a part; batch norm "" when there is none.
    static func timmName(_ part: Part) -> (conv: String, bn: String) {
        func block(_ i: Int) -> String { "blocks.\(blocks[i].stage).\(blocks[i].repeatIndex)" }
        switch part {
        case .stem: return ("conv_stem", "bn1")
        case .expand(let i): return ("\(block(i)).conv_pw", "\(block(i)).bn1")
        case .depthwise(let i): return ("\(block(i)).conv_dw", "\(block(i)).\(blocks[i].expands ? "bn2" : "bn1")")
        case .seReduce(let i): return ("\(block(i)).se.conv_reduce", "")
        case .seExpand(let i): return ("\(block(i)).se.conv_expand", "")
        case .project(let i):
            // A block without expansion (timm's DepthwiseSeparableConv) calls its projection conv_pw.
            return blocks[i].expands ? ("\(block(i)).conv_pwl", "\(block(i)).bn3") : ("\(block(i)).conv_pw", "\(block(i)).bn2")
        case .head: return ("conv_head", "bn2")
        case .classifier: return ("classifier", "")
        }
    }

    /// Keras layer prefix of block `i`: `block<stage><a, b, c...>_`.
    static func kerasBlock(_ i: Int) -> String {
        "block\(blocks[i].stage + 1)\(Character(UnicodeScalar(UInt8(97 + blocks[i].repeatIndex))))_"
    }

    /// Keras (convolution, batch norm) layer names of a part.
    static func kerasName(_ part: Part) -> (conv: String, bn: String) {
        switch part {
        case .stem: return ("stem_conv", "stem_bn")
        case .expand(let i): return ("\(kerasBlock(i))expand_conv", "\(kerasBlock(i))expand_bn")
        case .depthwise(let i): return ("\(kerasBlock(i))dwconv", "\(kerasBlock(i))bn")
        case .seReduce(let i): return ("\(kerasBlock(i))se_reduce", "")
        case .seExpand(let i): return ("\(kerasBlock(i))se_expand", "")
        case .project(let i): return ("\(kerasBlock(i))project_conv", "\(kerasBlock(i))project_bn")
        case .head: return ("top_conv", "top_bn")
        case .classifier: return ("predictions", "")
        }
    }

    // MARK: Tensor lists

    /// Visits every convolution: (part, output channels, input channels per group, kernel,
    /// depthwise, batch norm follows).
    static func parts(_ visit: (Part, Int, Int, Int, Bool, Bool) -> Void) {
        visit(.stem, stem, 3, 3, false, true)
        for (i, b) in blocks.enumerated() {
            if b.expands { visit(.expand(i), b.expanded, b.input, 1, false, true) }
            visit(.depthwise(i), b.expanded, 1, b.kernel, true, true)
            visit(.seReduce(i), b.squeezed, b.expanded, 1, false, false)
            visit(.seExpand(i), b.expanded, b.squeezed, 1, false, false)
            visit(.project(i), b.output, b.expanded, 1, false, true)
        }
        visit(.head, featureDimension, stages.last!.output, 1, false, true)
    }

    public static func torchvisionTensors(classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        parts { part, out, inp, k, _, bn in
            let name = torchvisionName(part)
            if bn {
                shapes["\(name).0.weight"] = [out, inp, k, k]
                TorchWeights.batchNorm("\(name).1", out, into: &shapes)
            } else {
                shapes["\(name).weight"] = [out, inp, k, k]
                shapes["\(name).bias"] = [out]
            }
        }
        if classifier {
            shapes["classifier.1.weight"] = [classes, featureDimension]
            shapes["classifier.1.bias"] = [classes]
        }
        return shapes
    }

    public static func timmTensors(classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        parts { part, out, inp, k, _, bn in
            let (conv, norm) = timmName(part)
            shapes["\(conv).weight"] = [out, inp, k, k]
            if bn { TorchWeights.batchNorm(norm, out, into: &shapes) } else { shapes["\(conv).bias"] = [out] }
        }
        if classifier {
            shapes["classifier.weight"] = [classes, featureDimension]
            shapes["classifier.bias"] = [classes]
        }
        return shapes
    }

    /// Canonical Keras names (`layer/weight`) and stored shapes. The Normalization layer's
    /// `count` is not listed (the layout ignores it).
    public static func kerasTensors(classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = ["normalization/mean": [3], "normalization/variance": [3]]
        parts { part, out, inp, k, depthwise, bn in
            let (conv, norm) = kerasName(part)
            if depthwise {
                shapes["\(conv)/depthwise_kernel"] = [k, k, out, 1]
            } else {
                shapes["\(conv)/kernel"] = [k, k, inp, out]
            }
            if bn { KerasWeights.batchNorm(norm, out, into: &shapes) } else { shapes["\(conv)/bias"] = [out] }
        }
        if classifier {
            shapes["predictions/kernel"] = [featureDimension, classes]
            shapes["predictions/bias"] = [classes]
        }
        return shapes
    }

    // MARK: The network

    /// One definition for both layouts. `read` supplies each convolution's weights (batch norm
    /// folded) in the engine's layout; `padding(kernel)` is the layout's padding rule;
    /// `inputAffine` is the network's own input normalization, if any (`Network.inputAffine`).
    static func network(classifier: Bool, padding: (Int) -> Padding, inputAffine: ChannelAffine?,
                        read: (Part) throws -> (weights: [Float], bias: [Float]?)) throws -> Network {
        var net = Network(name: "efficientnet_b0")
        net.inputAffine = inputAffine
        func conv(_ name: String, _ part: Part, input: String, out: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
                  residual: String? = nil, activation: Activation) throws -> String {
            let (w, b) = try read(part)
            return net.add(name, .conv(Convolution(outChannels: out, kernel: kernel, stride: stride, groups: groups,
                                                   padding: padding(kernel), weights: w, bias: b, residual: residual,
                                                   activation: activation)),
                           inputs: [input])
        }

        var x = try conv("stem", .stem, input: "input", out: stem, kernel: 3, stride: 2, activation: .swish)
        for (i, b) in blocks.enumerated() {
            let p = "b\(i)"
            let blockInput = x
            if i >= blocks.count - cacheableBlocks { net.outputs["block_input.\(i)"] = x }
            var h = x
            if b.expands {
                h = try conv("\(p).expand", .expand(i), input: h, out: b.expanded, kernel: 1, activation: .swish)
            }
            h = try conv("\(p).depthwise", .depthwise(i), input: h, out: b.expanded, kernel: b.kernel, stride: b.stride,
                         groups: b.expanded, activation: .swish)
            let squeezed = net.add("\(p).se.pool", .globalAveragePool, inputs: [h])
            let reduced = try conv("\(p).se.reduce", .seReduce(i), input: squeezed, out: b.squeezed, kernel: 1,
                                   activation: .swish)
            let gate = try conv("\(p).se.expand", .seExpand(i), input: reduced, out: b.expanded, kernel: 1,
                                activation: .sigmoid)
            h = net.add("\(p).se.scale", .multiply, inputs: [h, gate])
            x = try conv("\(p).project", .project(i), input: h, out: b.output, kernel: 1,
                         residual: b.skip ? blockInput : nil, activation: .none)
        }
        x = try conv("head", .head, input: x, out: featureDimension, kernel: 1, activation: .swish)
        let pooled = net.add("pool", .globalAveragePool, inputs: [x])
        net.outputs["features"] = pooled
        if classifier {
            let (w, b) = try read(.classifier)
            net.outputs["logits"] = net.add("fc", .dense(Dense(outFeatures: classes, weights: w, bias: b, activation: .none)),
                                            inputs: [pooled])
        }
        return net
    }

    static let torchvisionEpsilon: Float = 1e-5
    static let kerasEpsilon: Float = 1e-3

    static func torchvisionNetwork(weights sd: StateDict) throws -> Network {
        let t = TorchWeights(sd: sd)
        return try network(classifier: sd.tensors["classifier.1.weight"] != nil, padding: { .symmetric($0 / 2) },
                           inputAffine: nil) { part in
            let name = torchvisionName(part)
            switch part {
            case .classifier: return try t.dense(name)
            case .seReduce, .seExpand: return try t.conv(name, bn: nil, bias: true, epsilon: 0)
            default: return try t.conv("\(name).0", bn: "\(name).1", epsilon: torchvisionEpsilon)
            }
        }
    }

    static func timmNetwork(weights sd: StateDict) throws -> Network {
        let t = TorchWeights(sd: sd)
        return try network(classifier: sd.tensors["classifier.weight"] != nil, padding: { .symmetric($0 / 2) },
                           inputAffine: nil) { part in
            let (conv, bn) = timmName(part)
            switch part {
            case .classifier: return try t.dense(conv)
            case .seReduce, .seExpand: return try t.conv(conv, bn: nil, bias: true, epsilon: 0)
            default: return try t.conv(conv, bn: bn, epsilon: torchvisionEpsilon)
            }
        }
    }

    static func kerasNetwork(weights sd: StateDict) throws -> Network {
        let k = KerasWeights(sd)
        return try network(classifier: k.has("predictions", "kernel"), padding: { _ in .same },
                           inputAffine: try kerasInputAffine(k)) { part in
            let (conv, bn) = kerasName(part)
            switch part {
            case .classifier: return try k.dense(conv)
            case .seReduce, .seExpand: return try k.conv(conv)
            case .depthwise: return try k.conv(conv, bn: bn, epsilon: kerasEpsilon, depthwise: true)
            default: return try k.conv(conv, bn: bn, epsilon: kerasEpsilon)
            }
        }
    }

    /// Keras's input layers as one affine map on 0-255 pixels:
    /// `((x / 255 - mean) / max(sqrt(variance), 1e-7)) / sqrt(std)`.
    static func kerasInputAffine(_ k: KerasWeights) throws -> ChannelAffine {
        let layer = normalizationLayer(k)
        let mean = try k.tensor(layer, "mean").values
        let variance = try k.tensor(layer, "variance").values
        var scale: [Float] = [], shift: [Float] = []
        for c in 0..<3 {
            let sigma = max(Double(variance[c]).squareRoot(), 1e-7)
            let extra = 1 / kerasImagenetStd[c].squareRoot()
            scale.append(Float(extra / (255 * sigma)))
            shift.append(Float(-Double(mean[c]) / sigma * extra))
        }
        return ChannelAffine(scale: scale, shift: shift)
    }

    /// The Normalization layer's name: `normalization`, or `normalization_1` ... when the model
    /// was built after other models in the same Keras session.
    static func normalizationLayer(_ k: KerasWeights) -> String {
        k.layers(having: "variance").first { $0.hasPrefix("normalization") } ?? "normalization"
    }

    // MARK: The backbone

    static let spec: BackboneSpec = {
        let torchvision = WeightLayout(
            name: "torchvision", preprocessing: .imagenet,
            matches: { $0.shape(of: "features.1.0.block.1.fc1.weight") != nil && $0.shape(of: "features.8.0.weight") != nil },
            expected: { torchvisionTensors(classifier: $0.tensors["classifier.1.weight"] != nil) },
            ignoring: { TorchWeights.ignoring($0) },
            classifier: ["classifier."],
            build: { try torchvisionNetwork(weights: $0) })
        let timm = WeightLayout(
            name: "timm", preprocessing: .imagenet,
            matches: { $0.shape(of: "conv_stem.weight") != nil && $0.shape(of: "blocks.1.0.conv_pwl.weight") != nil },
            expected: { timmTensors(classifier: $0.tensors["classifier.weight"] != nil) },
            ignoring: { TorchWeights.ignoring($0) },
            classifier: ["classifier."],
            build: { try timmNetwork(weights: $0) })
        let keras = WeightLayout(
            name: "keras", preprocessing: .rawRGB,
            matches: { sd in let k = KerasNames(sd); return k.has("stem_conv", "kernel") && k.has("block1a_se_reduce", "kernel") },
            expected: { sd in
                let k = KerasWeights(sd)
                var shapes = kerasTensors(classifier: k.has("predictions", "kernel"))
                let norm = normalizationLayer(k)
                for w in ["mean", "variance"] { shapes["\(norm)/\(w)"] = shapes.removeValue(forKey: "normalization/\(w)") }
                return k.expected(shapes)
            },
            // The Normalization layer's sample counter (an int64 scalar).
            ignoring: { KerasNames.weight($0) == "count" },
            classifier: ["predictions/"],
            build: { try kerasNetwork(weights: $0) })
        return BackboneSpec(id: "efficientnet_b0", displayName: "EfficientNet-B0", inputSize: 224,
                            featureDimension: featureDimension, layouts: [torchvision, timm, keras], published: [
                                PublishedWeights(layout: keras, url: "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                                                 fileName: "efficientnetb0_notop.h5", digest: .md5("50bc09e76180e00e4465e1a485ddc09d"),
                                                 bytes: 16_705_208, note: "no classifier"),
                                PublishedWeights(layout: keras, url: "https://storage.googleapis.com/keras-applications/efficientnetb0.h5",
                                                 fileName: "efficientnetb0.h5", digest: .md5("902e53a9f72be733fc0bcb005b3ebbac"),
                                                 note: "with classifier"),
                                .torchvision(torchvision, "efficientnet_b0_rwightman-7f5810bc.pth", note: "IMAGENET1K_V1"),
                            ], blockInputOutputs: (1...cacheableBlocks).map { "block_input.\(blocks.count - $0)" },
                            blockNetworks: { try blockNetwork(layout: $0, lastBlocks: $1) })
    }()
}
