import BackboneEngine
import FineTuneCore
import Foundation
import WeightFormats

/// The backbones of the scene experiment (issue 4): VGG16, ResNet50, ResNet101 and EfficientNet-B0,
/// each accepting the Keras applications weights and the torchvision (or timm) weights. The
/// architecture variant and the preprocessing follow from the layout the weights file is in.
extension Backbones {
    public static let experiment: [BackboneSpec] = [VGG.spec, ResNet.spec(.resnet50), ResNet.spec(.resnet101),
                                                    EfficientNet.spec]
}

// MARK: - Reading PyTorch-layout weights (torchvision, timm)

/// Convolution and batch-norm tensors named the PyTorch way (`<conv>.weight`, `<bn>.running_var`).
struct TorchWeights {
    let sd: StateDict

    /// `<conv>.weight` (and `<conv>.bias` when `bias`) with the batch norm `<bn>` folded in.
    func conv(_ conv: String, bn: String?, bias: Bool = false, epsilon: Float) throws -> (weights: [Float], bias: [Float]?) {
        let w = try sd.tensor("\(conv).weight").values
        let b = bias ? try sd.tensor("\(conv).bias").values : nil
        guard let bn else { return (w, b) }
        let folded = BatchNorm.fold(weights: w, bias: b, gamma: try sd.tensor("\(bn).weight").values,
                                    beta: try sd.tensor("\(bn).bias").values,
                                    mean: try sd.tensor("\(bn).running_mean").values,
                                    variance: try sd.tensor("\(bn).running_var").values, epsilon: epsilon)
        return (folded.weights, folded.bias)
    }

    func dense(_ name: String) throws -> (weights: [Float], bias: [Float]) {
        (try sd.tensor("\(name).weight").values, try sd.tensor("\(name).bias").values)
    }

    /// Shapes of a batch norm's four tensors (plus the `num_batches_tracked` counter files carry).
    static func batchNorm(_ prefix: String, _ channels: Int, into shapes: inout [String: [Int]]) {
        for s in ["weight", "bias", "running_mean", "running_var"] { shapes["\(prefix).\(s)"] = [channels] }
        shapes["\(prefix).num_batches_tracked"] = []
    }

    static func ignoring(_ name: String) -> Bool { name.hasSuffix("num_batches_tracked") }
}

// MARK: - Reading Keras-layout weights (keras.applications .h5 files)

/// Keras tensor names resolved to canonical (layer, weight) keys, e.g. ("conv1_conv", "kernel"),
/// whatever the exact spelling of the name in the file: `conv1_conv/kernel:0` (Keras 2
/// `weight_names`), `conv1_conv/conv1_conv/kernel:0` (the HDF5 dataset path), `conv1_conv/kernel`
/// (Keras 3 legacy writer), a model nested in another (`vgg16/block1_conv1/kernel:0`), the Keras 1
/// names of the original VGG16 file (`block1_conv1/block1_conv1_W_1:0`), or a Keras 3
/// `.weights.h5` path (`layers/conv2d/vars/0`, see `keras3Key`). Needs names only, so layouts can
/// be recognized from a file's index before its values are read.
struct KerasNames {
    let listing: any TensorListing
    /// "layer/weight" -> the name in the file.
    private(set) var names: [String: String] = [:]

    init(_ listing: any TensorListing) {
        self.listing = listing
        for name in listing.names {
            if let key = key(name), names[key] == nil { names[key] = name }
        }
    }

    /// The canonical key of a file name: Keras 3 paths through the layer names the file records,
    /// other names by `KerasNames.key(_:)`.
    func key(_ name: String) -> String? {
        if let k = Self.keras3Key(name, layerNames: listing.kerasLayerNames) { return k }
        return name.hasPrefix("layers/") && name.contains("/vars/") ? nil : Self.key(name)
    }

    /// The canonical "layer/weight" key of a Keras 1/2 name, nil if it has no layer component.
    /// The layer is the next-to-last path component.
    static func key(_ name: String) -> String? {
        let parts = name.split(separator: "/").map(String.init)
        guard parts.count >= 2 else { return nil }
        let layer = parts[parts.count - 2]
        var weight = parts[parts.count - 1]
        if let colon = weight.lastIndex(of: ":") { weight = String(weight[..<colon]) }
        if weight.hasPrefix(layer + "_") {
            // Keras 1: <layer>_W_1, <layer>_b_1.
            var rest = String(weight.dropFirst(layer.count + 1))
            if let us = rest.lastIndex(of: "_"), us != rest.startIndex,
               rest[rest.index(after: us)...].allSatisfy(\.isNumber) {
                rest = String(rest[..<us])
            }
            weight = ["W": "kernel", "b": "bias"][rest] ?? rest
        }
        return "\(layer)/\(weight)"
    }

    /// Keras 3 `.weights.h5`: variables are numbered within a group named after the layer's
    /// class (`conv2d_7`, `batch_normalization_12`), in the order the layer creates them; the
    /// layer's own name is the `name` attribute Keras 3 writes on the `vars` group (present in the
    /// files Keras 3.15 writes; files without it are not recognized). Only the classes the
    /// keras.applications backbones use are mapped.
    static let keras3Variables: [String: [String]] = [
        "conv2d": ["kernel", "bias"],
        "depthwise_conv2d": ["depthwise_kernel", "bias"],
        "dense": ["kernel", "bias"],
        "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
        "normalization": ["mean", "variance", "count"],
    ]

    /// `layers/<class>[_n]/vars/<i>` -> "<recorded layer name>/<weight>", nil for other names.
    static func keras3Key(_ name: String, layerNames: [String: String]) -> String? {
        guard let slash = name.lastIndex(of: "/") else { return nil }
        let group = String(name[..<slash])
        guard let layer = layerNames[group], let index = Int(name[name.index(after: slash)...]),
              let weight = keras3Weight(group: group, index: index) else { return nil }
        return "\(layer)/\(weight)"
    }

    /// The weight name of variable `index` of the `vars` group `group` (`layers/conv2d_3/vars`).
    static func keras3Weight(group: String, index: Int) -> String? {
        let parts = group.split(separator: "/")
        guard parts.count >= 2, parts.last == "vars" else { return nil }
        var cls = Substring(parts[parts.count - 2])
        if let us = cls.lastIndex(of: "_"), cls[cls.index(after: us)...].allSatisfy(\.isNumber),
           cls.index(after: us) != cls.endIndex {
            cls = cls[..<us]
        }
        guard let list = keras3Variables[String(cls)], index >= 0, index < list.count else { return nil }
        return list[index]
    }

    /// The canonical weight name of a tensor name without needing the file ("count" for
    /// `normalization/normalization/count:0` and for `layers/normalization/vars/2`).
    static func weight(_ name: String) -> String? {
        if let slash = name.lastIndex(of: "/"), name.hasPrefix("layers/"), let index = Int(name[name.index(after: slash)...]) {
            return keras3Weight(group: String(name[..<slash]), index: index)
        }
        return key(name).map { String($0[$0.index(after: $0.lastIndex(of: "/")!)...]) }
    }

    /// Layers that have a weight called `weight`, in file order.
    func layers(having weight: String) -> [String] {
        listing.names.compactMap { key($0) }.filter { $0.hasSuffix("/\(weight)") }.map { String($0.dropLast(weight.count + 1)) }
    }

    /// Keras 3 calls a depthwise kernel `kernel`; Keras 2 files say `depthwise_kernel`.
    static let aliases = ["depthwise_kernel": "kernel"]

    /// The file's name for (layer, weight), trying the weight's alias too.
    func name(_ layer: String, _ weight: String) -> String? {
        names["\(layer)/\(weight)"] ?? Self.aliases[weight].flatMap { names["\(layer)/\($0)"] }
    }

    func has(_ layer: String, _ weight: String) -> Bool { name(layer, weight) != nil }

    /// Turns canonical shapes (`"layer/weight" -> shape`) into the file's own names, so that
    /// validation reports the names the user sees; missing tensors keep the canonical name.
    func expected(_ canonical: [String: [Int]]) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for (key, shape) in canonical {
            let slash = key.lastIndex(of: "/")!
            let layer = String(key[..<slash]), weight = String(key[key.index(after: slash)...])
            out[name(layer, weight) ?? key] = shape
        }
        return out
    }
}

/// Keras tensors by canonical (layer, weight) (see `KerasNames`), converted to the engine's
/// layouts. Stored shapes are Keras's: convolution kernels `[kh, kw, in, out]`, depthwise kernels
/// `[kh, kw, in, multiplier]`, dense kernels `[in, out]`; the accessors return PyTorch layouts.
struct KerasWeights {
    let sd: StateDict
    let keys: KerasNames

    init(_ sd: StateDict) {
        self.sd = sd
        self.keys = KerasNames(sd)
    }

    static func key(_ name: String) -> String? { KerasNames.key(name) }

    func layers(having weight: String) -> [String] { keys.layers(having: weight) }
    func name(_ layer: String, _ weight: String) -> String? { keys.name(layer, weight) }
    func has(_ layer: String, _ weight: String) -> Bool { keys.has(layer, weight) }
    func expected(_ canonical: [String: [Int]]) -> [String: [Int]] { keys.expected(canonical) }

    func tensor(_ layer: String, _ weight: String) throws -> WeightTensor {
        try sd.tensor(name(layer, weight) ?? "\(layer)/\(weight)")
    }

    /// The tensor (layer, weight), required to have `rank` dimensions. (Layouts validate every
    /// shape before building; this keeps a malformed file an error, never a crash.)
    func tensor(_ layer: String, _ weight: String, rank: Int) throws -> WeightTensor {
        let t = try tensor(layer, weight)
        guard t.shape.count == rank, t.values.count == t.elementCount else {
            throw BackboneError.unreadableWeights(sd.file.path, underlying: "\(t.name) has shape \(t.shape), expected \(rank) dimensions")
        }
        return t
    }

    /// A convolution kernel `[kh, kw, in, out]` as `[out, in, kh, kw]`, with its bias if present.
    func conv(_ layer: String) throws -> (weights: [Float], bias: [Float]?) {
        let k = try tensor(layer, "kernel", rank: 4)
        let (kh, kw, ci, co) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3])
        var w = [Float](repeating: 0, count: k.values.count)
        k.values.withUnsafeBufferPointer { src in
            for y in 0..<kh { for x in 0..<kw { for i in 0..<ci { for o in 0..<co {
                w[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o]
            } } } }
        }
        return (w, has(layer, "bias") ? try tensor(layer, "bias").values : nil)
    }

    /// A depthwise kernel `[kh, kw, channels, 1]` as `[channels, 1, kh, kw]`.
    func depthwise(_ layer: String) throws -> [Float] {
        let k = try tensor(layer, "depthwise_kernel", rank: 4)
        let (kh, kw, c, m) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3])
        var w = [Float](repeating: 0, count: k.values.count)
        for y in 0..<kh { for x in 0..<kw { for i in 0..<c { for j in 0..<m {
            w[((i * m + j) * kh + y) * kw + x] = k.values[((y * kw + x) * c + i) * m + j]
        } } } }
        return w
    }

    /// A convolution (or depthwise convolution) followed by the batch norm `bn`, folded.
    func conv(_ layer: String, bn: String, epsilon: Float, depthwise: Bool = false) throws -> (weights: [Float], bias: [Float]) {
        let (w, b) = depthwise ? (try self.depthwise(layer), nil) : try conv(layer)
        let folded = BatchNorm.fold(weights: w, bias: b, gamma: try tensor(bn, "gamma").values,
                                    beta: try tensor(bn, "beta").values, mean: try tensor(bn, "moving_mean").values,
                                    variance: try tensor(bn, "moving_variance").values, epsilon: epsilon)
        return (folded.weights, folded.bias)
    }

    /// A dense kernel `[in, out]` as `[out, in]`. `inputShape` (h, w, c) is given when the layer
    /// reads a flattened channels-last map (Keras `Flatten` order h, w, c): its inputs are then
    /// permuted to the engine's c, h, w order.
    func dense(_ layer: String, inputShape: (h: Int, w: Int, c: Int)? = nil) throws -> (weights: [Float], bias: [Float]) {
        let k = try tensor(layer, "kernel", rank: 2)
        let (inputs, outputs) = (k.shape[0], k.shape[1])
        if let s = inputShape, s.h * s.w * s.c != inputs {
            throw BackboneError.unreadableWeights(sd.file.path, underlying: "\(k.name) has \(inputs) inputs, expected \(s.h * s.w * s.c)")
        }
        var w = [Float](repeating: 0, count: k.values.count)
        k.values.withUnsafeBufferPointer { src in
            for r in 0..<inputs {
                var column = r
                if let s = inputShape {
                    // r = (y * w + x) * c + ch  ->  ch * h * w + y * w + x
                    let ch = r % s.c, pixel = r / s.c
                    column = ch * s.h * s.w + pixel
                }
                for o in 0..<outputs { w[o * inputs + column] = src[r * outputs + o] }
            }
        }
        return (w, try tensor(layer, "bias").values)
    }

    /// The tensors of a fine-tuning network whose layers carry Keras layer names, in PyTorch layouts
    /// under the network's tensor names (`top_conv.weight` [out, in, 1, 1], `top_bn.running_var`).
    func blockTensors(_ network: FineTuneNetwork) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        func convolution(_ name: String, bias: Bool) throws {
            let (w, b) = try conv(name)
            out["\(name).weight"] = w
            if bias { out["\(name).bias"] = b }
        }
        for layer in network.blocks.flatMap(\.layers) {
            switch layer.op {
            case .pointwise, .conv: try convolution(layer.name, bias: layer.bias == true)
            case .depthwise: out["\(layer.name).weight"] = try depthwise(layer.name)
            case .batchNorm:
                for (torch, keras) in [("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                       ("running_var", "moving_variance")] {
                    out["\(layer.name).\(torch)"] = try tensor(layer.name, keras).values
                }
            case .squeezeExcite:
                try convolution(layer.squeezeExciteNames.reduce, bias: true)
                try convolution(layer.squeezeExciteNames.expand, bias: true)
            case .activation, .residualAdd, .globalAveragePool, .maxPool: break
            }
        }
        return out
    }

    /// Canonical shapes of a Keras `BatchNormalization` layer.
    static func batchNorm(_ layer: String, _ channels: Int, into shapes: inout [String: [Int]]) {
        for s in ["gamma", "beta", "moving_mean", "moving_variance"] { shapes["\(layer)/\(s)"] = [channels] }
    }
}
