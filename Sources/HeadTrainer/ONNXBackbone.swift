import BackboneEngine

extension ONNXGraphBuilder {
    /// The layers of `network` (already pruned to the output the head reads) reading `input`, as
    /// `CompiledNetwork` runs them: `Network.inputAffine` must already be in the preprocessing
    /// (`LoadedBackbone.inputPreprocessing`). Returns the ONNX name of each layer's output.
    mutating func backbone(_ network: Network, input: String) throws -> [String: String] {
        var names = ["input": input]
        func tensor(_ name: String) throws -> String {
            guard let t = names[name] else { throw ONNXExportError("layer input \(name) of \(network.name) is produced by no earlier layer") }
            return t
        }
        func pool(_ op: String, _ x: String, name: String, kernel: Int, stride: Int, padding: Padding, extra: [ONNX.Attribute]) -> String {
            let s = shapes[x]!, p = padding.window(input: (s[1], s[2]), kernel: (kernel, kernel), stride: stride)
            return node(op, [x], name: name, shape: [s[0], p.height, p.width],
                        [.ints("kernel_shape", [kernel, kernel]), .ints("strides", [stride, stride]),
                         .ints("pads", [p.top, p.left, p.bottom, p.right])] + extra)
        }
        for layer in network.layers {
            let name = "backbone/" + layer.name
            let inputs = try layer.inputs.map(tensor)
            let x = inputs[0]
            var y: String
            switch layer.op {
            case .conv(let c):
                y = conv(x, name: name, weights: c.weights, bias: c.bias, outChannels: c.outChannels, kernel: c.kernel,
                         stride: c.stride, groups: c.groups, padding: c.padding)
                if let r = c.residual { y = node("Add", [y, try tensor(r)], name: name + ".residual", shape: shapes[y]!) }
                y = activation(ONNXGraphBuilder.ActivationKind(c.activation), y, name: name)
            case .maxPool(let k, let s, let p):
                y = pool("MaxPool", x, name: name, kernel: k, stride: s, padding: p, extra: [])
            case .averagePool(let k, let s, let p):
                // The engine's average excludes the padding (dnnl_pooling_avg_exclude_padding).
                y = pool("AveragePool", x, name: name, kernel: k, stride: s, padding: p, extra: [.int("count_include_pad", 0)])
            case .globalAveragePool:
                y = globalAveragePool(x, name: name)
            case .dense(let d):
                // Weights [out, in] with `in` flattening C, H, W: Flatten, then Gemm with B transposed.
                let flat = flatten(x, name: name + ".flatten")
                let inFeatures = shapes[flat]![0]
                guard d.weights.count == d.outFeatures * inFeatures else {
                    throw ONNXExportError("dense layer \(layer.name) of \(network.name) has \(d.weights.count) weights for \(inFeatures) inputs")
                }
                let w = constant(name + ".weight", dims: [d.outFeatures, inFeatures], d.weights)
                let b = constant(name + ".bias", dims: [d.outFeatures], d.bias ?? [Float](repeating: 0, count: d.outFeatures))
                y = node("Gemm", [flat, w, b], name: name, shape: [d.outFeatures], [.int("transB", 1)])
                y = activation(ONNXGraphBuilder.ActivationKind(d.activation), y, name: name)
            case .activation(let a):
                y = activation(ONNXGraphBuilder.ActivationKind(a), x, name: name)
            case .add(let a):
                y = node("Add", [x, inputs[1]], name: name, shape: shapes[x]!)
                y = activation(ONNXGraphBuilder.ActivationKind(a), y, name: name)
            case .multiply:
                y = node("Mul", [x, inputs[1]], name: name, shape: shapes[x]!)
            }
            names[layer.name] = y
        }
        return names
    }
}

extension ONNXGraphBuilder.ActivationKind {
    init(_ a: Activation) {
        switch a {
        case .none: self = .none
        case .relu: self = .relu
        case .relu6: self = .relu6
        case .swish: self = .swish
        case .sigmoid: self = .sigmoid
        }
    }
}

/// An export this version cannot write, or inputs that do not fit together.
struct ONNXExportError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
