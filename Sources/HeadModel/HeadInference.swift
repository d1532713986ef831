import COpenBLAS
import Foundation

/// A head ready to run on features (`extract predict`): at most two dense layers as OpenBLAS GEMMs,
/// with every inference-mode batch norm folded into the dense layer after it.
///
/// The trained network (`HeadNetwork` in HeadTrainerCore) runs
///     x -> [BN1] -> Dense1 -> (hidden > 0: ReLU -> [BN2] -> Dense2) -> softmax
/// (dropout is the identity at inference). BN in inference mode is y = x * s + t per feature with
/// s = gamma / sqrt(moving variance + eps) and t = beta - moving mean * s, an affine map, so
/// BN followed by Dense(W, b) is Dense(diag(s) W, b + t W): BN1 folds into Dense1, and BN2 (after
/// the ReLU) into Dense2. What remains is GEMM + bias, ReLU, GEMM + bias, softmax(logits / T).
///
/// GEMMs on OpenBLAS (`cblas_sgemm`) rather than the engine's oneDNN inner product: both programs
/// already link OpenBLAS, so sharing this target adds no library to the trainer, and a call is
/// 1 + tta rows through at most two layers, for which oneDNN would create a primitive per row count.
public struct HeadInference: Sendable {
    /// A dense layer: kernel inputs x outputs, row-major.
    struct Dense: Sendable {
        let inputs: Int, outputs: Int
        let kernel: [Float], bias: [Float]

        /// `dense` after `bn` (when given), as one layer.
        init(_ dense: DenseWeights, after bn: BatchNormWeights?) {
            inputs = dense.inputs; outputs = dense.outputs
            guard let bn else { kernel = dense.kernel; bias = dense.bias; return }
            var kernel = dense.kernel, bias = dense.bias.map(Double.init)
            for j in 0..<inputs {
                let s = bn.gamma[j] / (bn.movingVariance[j] + bn.epsilon).squareRoot()
                let t = Double(bn.beta[j]) - Double(bn.movingMean[j]) * Double(s)
                for k in 0..<outputs {
                    bias[k] += t * Double(dense.kernel[j * outputs + k])
                    kernel[j * outputs + k] = s * dense.kernel[j * outputs + k]
                }
            }
            self.kernel = kernel; self.bias = bias.map(Float.init)
        }

        /// rows x outputs = x (rows x inputs) * kernel + bias.
        func apply(_ x: [Float], rows: Int) -> [Float] {
            var y = [Float](repeating: 0, count: rows * outputs)
            for r in 0..<rows { for k in 0..<outputs { y[r * outputs + k] = bias[k] } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(outputs), Int32(inputs),
                        1, x, Int32(inputs), kernel, Int32(outputs), 1, &y, Int32(outputs))
            return y
        }
    }

    let first: Dense
    /// After the ReLU of a head with a hidden layer.
    let second: Dense?
    public let inputDim: Int
    public let classCount: Int

    public init(_ weights: HeadWeights) {
        if let hidden = weights.hidden {
            first = Dense(hidden, after: weights.inputBatchNorm)
            second = Dense(weights.output, after: weights.hiddenBatchNorm)
        } else {
            first = Dense(weights.output, after: weights.inputBatchNorm)
            second = nil
        }
        inputDim = weights.inputDim; classCount = weights.classCount
    }

    /// Logits (rows x classes, row-major) for row-major `features` with `inputDim` columns.
    public func logits(features: [Float]) throws -> [Float] {
        let n = try Self.rowCount(features, width: inputDim)
        if n == 0 { return [] }
        let z = first.apply(features, rows: n)
        guard let second else { return z }
        return second.apply(z.map { max($0, 0) }, rows: n)
    }

    /// Class probabilities softmax(logits / temperature) per row (rows x classes, row-major).
    public func probabilities(features: [Float], temperature: Double = 1) throws -> [Float] {
        temperatureSoftmax(logits: try logits(features: features).map(Double.init), classes: classCount, temperature: temperature)
    }

    /// The number of `width`-wide rows in `features`; throws when it is not whole or a value is not
    /// finite (the features of another backbone, or a corrupt backbone output).
    public static func rowCount(_ features: [Float], width: Int) throws -> Int {
        guard width > 0, features.count % width == 0 else {
            throw HeadModelError.incompatible(what: "predict", detail: "\(features.count) values is not a whole number of \(width)-wide rows; the features come from a different backbone than this head was trained on")
        }
        for j in 0..<features.count where !features[j].isFinite {
            throw HeadModelError.nonFiniteFeature(row: j / width, column: j % width)
        }
        return features.count / width
    }
}

/// softmax(logits / temperature) per row of `classes` entries, computed in Double.
public func temperatureSoftmax(logits z: [Double], classes k: Int, temperature t: Double) -> [Float] {
    var out = [Float](repeating: 0, count: z.count)
    var e = [Double](repeating: 0, count: k)
    var row = 0
    while row < z.count {
        var m = -Double.infinity
        for j in 0..<k { m = max(m, z[row + j] / t) }
        var s = 0.0
        for j in 0..<k { e[j] = Foundation.exp(z[row + j] / t - m); s += e[j] }
        for j in 0..<k { out[row + j] = Float(e[j] / s) }
        row += k
    }
    return out
}

/// Mean of `rows` probability vectors of `classes` entries each (row-major), in row order: how
/// `train-head --tta` and `extract predict --tta` combine the copies of one image.
public func meanProbabilities(_ probabilities: [Float], classes: Int) -> [Float] {
    let rows = probabilities.count / classes
    var mean = [Float](repeating: 0, count: classes)
    for r in 0..<rows {
        for c in 0..<classes { mean[c] += probabilities[r * classes + c] }
    }
    return mean.map { $0 / Float(rows) }
}
