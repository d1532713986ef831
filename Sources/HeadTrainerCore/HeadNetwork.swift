import COpenBLAS
import Foundation

/// The head's parameters, Adam moments and every per-step buffer, allocated once.
///
/// Layout (B = batch, D = inputs, H = hidden, C = classes, F = first dense width = H or C):
///   x -> [BN1] -> Dense1(D x F) -> (H > 0: ReLU -> Dropout -> [BN2] -> Dense2(H x C)) -> softmax
final class HeadNetwork {
    let config: HeadConfig
    let d: Int, h: Int, c: Int, f: Int
    let bn1: Bool, bn2: Bool
    /// Batch-norm epsilons (Keras default 1e-3, taken from the weights).
    let eps1: Float, eps2: Float
    let maxBatch: Int
    /// Fixed work split of the wide layers (independent of the thread count => identical results).
    let chunks: Int

    // Parameters.
    let g1: FloatBuffer?, be1: FloatBuffer?, rm1: FloatBuffer?, rv1: FloatBuffer?
    let w1: FloatBuffer, b1: FloatBuffer
    let g2: FloatBuffer?, be2: FloatBuffer?, rm2: FloatBuffer?, rv2: FloatBuffer?
    let w2: FloatBuffer?, b2: FloatBuffer?

    // Adam moments (m, v) per trainable tensor.
    let mW1: FloatBuffer, vW1: FloatBuffer, mB1: FloatBuffer, vB1: FloatBuffer
    let mG1: FloatBuffer?, vG1: FloatBuffer?, mBe1: FloatBuffer?, vBe1: FloatBuffer?
    let mG2: FloatBuffer?, vG2: FloatBuffer?, mBe2: FloatBuffer?, vBe2: FloatBuffer?
    let mW2: FloatBuffer?, vW2: FloatBuffer?, mB2: FloatBuffer?, vB2: FloatBuffer?
    var t = 0

    // Per-step workspace.
    let xin: FloatBuffer      // B x D: xhat (with BN1) or the gathered batch
    let a0: FloatBuffer?      // B x D: gamma*xhat + beta
    let mu1: FloatBuffer?, istd1: FloatBuffer?
    let z1: FloatBuffer       // B x F
    let zPartial: FloatBuffer // chunks x B x F: Dense1 partial products by input-feature chunk
    /// Depth of the forward GEMM blocks: keeps B x F x depth within OpenBLAS's small-matrix range
    /// (<= 1e6 multiply-adds), where it skips packing.
    let forwardDepthBlock: Int
    /// Rows of the first-layer gradient P = xin^T dz computed per OpenBLAS call (then consumed by the
    /// fused Adam pass while in cache). Like `forwardDepthBlock`, sized so rows x F x batch stays
    /// within OpenBLAS's small-matrix path (about 10^6 multiply-adds): at hidden 512, 64-row blocks
    /// fell onto the packed path (a third of a trial's time in `sgemm_kernel` plus packing and
    /// memset, perf). At most 64: larger blocks measured slower at hidden 128.
    let gradientRowBlock: Int
    let scale: FloatBuffer?   // B x H: relu'(z) * dropout mask / (1 - p)
    let hd: FloatBuffer?      // B x H: relu(z) * mask
    let dhat2: FloatBuffer?, a2: FloatBuffer?, mu2: FloatBuffer?, istd2: FloatBuffer?
    let logits: FloatBuffer, probs: FloatBuffer, dlog: FloatBuffer   // B x C
    let da2: FloatBuffer?     // B x H
    let dz: FloatBuffer       // B x F
    let cs: FloatBuffer       // F: column sums of dz (= bias gradient)
    let p: FloatBuffer        // D x F: xin^T dz
    let gW2: FloatBuffer?, gB2: FloatBuffer?, gG2: FloatBuffer?, gBe2: FloatBuffer?
    /// One dropout generator per column chunk (raw storage: chunks mutate them concurrently).
    let dropoutState: UnsafeMutablePointer<HeadRNG>
    let penaltyScratch: UnsafeMutablePointer<Double>
    var par: Parallel
    /// Lazily allocated evaluation buffers.
    var evalScratch: EvalScratch?

    /// Per-class loss weights (1 when not weighting).
    var classWeight: [Float]

    init(config: HeadConfig, weights: HeadWeights, maxBatch: Int, threads: Int?) {
        self.config = config
        d = weights.inputDim; c = weights.classCount; h = weights.hidden?.outputs ?? 0
        f = h > 0 ? h : c
        bn1 = weights.inputBatchNorm != nil
        bn2 = weights.hiddenBatchNorm != nil
        eps1 = weights.inputBatchNorm?.epsilon ?? 1e-3
        eps2 = weights.hiddenBatchNorm?.epsilon ?? 1e-3
        self.maxBatch = maxBatch
        chunks = f >= 64 ? 4 : 1
        par = Parallel(threads: threads)
        let first = weights.hidden ?? weights.output
        func bnBufs(_ b: BatchNormWeights?) -> (FloatBuffer?, FloatBuffer?, FloatBuffer?, FloatBuffer?) {
            guard let b else { return (nil, nil, nil, nil) }
            return (FloatBuffer(b.gamma), FloatBuffer(b.beta), FloatBuffer(b.movingMean), FloatBuffer(b.movingVariance))
        }
        (g1, be1, rm1, rv1) = bnBufs(weights.inputBatchNorm)
        (g2, be2, rm2, rv2) = bnBufs(weights.hiddenBatchNorm)
        w1 = FloatBuffer(first.kernel); b1 = FloatBuffer(first.bias)
        if h > 0 { w2 = FloatBuffer(weights.output.kernel); b2 = FloatBuffer(weights.output.bias) } else { w2 = nil; b2 = nil }

        func opt(_ on: Bool, _ n: Int) -> FloatBuffer? { on ? FloatBuffer(n) : nil }
        mW1 = FloatBuffer(d * f); vW1 = FloatBuffer(d * f); mB1 = FloatBuffer(f); vB1 = FloatBuffer(f)
        mG1 = opt(bn1, d); vG1 = opt(bn1, d); mBe1 = opt(bn1, d); vBe1 = opt(bn1, d)
        mG2 = opt(bn2, h); vG2 = opt(bn2, h); mBe2 = opt(bn2, h); vBe2 = opt(bn2, h)
        mW2 = opt(h > 0, h * c); vW2 = opt(h > 0, h * c); mB2 = opt(h > 0, c); vB2 = opt(h > 0, c)

        let b = maxBatch
        xin = FloatBuffer(b * d); a0 = opt(bn1, b * d); mu1 = opt(bn1, d); istd1 = opt(bn1, d)
        z1 = FloatBuffer(b * f)
        zPartial = FloatBuffer(chunks * b * f)
        forwardDepthBlock = max(16, 1_000_000 / max(1, b * f) / 16 * 16)
        gradientRowBlock = max(16, min(64, 1_000_000 / max(1, b * f) / 16 * 16))
        scale = opt(h > 0, b * h); hd = opt(h > 0, b * h)
        dhat2 = opt(bn2, b * h); a2 = opt(bn2, b * h); mu2 = opt(bn2, h); istd2 = opt(bn2, h)
        logits = FloatBuffer(b * c); probs = FloatBuffer(b * c); dlog = FloatBuffer(b * c)
        da2 = opt(h > 0, b * h); dz = FloatBuffer(b * f); cs = FloatBuffer(f); p = FloatBuffer(d * f)
        gW2 = opt(h > 0, h * c); gB2 = opt(h > 0, c); gG2 = opt(bn2, h); gBe2 = opt(bn2, h)
        dropoutState = .allocate(capacity: 4)
        for i in 0..<4 { (dropoutState + i).initialize(to: HeadRNG(seed: config.seed, stream: RNGStream.dropout + UInt64(i))) }
        penaltyScratch = .allocate(capacity: 4)
        penaltyScratch.initialize(repeating: 0, count: 4)
        classWeight = .init(repeating: 1, count: c)
    }

    deinit {
        dropoutState.deinitialize(count: 4); dropoutState.deallocate()
        penaltyScratch.deallocate()
    }

    /// The current parameters as `HeadWeights`.
    func weights() -> HeadWeights {
        func bn(_ g: FloatBuffer?, _ b: FloatBuffer?, _ m: FloatBuffer?, _ v: FloatBuffer?) -> BatchNormWeights? {
            guard let g, let b, let m, let v else { return nil }
            return BatchNormWeights(gamma: g.array, beta: b.array, movingMean: m.array, movingVariance: v.array, epsilon: g === g1 ? eps1 : eps2)
        }
        let first = DenseWeights(inputs: d, outputs: f, kernel: w1.array, bias: b1.array)
        if h == 0 {
            return HeadWeights(inputBatchNorm: bn(g1, be1, rm1, rv1), hidden: nil, hiddenBatchNorm: nil, output: first)
        }
        return HeadWeights(inputBatchNorm: bn(g1, be1, rm1, rv1), hidden: first, hiddenBatchNorm: bn(g2, be2, rm2, rv2),
                           output: DenseWeights(inputs: h, outputs: c, kernel: w2!.array, bias: b2!.array))
    }

    /// Sum of squares of the L2-regularised kernel (hidden kernel, or the output kernel of a linear head).
    func l2Penalty() -> Double {
        var s = 0.0
        for i in 0..<w1.count { s += Double(w1.p[i]) * Double(w1.p[i]) }
        return config.l2 * s
    }
}
