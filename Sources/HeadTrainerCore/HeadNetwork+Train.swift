import COpenBLAS
import Foundation

/// Gradients of one batch, written instead of applying Adam (gradient check).
final class GradientCapture {
    let w1: FloatBuffer, b1: FloatBuffer
    let g1: FloatBuffer?, be1: FloatBuffer?
    let w2: FloatBuffer?, b2: FloatBuffer?, g2: FloatBuffer?, be2: FloatBuffer?
    init(_ n: HeadNetwork) {
        w1 = FloatBuffer(n.d * n.f); b1 = FloatBuffer(n.f)
        g1 = n.bn1 ? FloatBuffer(n.d) : nil; be1 = n.bn1 ? FloatBuffer(n.d) : nil
        w2 = n.h > 0 ? FloatBuffer(n.h * n.c) : nil; b2 = n.h > 0 ? FloatBuffer(n.c) : nil
        g2 = n.bn2 ? FloatBuffer(n.h) : nil; be2 = n.bn2 ? FloatBuffer(n.h) : nil
    }
}

extension HeadNetwork {
    struct StepResult {
        /// Sum over the batch of class-weighted cross-entropy.
        var weightedLossSum: Double
        var correct: Int
        /// l2 * sum(W^2) of the weights used in this step's forward pass.
        var penalty: Double
    }

    /// One training step (forward, backward, Adam) on the batch `rows` of `data` (row-major, `d` wide).
    ///
    /// Two parallel regions (fixed chunks, so results do not depend on the thread count): input BN +
    /// Dense1 forward by input features, and the fused first-layer gradient + Adam by input rows.
    /// The small hidden/output layers run on the calling thread in between.
    ///
    /// `inputGradient` (batch x d), when given, receives d loss / d input of each batch row (in
    /// `rows` order), for layers trained below the head (`train-head --unfreeze`).
    func trainStep(data: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: UnsafeBufferPointer<Int>,
                   capture: GradientCapture? = nil, inputGradient: UnsafeMutablePointer<Float>? = nil) -> StepResult {
        let bsz = rows.count
        precondition(bsz > 0 && bsz <= maxBatch)
        if capture == nil { t += 1 }
        let step = AdamStep(lr: config.lr, t: max(t, 1))
        let rowsBase = rows.baseAddress!
        let d = self.d, f = self.f, h = self.h, c = self.c
        let chunks = self.chunks

        // 1+2. Input batch norm (or a plain gather) and Dense1 forward, split by input features
        //      (GEMM depth): chunk ci normalises its feature columns and multiplies them by its rows of
        //      W1 into its own partial product. Splitting the depth packs every operand once (the
        //      column split repacked the whole batch per chunk) and lets OpenBLAS use its
        //      unpacked small-matrix kernels on depth blocks of `forwardDepthBlock`.
        let xin = self.xin.p
        let a0 = bn1 ? self.a0!.p : xin
        let z1 = self.z1.p, b1 = self.b1.p, w1 = self.w1.p, zpart = self.zPartial.p
        let kb = forwardDepthBlock
        par.run(chunks) { ci in
            let kr = Parallel.range(ci, of: chunks, d)
            let zc = zpart + ci * bsz * f
            if kr.isEmpty { zc.update(repeating: 0, count: bsz * f); return }
            if bn1 {
                batchNormForwardTrain(batch: bsz, cols: kr, ld: d, src: data, rows: rowsBase, srcLD: d,
                                      xhat: xin, out: a0, gamma: self.g1!.p, beta: self.be1!.p,
                                      movingMean: self.rm1!.p, movingVar: self.rv1!.p,
                                      mean: self.mu1!.p, istd: self.istd1!.p, epsilon: self.eps1)
            } else {
                for i in 0..<bsz { (xin + i * d + kr.lowerBound).update(from: data + rowsBase[i] * d + kr.lowerBound, count: kr.count) }
            }
            var lo = kr.lowerBound
            while lo < kr.upperBound {
                let hi = min(kr.upperBound, lo + kb)
                gemm(m: bsz, n: f, k: hi - lo, a: a0 + lo, lda: d, b: w1 + lo * f, ldb: f,
                     beta: lo == kr.lowerBound ? 0 : 1, c: zc, ldc: f)
                lo = hi
            }
        }
        // z1 = bias + sum of the partial products, in chunk order (fixed: thread-count independent).
        for i in 0..<bsz {
            let zr = z1 + i * f
            zr.update(from: b1, count: f)
            for ci in 0..<chunks {
                let pr = zpart + ci * bsz * f + i * f
                for k in 0..<f { zr[k] += pr[k] }
            }
        }
        // ReLU, dropout and BN2 by hidden-column chunks, each with its own dropout generator.
        let rate = (capture == nil && h > 0) ? Float(config.dropout) : 0
        if h > 0 {
            for ci in 0..<chunks {
                let cr = Parallel.range(ci, of: chunks, f)
                if !cr.isEmpty { reluDropoutBN2(cols: cr, batch: bsz, rate: rate, rng: dropoutState + ci) }
            }
        }

        // 3. Output layer, softmax, loss and dlogits (one thread: B x H x C is tiny).
        let logits = self.logits.p, probs = self.probs.p, dlog = self.dlog.p
        let top: UnsafeMutablePointer<Float>? = h > 0 ? (bn2 ? a2!.p : hd!.p) : nil
        if let top {
            let b2 = self.b2!.p
            gemm(m: bsz, n: c, k: h, a: top, lda: h, b: w2!.p, ldb: c, c: logits, ldc: c)
            for i in 0..<bsz { for k in 0..<c { logits[i * c + k] += b2[k] } }
        } else {
            logits.update(from: z1, count: bsz * c)
        }
        softmaxRows(logits, probs, rows: bsz, c: c)
        var lossSum = 0.0, correct = 0
        let invB = 1 / Float(bsz)
        for i in 0..<bsz {
            let y = Int(labels[rowsBase[i]])
            let lr = logits + i * c, pr = probs + i * c
            var best = 0
            for k in 1..<c where lr[k] > lr[best] { best = k }
            if best == y { correct += 1 }
            let wy = classWeight[y]
            lossSum += Double(wy) * -Double(logf(max(pr[y], Float.leastNormalMagnitude)))
            let s = wy * invB
            for k in 0..<c { dlog[i * c + k] = pr[k] * s }
            dlog[i * c + y] -= s
        }

        // 4. Backward through the output layer, BN2, dropout and ReLU -> dz, cs; Adam on the small tensors.
        let dz = self.dz.p, cs = self.cs.p
        if let top {
            let gW2 = self.gW2!.p, gB2 = self.gB2!.p, da2 = self.da2!.p
            gemm(transA: true, m: h, n: c, k: bsz, a: top, lda: h, b: dlog, ldb: c, c: gW2, ldc: c)
            for k in 0..<c { var s: Float = 0; for i in 0..<bsz { s += dlog[i * c + k] }; gB2[k] = s }
            gemm(transB: true, m: bsz, n: h, k: c, a: dlog, lda: c, b: w2!.p, ldb: c, c: da2, ldc: h)
            backwardHidden(batch: bsz)
        } else {
            dz.update(from: dlog, count: bsz * c)
        }
        for k in 0..<f { cs[k] = 0 }
        for i in 0..<bsz {
            let r = dz + i * f
            for k in 0..<f { cs[k] += r[k] }
        }
        if let cap = capture {
            cap.b1.p.update(from: cs, count: f)
            if h > 0 {
                cap.w2!.copy(from: gW2!); cap.b2!.copy(from: gB2!)
                if bn2 { cap.g2!.copy(from: gG2!); cap.be2!.copy(from: gBe2!) }
            }
        } else {
            adamUpdate(b1, cs, mB1.p, vB1.p, f, step)
            if h > 0 {
                adamUpdate(w2!.p, gW2!.p, mW2!.p, vW2!.p, h * c, step)
                adamUpdate(b2!.p, gB2!.p, mB2!.p, vB2!.p, c, step)
                if bn2 {
                    adamUpdate(g2!.p, gG2!.p, mG2!.p, vG2!.p, h, step)
                    adamUpdate(be2!.p, gBe2!.p, mBe2!.p, vBe2!.p, h, step)
                }
            }
        }

        if let dx = inputGradient { self.inputGradient(into: dx, batch: bsz) }

        // 5. First layer: P = xin^T dz in row blocks, each immediately consumed by the fused
        //    gradient + Adam pass while it is still in cache.
        let upd = FirstLayerUpdate(w: w1, mW: mW1.p, vW: vW1.p, p: p.p, cs: cs, f: f,
                                   gamma: g1?.p, beta: be1?.p, mG: mG1?.p, vG: vG1?.p, mB: mBe1?.p, vB: vBe1?.p,
                                   l2x2: Float(2 * config.l2), step: step,
                                   capture: capture.map { ($0.w1.p, $0.g1?.p, $0.be1?.p) })
        let pp = p.p, rowBlock = gradientRowBlock
        let sums = penaltyScratch
        par.run(chunks) { ci in
            let rr = Parallel.range(ci, of: chunks, d)
            var s = 0.0
            var lo = rr.lowerBound
            while lo < rr.upperBound {
                let hi = min(rr.upperBound, lo + rowBlock)
                gemm(transA: true, m: hi - lo, n: f, k: bsz, a: xin + lo, lda: d, b: dz, ldb: f, c: pp + lo * f, ldc: f)
                s += upd.run(rows: lo..<hi)
                lo = hi
            }
            sums[ci] = s
        }
        var sq = 0.0
        for ci in 0..<chunks { sq += sums[ci] }
        return StepResult(weightedLossSum: lossSum, correct: correct, penalty: config.l2 * sq)
    }

    /// d loss / d input = dz W1^T, then back through the training-mode input batch norm:
    /// dx = gamma istd (da - mean(da) - xhat mean(da xhat)) over the batch. Before the first layer's
    /// Adam step (it uses this step's W1 and gamma).
    private func inputGradient(into dx: UnsafeMutablePointer<Float>, batch: Int) {
        let d = self.d, f = self.f
        gemm(transB: true, m: batch, n: d, k: f, a: dz.p, lda: f, b: w1.p, ldb: f, c: dx, ldc: d)
        guard bn1 else { return }
        let xhat = xin.p, gamma = g1!.p, istd = istd1!.p
        let meanD = FloatBuffer(d), meanDX = FloatBuffer(d)
        for i in 0..<batch {
            let dr = dx + i * d, xr = xhat + i * d
            for j in 0..<d { meanD.p[j] += dr[j]; meanDX.p[j] += dr[j] * xr[j] }
        }
        let invB = 1 / Float(batch)
        for i in 0..<batch {
            let dr = dx + i * d, xr = xhat + i * d
            for j in 0..<d { dr[j] = gamma[j] * istd[j] * (dr[j] - meanD.p[j] * invB - xr[j] * meanDX.p[j] * invB) }
        }
    }

    /// ReLU, inverted dropout and (training-mode) BN2 for hidden columns `cols`.
    private func reluDropoutBN2(cols: Range<Int>, batch: Int, rate: Float, rng: UnsafeMutablePointer<HeadRNG>) {
        let h = self.h, f = self.f
        let z1 = self.z1.p, scale = self.scale!.p, hd = self.hd!.p
        // HOT: one random draw per element when dropout is on (keep iff u >= rate * 2^32).
        let threshold = UInt64(Double(rate) * 4294967296.0)
        let keepScale = 1 / (1 - rate)
        for i in 0..<batch {
            let zr = z1 + i * f, sr = scale + i * h, hr = hd + i * h
            if rate > 0 {
                var k = cols.lowerBound
                while k < cols.upperBound {
                    let r = rng.pointee.next()
                    let u0 = r & 0xFFFF_FFFF, u1 = r >> 32
                    let s0: Float = (zr[k] > 0 && u0 >= threshold) ? keepScale : 0
                    sr[k] = s0; hr[k] = zr[k] * s0
                    if k + 1 < cols.upperBound {
                        let s1: Float = (zr[k + 1] > 0 && u1 >= threshold) ? keepScale : 0
                        sr[k + 1] = s1; hr[k + 1] = zr[k + 1] * s1
                    }
                    k += 2
                }
            } else {
                for k in cols { let s: Float = zr[k] > 0 ? 1 : 0; sr[k] = s; hr[k] = zr[k] * s }
            }
        }
        if bn2 {
            batchNormForwardTrain(batch: batch, cols: cols, ld: h, src: hd, rows: nil, srcLD: h,
                                  xhat: dhat2!.p, out: a2!.p, gamma: g2!.p, beta: be2!.p,
                                  movingMean: rm2!.p, movingVar: rv2!.p, mean: mu2!.p, istd: istd2!.p, epsilon: eps2)
        }
    }

    /// da2 -> (BN2 backward) -> dropout/ReLU backward -> dz; also BN2's gamma/beta gradients.
    private func backwardHidden(batch: Int) {
        let h = self.h
        let da2 = self.da2!.p, dz = self.dz.p, scale = self.scale!.p
        if bn2 {
            let dhat = dhat2!.p, gG = gG2!.p, gBe = gBe2!.p, gam = g2!.p, istd = istd2!.p
            for k in 0..<h { gG[k] = 0; gBe[k] = 0 }
            for i in 0..<batch {
                let dr = da2 + i * h, xr = dhat + i * h
                for k in 0..<h { gBe[k] += dr[k]; gG[k] += dr[k] * xr[k] }
            }
            let invB = 1 / Float(batch)
            for i in 0..<batch {
                let dr = da2 + i * h, xr = dhat + i * h, sr = scale + i * h, zr = dz + i * h
                for k in 0..<h {
                    let dd = gam[k] * istd[k] * (dr[k] - gBe[k] * invB - xr[k] * gG[k] * invB)
                    zr[k] = dd * sr[k]
                }
            }
        } else {
            for i in 0..<(batch * h) { dz[i] = da2[i] * scale[i] }
        }
    }
}
