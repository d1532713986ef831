import COpenBLAS
import Foundation

/// Buffers for inference: `slots` independent row ranges, each processed in blocks of `block` rows.
final class EvalScratch {
    static let block = 128
    static let slots = 4
    let a0: [FloatBuffer], z: [FloatBuffer], a2: [FloatBuffer], logits: [FloatBuffer], probs: [FloatBuffer]
    let s1: FloatBuffer, s2: FloatBuffer
    let partial: UnsafeMutablePointer<(Double, Int)>

    init(d: Int, f: Int, h: Int, c: Int) {
        let b = EvalScratch.block, n = EvalScratch.slots
        a0 = (0..<n).map { _ in FloatBuffer(b * d) }
        z = (0..<n).map { _ in FloatBuffer(b * f) }
        a2 = (0..<n).map { _ in FloatBuffer(b * max(h, 1)) }
        logits = (0..<n).map { _ in FloatBuffer(b * c) }
        probs = (0..<n).map { _ in FloatBuffer(b * c) }
        s1 = FloatBuffer(d); s2 = FloatBuffer(max(h, 1))
        partial = .allocate(capacity: n)
        partial.initialize(repeating: (0, 0), count: n)
    }
    deinit { partial.deallocate() }
}

extension HeadNetwork {
    /// Inference-mode forward pass (moving BN statistics, no dropout) over `n` rows.
    /// Writes probabilities (n x C) to `probsOut` when given; returns the cross-entropy sum and the
    /// number of correct argmax predictions when `labels` are given.
    @discardableResult
    func evaluate(data: UnsafePointer<Float>, n: Int, labels: UnsafePointer<Int32>?,
                  probsOut: UnsafeMutablePointer<Float>?) -> (lossSum: Double, correct: Int) {
        if evalScratch == nil { evalScratch = EvalScratch(d: d, f: f, h: h, c: c) }
        let sc = evalScratch!
        let d = self.d, f = self.f, h = self.h, c = self.c
        // Fold BN: y = (x - mean) * (gamma / sqrt(var + eps)) + beta.
        if bn1 { for j in 0..<d { sc.s1.p[j] = g1!.p[j] / (rv1!.p[j] + eps1).squareRoot() } }
        if bn2 { for k in 0..<h { sc.s2.p[k] = g2!.p[k] / (rv2!.p[k] + eps2).squareRoot() } }
        let slots = EvalScratch.slots
        par.run(slots) { si in
            let range = Parallel.range(si, of: slots, n, align: 1)
            var loss = 0.0, correct = 0
            var r0 = range.lowerBound
            while r0 < range.upperBound {
                let rows = min(EvalScratch.block, range.upperBound - r0)
                let x = data + r0 * d
                var a0 = x
                if self.bn1 {
                    let out = sc.a0[si].p, s = sc.s1.p, m = self.rm1!.p, b = self.be1!.p
                    for i in 0..<rows {
                        let xr = x + i * d, orow = out + i * d
                        var j = 0
                        while j + 8 <= d { store8((load8(xr + j) - load8(m + j)) * load8(s + j) + load8(b + j), orow + j); j += 8 }
                        while j < d { orow[j] = (xr[j] - m[j]) * s[j] + b[j]; j += 1 }
                    }
                    a0 = UnsafePointer(out)
                }
                let z = sc.z[si].p
                gemm(m: rows, n: f, k: d, a: a0, lda: d, b: self.w1.p, ldb: f, c: z, ldc: f)
                for i in 0..<rows { for k in 0..<f { z[i * f + k] += self.b1.p[k] } }
                let logits: UnsafeMutablePointer<Float>
                if h > 0 {
                    let a2 = sc.a2[si].p
                    for i in 0..<(rows * h) { a2[i] = max(z[i], 0) }
                    if self.bn2 {
                        let s = sc.s2.p, m = self.rm2!.p, b = self.be2!.p
                        for i in 0..<rows { for k in 0..<h { a2[i * h + k] = (a2[i * h + k] - m[k]) * s[k] + b[k] } }
                    }
                    logits = sc.logits[si].p
                    gemm(m: rows, n: c, k: h, a: a2, lda: h, b: self.w2!.p, ldb: c, c: logits, ldc: c)
                    for i in 0..<rows { for k in 0..<c { logits[i * c + k] += self.b2!.p[k] } }
                } else {
                    logits = z
                }
                let probs = probsOut.map { $0 + r0 * c } ?? sc.probs[si].p
                softmaxRows(logits, probs, rows: rows, c: c)
                if let labels {
                    for i in 0..<rows {
                        let y = Int(labels[r0 + i])
                        let pr = probs + i * c, lr = logits + i * c
                        var best = 0
                        for k in 1..<c where lr[k] > lr[best] { best = k }
                        if best == y { correct += 1 }
                        loss -= Double(logf(max(pr[y], Float.leastNormalMagnitude)))
                    }
                }
                r0 += rows
            }
            sc.partial[si] = (loss, correct)
        }
        var loss = 0.0, correct = 0
        for si in 0..<slots { loss += sc.partial[si].0; correct += sc.partial[si].1 }
        return (loss, correct)
    }
}
