import Foundation

/// Exposes the training path's analytic gradients, for gradient checks in tests.
public enum HeadDiagnostics {
    /// Loss (mean class-weighted cross-entropy + l2 * sum(W^2), training-mode batch norm with batch
    /// statistics, dropout disabled) and its gradient with respect to every trainable tensor, computed
    /// by exactly the code the trainer runs. The gradient is returned in a `HeadWeights` whose BN
    /// `gamma`/`beta` hold d(loss)/d(gamma), d(loss)/d(beta) (moving statistics are zero) and whose
    /// kernels/biases hold their gradients. `features` has `labels.count` rows of the head's input width.
    public static func lossAndGradients(config: HeadConfig, weights: HeadWeights, features: [Float], labels: [Int32],
                                        classWeights: [Float]? = nil) throws -> (loss: Double, gradients: HeadWeights) {
        try HeadTrainerError.wrapping { try weights.validate(source: "gradient check") }
        let n = labels.count, d = weights.inputDim, c = weights.classCount
        guard n > 0, features.count == n * d else {
            throw HeadTrainerError.dimensionMismatch(split: "gradient check", what: "features", expected: n * d, actual: features.count)
        }
        for (r, y) in labels.enumerated() where y < 0 || Int(y) >= c {
            throw HeadTrainerError.labelOutOfRange(split: "gradient check", row: r, label: y, classCount: c)
        }
        let blas = BLASThreadsGuard()
        defer { blas.restore() }
        let net = HeadNetwork(config: config, weights: weights, maxBatch: n, threads: 1)
        if let cw = classWeights { net.classWeight = cw }
        let cap = GradientCapture(net)
        let rows = Array(0..<n)
        let r = features.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { y in
                rows.withUnsafeBufferPointer { net.trainStep(data: x.baseAddress!, labels: y.baseAddress!, rows: $0, capture: cap) }
            }
        }
        func bn(_ g: FloatBuffer?, _ b: FloatBuffer?) -> BatchNormWeights? {
            guard let g, let b else { return nil }
            return BatchNormWeights(gamma: g.array, beta: b.array, movingMean: .init(repeating: 0, count: g.count),
                                    movingVariance: .init(repeating: 0, count: g.count))
        }
        let first = DenseWeights(inputs: d, outputs: net.f, kernel: cap.w1.array, bias: cap.b1.array)
        let grads: HeadWeights
        if net.h == 0 {
            grads = HeadWeights(inputBatchNorm: bn(cap.g1, cap.be1), hidden: nil, hiddenBatchNorm: nil, output: first)
        } else {
            grads = HeadWeights(inputBatchNorm: bn(cap.g1, cap.be1), hidden: first, hiddenBatchNorm: bn(cap.g2, cap.be2),
                                output: DenseWeights(inputs: net.h, outputs: c, kernel: cap.w2!.array, bias: cap.b2!.array))
        }
        return (r.weightedLossSum / Double(n) + r.penalty, grads)
    }
}
