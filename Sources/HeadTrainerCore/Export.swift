import Foundation

/// A head as PyTorch would hold it (`train-head export --format safetensors`): `torch.nn` layer
/// names and layouts, the order they run in, and what the tensors need besides themselves.
///
/// Layers: `bn1` (BatchNorm1d on the features, with batchnorm), `hidden` (Linear, weight
/// [hidden, in]), ReLU (dropout is identity at inference), `bn2` (BatchNorm1d, with a hidden layer and
/// batchnorm), `out` (Linear, weight [classes, hidden or in]), then softmax(logits / temperature).
/// BatchNorm1d tensors: `weight` (gamma), `bias` (beta), `running_mean`, `running_var`; eps per layer
/// in `layers`.
public struct ExportedHead {
    public struct Layer: Codable, Equatable { public var name: String; public var kind: String; public var eps: Float? }
    public var tensors: [(name: String, shape: [Int], values: [Float])]
    public var layers: [Layer]

    public init(_ head: TrainedHead) {
        var tensors: [(String, [Int], [Float])] = [], layers: [Layer] = []
        func bn(_ name: String, _ b: BatchNormWeights?) {
            guard let b else { return }
            let n = b.gamma.count
            tensors += [("\(name).weight", [n], b.gamma), ("\(name).bias", [n], b.beta),
                        ("\(name).running_mean", [n], b.movingMean), ("\(name).running_var", [n], b.movingVariance)]
            layers.append(Layer(name: name, kind: "batchnorm1d", eps: b.epsilon))
        }
        // Our kernels are [in, out] (Keras); torch.nn.Linear keeps [out, in].
        func linear(_ name: String, _ d: DenseWeights) {
            var w = [Float](repeating: 0, count: d.kernel.count)
            for i in 0..<d.inputs { for o in 0..<d.outputs { w[o * d.inputs + i] = d.kernel[i * d.outputs + o] } }
            tensors += [("\(name).weight", [d.outputs, d.inputs], w), ("\(name).bias", [d.outputs], d.bias)]
            layers.append(Layer(name: name, kind: "linear", eps: nil))
        }
        let w = head.weights
        bn("bn1", w.inputBatchNorm)
        if let h = w.hidden {
            linear("hidden", h)
            layers.append(Layer(name: "relu", kind: "relu", eps: nil))
            bn("bn2", w.hiddenBatchNorm)
        }
        linear("out", w.output)
        layers.append(Layer(name: "softmax", kind: "softmax", eps: nil))
        self.tensors = tensors.map { (name: $0.0, shape: $0.1, values: $0.2) }
        self.layers = layers
    }
}
