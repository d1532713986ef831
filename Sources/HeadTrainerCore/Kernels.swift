// HOT LOOPS. Everything that runs once per training step per element lives here. The heaviest
// (Adam, the fused first-layer update, training-mode batch norm) are C kernels in CHeadKernels,
// compiled for AVX-512, AVX2 and the baseline and chosen at run time (all variants give
// bit-identical results); these Swift wrappers keep the call sites readable. The GEMMs are in
// HeadNetwork+Train.swift, on the backend chosen in GEMM.swift.

import CHeadKernels
import Foundation

typealias V8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
@inline(__always) func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }

/// Keras Adam constants.
struct AdamStep {
    static let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7
    /// lr * sqrt(1 - beta2^t) / (1 - beta1^t), Keras' bias correction folded into the step size.
    var alpha: Float

    init(lr: Double, t: Int) {
        let b1t = Float(Foundation.pow(Double(AdamStep.beta1), Double(t)))
        let b2t = Float(Foundation.pow(Double(AdamStep.beta2), Double(t)))
        alpha = Float(lr) * (1 - b2t).squareRoot() / (1 - b1t)
    }

    /// The constants as the C kernels take them.
    var params: chk_adam_params {
        chk_adam_params(alpha: alpha, c1: 1 - AdamStep.beta1, c2: 1 - AdamStep.beta2, eps: AdamStep.epsilon)
    }
}


/// Plain Adam on `n` parameters with gradient `g` (+ l2x2 * w): m, v, w updated in place.
@inline(__always)
func adamUpdate(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                _ v: UnsafeMutablePointer<Float>, _ n: Int, _ step: AdamStep, l2x2: Float = 0) {
    chk_adam(w, g, m, v, n, l2x2, step.params)
}

/// The fused update of the first dense layer's kernel rows `rows` after P = xin^T * dZ:
///
///   with input BN:   dW[j,k] = gamma_j * P[j,k] + beta_j * cs[k]      (a0 = gamma*xhat + beta)
///                    dgamma_j = sum_k W[j,k] * P[j,k],  dbeta_j = sum_k W[j,k] * cs[k]
///   without:         dW[j,k] = P[j,k]
///   plus L2:         dW += 2*l2*W
///
/// then Adam on W (and on gamma_j, beta_j). This avoids the B x F x D GEMM that dX = dZ * W^T would
/// cost: the input-BN gradients only need row sums of W (.) P. Returns sum of W^2 (before the
/// update) over these rows, for the reported L2 penalty.
///
/// When `capture` is non-nil the gradients are written there instead and nothing is updated
/// (used by the gradient check).
struct FirstLayerUpdate {
    var w: UnsafeMutablePointer<Float>, mW: UnsafeMutablePointer<Float>, vW: UnsafeMutablePointer<Float>
    var p: UnsafePointer<Float>, cs: UnsafePointer<Float>, f: Int
    var gamma: UnsafeMutablePointer<Float>?, beta: UnsafeMutablePointer<Float>?
    var mG: UnsafeMutablePointer<Float>?, vG: UnsafeMutablePointer<Float>?
    var mB: UnsafeMutablePointer<Float>?, vB: UnsafeMutablePointer<Float>?
    var l2x2: Float
    var step: AdamStep
    var capture: (w: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>?, beta: UnsafeMutablePointer<Float>?)?

    @inline(__always)
    func run(rows: Range<Int>) -> Double {
        if let cap = capture { return captureGradients(rows: rows, cap) }
        var args = chk_first_layer(w: w, m: mW, v: vW, p: p, cs: cs, f: f, gamma: gamma, beta: beta,
                                   m_gamma: mG, v_gamma: vG, m_beta: mB, v_beta: vB, l2x2: l2x2, adam: step.params)
        return chk_first_layer_update(&args, rows.lowerBound, rows.upperBound)
    }

    /// Gradient-check path: the same gradients, written out (scalar; never hot).
    private func captureGradients(rows: Range<Int>, _ cap: (w: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>?, beta: UnsafeMutablePointer<Float>?)) -> Double {
        var sq = 0.0
        for j in rows {
            let wr = w + j * f, pr = p + j * f
            let gam = gamma?[j] ?? 1, bet = beta?[j] ?? 0
            var dg: Float = 0, db: Float = 0, sqs: Float = 0
            for k in 0..<f {
                let wk = wr[k], pk = pr[k], ck = cs[k]
                dg += wk * pk; db += wk * ck; sqs += wk * wk
                cap.w[j * f + k] = (gamma != nil ? gam * pk + bet * ck : pk) + l2x2 * wk
            }
            cap.gamma?[j] = dg; cap.beta?[j] = db
            sq += Double(sqs)
        }
        return sq
    }
}

/// Training-mode batch norm over `batch` rows for feature columns `cols`, reading row i of the batch
/// at `src + (rows?[i] ?? i) * srcLD`: writes xhat (normalised) and out = gamma*xhat + beta (both with
/// leading dimension `ld`), the batch mean and 1/sqrt(var + eps), and updates the moving statistics
/// with Keras' momentum (biased batch variance, as Keras uses).
@inline(__always)
func batchNormForwardTrain(batch: Int, cols: Range<Int>, ld: Int,
                           src: UnsafePointer<Float>, rows: UnsafePointer<Int>?, srcLD: Int,
                           xhat: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                           gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                           movingMean: UnsafeMutablePointer<Float>, movingVar: UnsafeMutablePointer<Float>,
                           mean: UnsafeMutablePointer<Float>, istd: UnsafeMutablePointer<Float>,
                           momentum: Float = 0.99, epsilon: Float = 1e-3) {
    if cols.isEmpty { return }
    chk_batchnorm_train(batch, cols.lowerBound, cols.upperBound, ld, src, rows, srcLD, xhat, out, gamma, beta,
                        movingMean, movingVar, mean, istd, momentum, epsilon)
}

/// Row-wise softmax of `logits` (rows x c) into `probs`; returns nothing. Stable (max-subtracted).
@inline(__always)
func softmaxRows(_ logits: UnsafePointer<Float>, _ probs: UnsafeMutablePointer<Float>, rows: Int, c: Int) {
    for i in 0..<rows {
        let l = logits + i * c, p = probs + i * c
        var mx = l[0]
        for k in 1..<c where l[k] > mx { mx = l[k] }
        var s: Float = 0
        for k in 0..<c { let e = expf(l[k] - mx); p[k] = e; s += e }
        let inv = 1 / s
        for k in 0..<c { p[k] *= inv }
    }
}

/// Instruction-set variant of the C training kernels (CHeadKernels). The best one the CPU supports
/// is picked automatically; all variants give bit-identical results, so choosing one only changes
/// speed (exposed for tests and benchmarks).
public enum HeadKernelVariant: Int, CaseIterable, Sendable, CustomStringConvertible {
    case generic = 0, avx2 = 1, avx512 = 2

    /// The fastest variant this CPU supports.
    public static var best: HeadKernelVariant { HeadKernelVariant(rawValue: Int(chk_isa_best())) ?? .generic }
    /// Variants this CPU can run.
    public static var supported: [HeadKernelVariant] { allCases.filter { $0.rawValue <= best.rawValue } }
    /// The variant in use (process-wide). Setting an unsupported variant selects `best`.
    public static var active: HeadKernelVariant {
        get { HeadKernelVariant(rawValue: Int(chk_isa_active())) ?? .generic }
        set { _ = chk_isa_set(Int32(newValue.rawValue > best.rawValue ? -1 : newValue.rawValue)) }
    }

    public var description: String { ["generic", "avx2", "avx512"][rawValue] }
}
