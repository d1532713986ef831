// HOT LOOPS. Everything that runs once per training step per element lives here, written with
// explicit SIMD8 so it vectorises whatever the target CPU. The GEMMs are in HeadNetwork+Train.swift.

import Foundation
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

typealias V8 = SIMD8<Float>

/// Lane-wise square root. `SIMD8.squareRoot()` is scalarised by the compiler (8 sqrtss + shuffles,
/// measured 4x slower for Adam); SSE's sqrtps is in the x86-64 baseline, so use it directly.
@inline(__always) func sqrt8(_ v: V8) -> V8 {
    #if arch(x86_64)
    return V8(lowHalf: SIMD4<Float>(_mm_sqrt_ps(__m128(v.lowHalf))), highHalf: SIMD4<Float>(_mm_sqrt_ps(__m128(v.highHalf))))
    #else
    return v.squareRoot()
    #endif
}

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
}


/// Plain Adam on `n` parameters with gradient `g` (no L2): m, v, w updated in place.
@inline(__always)
func adamUpdate(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                _ v: UnsafeMutablePointer<Float>, _ n: Int, _ step: AdamStep, l2x2: Float = 0) {
    let c1 = 1 - AdamStep.beta1, c2 = 1 - AdamStep.beta2, eps = AdamStep.epsilon, a = step.alpha
    for i in 0..<n {
        let gi = g[i] + l2x2 * w[i]
        let mi = m[i] + (gi - m[i]) * c1
        let vi = v[i] + (gi * gi - v[i]) * c2
        m[i] = mi; v[i] = vi
        w[i] -= mi * a / (vi.squareRoot() + eps)
    }
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
        let c1 = 1 - AdamStep.beta1, c2 = 1 - AdamStep.beta2
        let vc1 = V8(repeating: c1), vc2 = V8(repeating: c2), veps = V8(repeating: AdamStep.epsilon)
        let va = V8(repeating: step.alpha), vl2 = V8(repeating: l2x2)
        let f8 = f & ~7
        var sq = 0.0
        for j in rows {
            let wr = w + j * f, pr = p + j * f, mr = mW + j * f, vr = vW + j * f
            let gam = gamma?[j] ?? 1, bet = beta?[j] ?? 0
            let vgam = V8(repeating: gam), vbet = V8(repeating: bet)
            var dg8 = V8(), db8 = V8(), sq8 = V8()
            var dg: Float = 0, db: Float = 0, sqs: Float = 0
            if let cap = capture {
                for k in 0..<f {
                    let wk = wr[k], pk = pr[k], ck = cs[k]
                    dg += wk * pk; db += wk * ck; sqs += wk * wk
                    cap.w[j * f + k] = (gamma != nil ? gam * pk + bet * ck : pk) + l2x2 * wk
                }
                cap.gamma?[j] = dg; cap.beta?[j] = db
                sq += Double(sqs)
                continue
            }
            var k = 0
            if gamma != nil {
                while k < f8 {
                    let wk = load8(wr + k), pk = load8(pr + k), ck = load8(cs + k)
                    dg8 += wk * pk; db8 += wk * ck; sq8 += wk * wk
                    let g = vgam * pk + vbet * ck + vl2 * wk
                    let m = load8(mr + k), v = load8(vr + k)
                    let m2 = m + (g - m) * vc1
                    let v2 = v + (g * g - v) * vc2
                    store8(m2, mr + k); store8(v2, vr + k)
                    store8(wk - m2 * va / (sqrt8(v2) + veps), wr + k)
                    k += 8
                }
            } else {
                while k < f8 {
                    let wk = load8(wr + k), pk = load8(pr + k)
                    sq8 += wk * wk
                    let g = pk + vl2 * wk
                    let m = load8(mr + k), v = load8(vr + k)
                    let m2 = m + (g - m) * vc1
                    let v2 = v + (g * g - v) * vc2
                    store8(m2, mr + k); store8(v2, vr + k)
                    store8(wk - m2 * va / (sqrt8(v2) + veps), wr + k)
                    k += 8
                }
            }
            while k < f {   // remainder (and all of a linear head's few classes)
                let wk = wr[k], pk = pr[k], ck = cs[k]
                dg += wk * pk; db += wk * ck; sqs += wk * wk
                let g = (gamma != nil ? gam * pk + bet * ck : pk) + l2x2 * wk
                let m2 = mr[k] + (g - mr[k]) * c1
                let v2 = vr[k] + (g * g - vr[k]) * c2
                mr[k] = m2; vr[k] = v2
                wr[k] = wk - m2 * step.alpha / (v2.squareRoot() + AdamStep.epsilon)
                k += 1
            }
            dg += dg8.sum(); db += db8.sum(); sqs += sq8.sum()
            sq += Double(sqs)
            if let gp = gamma, let bp = beta, let mg = mG, let vg = vG, let mb = mB, let vb = vB {
                var gg = dg, gb = db
                adamUpdate(gp + j, &gg, mg + j, vg + j, 1, step)
                adamUpdate(bp + j, &gb, mb + j, vb + j, 1, step)
            }
        }
        return sq
    }
}

/// Training-mode batch norm over `rows` of the batch for feature columns `cols`, reading row i of
/// the batch at `src(i)`: writes xhat (normalised) and a0 = gamma*xhat + beta, and updates the
/// moving statistics with Keras' momentum (biased batch variance, as Keras uses).
@inline(__always)
func batchNormForwardTrain(batch: Int, cols: Range<Int>, ld: Int, src: (Int) -> UnsafePointer<Float>,
                           xhat: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                           gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                           movingMean: UnsafeMutablePointer<Float>, movingVar: UnsafeMutablePointer<Float>,
                           mean: UnsafeMutablePointer<Float>, istd: UnsafeMutablePointer<Float>,
                           momentum: Float = 0.99, epsilon: Float = 1e-3) {
    let lo = cols.lowerBound, n = cols.count
    let inv = 1 / Float(batch)
    (mean + lo).update(repeating: 0, count: n)
    (istd + lo).update(repeating: 0, count: n)
    // Pass 1: sums (columns innermost, contiguous).
    for i in 0..<batch {
        let r = src(i) + lo, mr = mean + lo
        var j = 0
        while j + 8 <= n { store8(load8(mr + j) + load8(r + j), mr + j); j += 8 }
        while j < n { mr[j] += r[j]; j += 1 }
    }
    for j in cols { mean[j] *= inv }
    // Pass 2: centred second moment (numerically safer than E[x^2] - E[x]^2).
    for i in 0..<batch {
        let r = src(i) + lo, mr = mean + lo, vr = istd + lo
        var j = 0
        while j + 8 <= n { let d = load8(r + j) - load8(mr + j); store8(load8(vr + j) + d * d, vr + j); j += 8 }
        while j < n { let d = r[j] - mr[j]; vr[j] += d * d; j += 1 }
    }
    for j in cols {
        let v = istd[j] * inv
        movingMean[j] = movingMean[j] * momentum + mean[j] * (1 - momentum)
        movingVar[j] = movingVar[j] * momentum + v * (1 - momentum)
        istd[j] = 1 / (v + epsilon).squareRoot()
    }
    // Pass 3: normalise and scale.
    for i in 0..<batch {
        let r = src(i) + lo, xr = xhat + i * ld + lo, orow = out + i * ld + lo
        let mr = mean + lo, sr = istd + lo, gr = gamma + lo, br = beta + lo
        var j = 0
        while j + 8 <= n {
            let xh = (load8(r + j) - load8(mr + j)) * load8(sr + j)
            store8(xh, xr + j); store8(xh * load8(gr + j) + load8(br + j), orow + j)
            j += 8
        }
        while j < n { let xh = (r[j] - mr[j]) * sr[j]; xr[j] = xh; orow[j] = xh * gr[j] + br[j]; j += 1 }
    }
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
