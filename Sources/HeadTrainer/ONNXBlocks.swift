import BackboneEngine
import FineTuneCore

extension ONNXGraphBuilder {
    /// The blocks of `network` on `input` (NCHW, `network.input`'s shape), with `tensors` named as
    /// `FineTuneNetwork.requiredTensors()` names them; batch norm with the stored running statistics
    /// (inference, as `extract predict` runs a fine-tuned head). Returns the output's name.
    mutating func blocks(_ network: FineTuneNetwork, tensors: [String: [Float]], input: String, prefix: String) throws -> String {
        var shapesByName: [String: [Int]] = [:]
        for s in network.requiredTensors() { shapesByName[s.name] = s.shape }
        func weight(_ name: String) throws -> (dims: [Int], values: [Float]) {
            guard let dims = shapesByName[name], let v = tensors[name] else { throw ONNXExportError("tensor \(name) of the fine-tuned blocks is missing") }
            guard v.count == dims.reduce(1, *) else {
                throw ONNXExportError("tensor \(name) of the fine-tuned blocks has \(v.count) values for shape \(dims)")
            }
            return (dims, v)
        }
        let inShape = [network.input.channels, network.input.height, network.input.width]
        guard shapes[input] == inShape else {
            throw ONNXExportError("the backbone gives \(shapes[input] ?? []) where the fine-tuned blocks take \(inShape)")
        }
        var x = input
        for block in network.blocks {
            let blockInput = x
            for l in block.layers {
                let name = "\(prefix)/\(l.name)"
                switch l.op {
                case .pointwise, .depthwise, .conv:
                    let w = try weight("\(l.name).weight")
                    let bias = l.bias == true ? try weight("\(l.name).bias").values : nil
                    let k = l.kernel ?? 1, stride = l.stride ?? 1, s = shapes[x]!
                    let groups = l.op == .depthwise ? s[0] : 1
                    let padding: BackboneEngine.Padding
                    switch l.padding ?? .symmetric {
                    case _ where k == 1: padding = .valid
                    case .symmetric: padding = .symmetric(k / 2)
                    case .tfSame: padding = .same
                    }
                    x = conv(x, name: name, weights: w.values, bias: bias, outChannels: w.dims[0], kernel: (k, k), stride: stride,
                             groups: groups, padding: padding)
                case .batchNorm:
                    let p = try ["weight", "bias", "running_mean", "running_var"].map {
                        constant("\(name).\($0)", dims: [shapes[x]![0]], try weight("\(l.name).\($0)").values)
                    }
                    x = node("BatchNormalization", [x] + p, name: name, shape: shapes[x]!, [.float("epsilon", l.epsilon ?? 1e-5)])
                case .activation:
                    x = activation(ActivationKind(l.activation!), x, name: name)
                case .squeezeExcite:
                    let (reduce, expand) = l.squeezeExciteNames
                    let r = try weight("\(reduce).weight"), rb = try weight("\(reduce).bias")
                    let e = try weight("\(expand).weight"), eb = try weight("\(expand).bias")
                    var g = globalAveragePool(x, name: name + ".pool")
                    g = conv(g, name: name + ".reduce", weights: r.values, bias: rb.values, outChannels: r.dims[0], kernel: (1, 1),
                             stride: 1, groups: 1, padding: .valid)
                    g = activation(ActivationKind(l.activation ?? .relu), g, name: name + ".reduce")
                    g = conv(g, name: name + ".expand", weights: e.values, bias: eb.values, outChannels: e.dims[0], kernel: (1, 1),
                             stride: 1, groups: 1, padding: .valid)
                    g = activation(.sigmoid, g, name: name + ".expand")
                    x = node("Mul", [x, g], name: name, shape: shapes[x]!)
                case .residualAdd:
                    guard shapes[x] == shapes[blockInput] else {
                        throw ONNXExportError("\(block.name): residual add of \(shapes[blockInput]!) to \(shapes[x]!)")
                    }
                    x = node("Add", [x, blockInput], name: name, shape: shapes[x]!)
                case .globalAveragePool:
                    x = globalAveragePool(x, name: name)
                case .maxPool:
                    let k = l.kernel ?? 2, stride = l.stride ?? k, s = shapes[x]!
                    x = node("MaxPool", [x], name: name, shape: [s[0], (s[1] - k) / stride + 1, (s[2] - k) / stride + 1],
                             [.ints("kernel_shape", [k, k]), .ints("strides", [stride, stride]), .ints("pads", [0, 0, 0, 0])])
                }
            }
        }
        return x
    }
}

extension ONNXGraphBuilder.ActivationKind {
    init(_ a: FineTuneCore.Activation) {
        switch a {
        case .relu: self = .relu
        case .relu6: self = .relu6
        case .swish: self = .swish
        case .sigmoid: self = .sigmoid
        }
    }
}
