import BackboneEngine
import WeightFormats

/// VGG16 (configuration D): thirteen 3x3 convolutions with ReLU in five blocks, each block ending
/// in a 2x2 max pool, then three fully connected layers.
///
/// Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
/// ICLR 2015 (arXiv:1409.1556).
///
/// Outputs:
/// - `features` (512): global average pool of the last block (after its max pool), what Keras's
///   `VGG16(include_top=False, pooling="avg")` returns. Works at any input size.
/// - `fc7` (4096, after ReLU) and `logits` (1000), when the file has the classifier. The
///   classifier reads the 7 x 7 x 512 map flattened, so these need 224 x 224 inputs.
/// - `block_input.<i>`: the input of convolution i (0-based) for the last `cacheableBlocks`
///   (`extract --cache-blocks`; a "block" of VGG16 is one convolution of block 5).
///
/// Layouts: torchvision (`features.0.weight` ..., `classifier.0/3/6` for fc6/fc7/fc8; ImageNet
/// preprocessing) and Keras applications (`block1_conv1` ..., `fc1`/`fc2`/`predictions`; caffe
/// preprocessing: BGR, mean subtracted, 0-255). Same architecture; convolutions carry biases, no
/// batch norm. Keras flattens the last map as (h, w, c) where the engine flattens (c, h, w): fc1's
/// inputs are permuted when reading the file.
///
/// timm `vgg16` (e.g. `vgg16.tv_in1k`, torchvision's weights re-published): `features.N` as in
/// torchvision, then fc6/fc7 as convolutions (`pre_logits.fc1` 7x7 over the 7x7 map, which is the
/// dense layer over the flattened (c, h, w) map, and `pre_logits.fc2` 1x1) and `head.fc` for fc8;
/// ImageNet preprocessing.
///
/// Published files (`spec.published`, `extract weights list`): Keras
/// `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` and `..._kernels.h5` (with the classifier),
/// torchvision `vgg16-397923af.pth`.
public enum VGG {
    /// Five blocks: (convolutions, output channels). A 2x2 max pool ends each block.
    static let blocks = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
    /// The 13 convolutions in order: (block, index in block, output channels), all counted from 1.
    static let convolutions: [(block: Int, index: Int, out: Int)] = blocks.enumerated().flatMap { b, spec in
        (1...spec.0).map { (b + 1, $0, spec.1) }
    }
    public static let featureDimension = 512
    /// Convolutions whose inputs are named outputs, counted from the end: block 5's three (512 x 14 x
    /// 14 inputs at 224), `block_input.<index>` with the convolution's index 10...12.
    public static let cacheableBlocks = 3
    static let hidden = 4096
    static let classes = 1000
    /// The classifier's input map: 512 x 7 x 7 at 224.
    static let mapSize = 7

    /// Index of each convolution in torchvision's `features` Sequential (ReLUs and pools between).
    static let torchvisionIndex = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]

    /// Keras layer name of convolution `i` (0-based): `block<b>_conv<j>`.
    static func kerasName(_ i: Int) -> String { "block\(convolutions[i].block)_conv\(convolutions[i].index)" }

    enum Part { case conv(Int), fc6, fc7, fc8 }

    // MARK: Tensor lists

    public static func torchvisionTensors(classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        var inp = 3
        for (i, (_, _, out)) in convolutions.enumerated() {
            shapes["features.\(torchvisionIndex[i]).weight"] = [out, inp, 3, 3]
            shapes["features.\(torchvisionIndex[i]).bias"] = [out]
            inp = out
        }
        if classifier {
            for (index, inputs, outputs) in [(0, 512 * mapSize * mapSize, hidden), (3, hidden, hidden), (6, hidden, classes)] {
                shapes["classifier.\(index).weight"] = [outputs, inputs]
                shapes["classifier.\(index).bias"] = [outputs]
            }
        }
        return shapes
    }

    /// timm: torchvision's `features`, and the classifier as `pre_logits.fc1/fc2` convolutions + `head.fc`.
    public static func timmTensors(classifier: Bool) -> [String: [Int]] {
        var shapes = torchvisionTensors(classifier: false)
        if classifier {
            shapes["pre_logits.fc1.weight"] = [hidden, 512, mapSize, mapSize]
            shapes["pre_logits.fc1.bias"] = [hidden]
            shapes["pre_logits.fc2.weight"] = [hidden, hidden, 1, 1]
            shapes["pre_logits.fc2.bias"] = [hidden]
            shapes["head.fc.weight"] = [classes, hidden]
            shapes["head.fc.bias"] = [classes]
        }
        return shapes
    }

    /// Canonical Keras names (`layer/weight`) and stored shapes.
    public static func kerasTensors(classifier: Bool) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        var inp = 3
        for (i, (_, _, out)) in convolutions.enumerated() {
            shapes["\(kerasName(i))/kernel"] = [3, 3, inp, out]
            shapes["\(kerasName(i))/bias"] = [out]
            inp = out
        }
        if classifier {
            for (name, inputs, outputs) in [("fc1", 512 * mapSize * mapSize, hidden), ("fc2", hidden, hidden),
                                            ("predictions", hidden, classes)] {
                shapes["\(name)/kernel"] = [inputs, outputs]
                shapes["\(name)/bias"] = [outputs]
            }
        }
        return shapes
    }

    // MARK: The network

    /// One definition for both layouts; `read` supplies each part's weights in engine layout.
    static func network(classifier: Bool, read: (Part) throws -> (weights: [Float], bias: [Float]?)) throws -> Network {
        var net = Network(name: "vgg16")
        var x = "input"
        for (i, (block, index, out)) in convolutions.enumerated() {
            let (w, b) = try read(.conv(i))
            if i >= convolutions.count - cacheableBlocks { net.outputs["block_input.\(i)"] = x }
            x = net.add("block\(block).conv\(index)", .conv(Convolution(outChannels: out, kernel: 3, padding: .symmetric(1),
                                                                       weights: w, bias: b, activation: .relu)),
                        inputs: [x])
            if index == blocks[block - 1].0 {
                x = net.add("block\(block).pool", .maxPool(kernel: 2, stride: 2, padding: .valid), inputs: [x])
            }
        }
        net.outputs["features"] = net.add("gap", .globalAveragePool, inputs: [x])
        if classifier {
            let (w6, b6) = try read(.fc6), (w7, b7) = try read(.fc7), (w8, b8) = try read(.fc8)
            let fc6 = net.add("fc6", .dense(Dense(outFeatures: hidden, weights: w6, bias: b6, activation: .relu)), inputs: [x])
            let fc7 = net.add("fc7", .dense(Dense(outFeatures: hidden, weights: w7, bias: b7, activation: .relu)), inputs: [fc6])
            net.outputs["fc7"] = fc7
            net.outputs["logits"] = net.add("fc8", .dense(Dense(outFeatures: classes, weights: w8, bias: b8,
                                                                 activation: .none)), inputs: [fc7])
        }
        return net
    }

    static func torchvisionNetwork(weights sd: StateDict) throws -> Network {
        let t = TorchWeights(sd: sd)
        return try network(classifier: sd.tensors["classifier.0.weight"] != nil) { part in
            switch part {
            case .conv(let i): return try t.conv("features.\(torchvisionIndex[i])", bn: nil, bias: true, epsilon: 0)
            case .fc6: return try t.dense("classifier.0")
            case .fc7: return try t.dense("classifier.3")
            case .fc8: return try t.dense("classifier.6")
            }
        }
    }

    /// timm's 7x7 `pre_logits.fc1` kernel `[4096, 512, 7, 7]` is, row-major, exactly the dense
    /// matrix `[4096, 512 * 7 * 7]` over the (c, h, w)-flattened map; fc2's 1x1 kernel likewise.
    static func timmNetwork(weights sd: StateDict) throws -> Network {
        let t = TorchWeights(sd: sd)
        return try network(classifier: sd.tensors["pre_logits.fc1.weight"] != nil) { part in
            switch part {
            case .conv(let i): return try t.conv("features.\(torchvisionIndex[i])", bn: nil, bias: true, epsilon: 0)
            case .fc6: return try t.dense("pre_logits.fc1")
            case .fc7: return try t.dense("pre_logits.fc2")
            case .fc8: return try t.dense("head.fc")
            }
        }
    }

    static func kerasNetwork(weights sd: StateDict) throws -> Network {
        let k = KerasWeights(sd)
        return try network(classifier: k.has("fc1", "kernel")) { part in
            switch part {
            case .conv(let i): return try k.conv(kerasName(i))
            case .fc6: return try k.dense("fc1", inputShape: (mapSize, mapSize, 512))
            case .fc7: return try k.dense("fc2")
            case .fc8: return try k.dense("predictions")
            }
        }
    }

    // MARK: The backbone

    static let spec: BackboneSpec = {
        let torchvision = WeightLayout(
            name: "torchvision", preprocessing: .imagenet,
            matches: { $0.shape(of: "features.28.weight")?.count == 4 },
            expected: { torchvisionTensors(classifier: $0.tensors["classifier.0.weight"] != nil) },
            classifier: ["classifier."],
            build: { try torchvisionNetwork(weights: $0) })
        // Before torchvision: a timm file has the same `features.N` and differs only in its classifier.
        let timm = WeightLayout(
            name: "timm", preprocessing: .imagenet,
            matches: { $0.shape(of: "features.28.weight")?.count == 4 && $0.shape(of: "pre_logits.fc1.weight") != nil },
            expected: { timmTensors(classifier: $0.tensors["pre_logits.fc1.weight"] != nil) },
            classifier: ["pre_logits.", "head."],
            build: { try timmNetwork(weights: $0) })
        let keras = WeightLayout(
            name: "keras", preprocessing: .caffe,
            matches: { KerasNames($0).has("block5_conv3", "kernel") },
            expected: { sd in let k = KerasWeights(sd); return k.expected(kerasTensors(classifier: k.has("fc1", "kernel"))) },
            classifier: ["fc1/", "fc2/", "predictions/"],
            build: { try kerasNetwork(weights: $0) })
        return BackboneSpec(id: "vgg16", displayName: "VGG16", inputSize: 224, featureDimension: featureDimension,
                            layouts: [timm, torchvision, keras], published: [
                                .keras(keras, "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                       md5: "6d6bbae143d832006294945121d1f1fc", bytes: 58_889_256, note: "no classifier"),
                                .keras(keras, "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                                       md5: "64373286793e3c8b2b4e3219cbf3544b", bytes: 553_467_096, note: "with classifier"),
                                .torchvision(torchvision, "vgg16-397923af.pth", note: "with classifier"),
                            ], classifierOutputs: ["fc7"],
                            blockInputOutputs: (1...cacheableBlocks).map { "block_input.\(convolutions.count - $0)" },
                            blockNetworks: { try blockNetwork(layout: $0, lastBlocks: $1) })
    }()
}
