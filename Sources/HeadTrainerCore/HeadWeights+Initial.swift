@_exported import HeadModel

/// The trainer's additions to the shared head types (`HeadModel`).
extension HeadWeights {
    /// Glorot-uniform kernels, zero biases, fresh BN state (Keras defaults).
    static func initial(config: HeadConfig, inputs: Int, classes: Int, rng: inout HeadRNG) -> HeadWeights {
        func glorot(_ fanIn: Int, _ fanOut: Int) -> [Float] {
            let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
            return (0..<(fanIn * fanOut)).map { _ in (rng.nextFloat() * 2 - 1) * limit }
        }
        let h = config.hidden
        let bn1 = config.batchnorm ? BatchNormWeights(features: inputs) : nil
        if h == 0 {
            return HeadWeights(inputBatchNorm: bn1, hidden: nil, hiddenBatchNorm: nil,
                               output: DenseWeights(inputs: inputs, outputs: classes, kernel: glorot(inputs, classes), bias: .init(repeating: 0, count: classes)))
        }
        let hid = DenseWeights(inputs: inputs, outputs: h, kernel: glorot(inputs, h), bias: .init(repeating: 0, count: h))
        let out = DenseWeights(inputs: h, outputs: classes, kernel: glorot(h, classes), bias: .init(repeating: 0, count: classes))
        return HeadWeights(inputBatchNorm: bn1, hidden: hid, hiddenBatchNorm: config.batchnorm ? BatchNormWeights(features: h) : nil, output: out)
    }

}
