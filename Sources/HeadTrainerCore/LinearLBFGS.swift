import Foundation

/// Full-batch L-BFGS for linear heads (`hidden == 0`).
///
/// Objective (same as the Adam path without minibatch noise): mean class-weighted cross-entropy
/// + l2 * sum(W^2). With `batchnorm`, the input BN is replaced by a fixed standardization with the
/// training rows' mean and (biased) variance + 1e-3; it is stored as a BN layer (gamma 1, beta 0,
/// moving stats = those statistics), so inference is identical. Each iteration is one "epoch" of
/// the curves and of early stopping. Starts from zero weights (a convex problem; like scikit-learn).
func fitLinearLBFGS(config: HeadConfig, train: LabeledFeatures, rows: [Int], validation: LabeledFeatures?,
                    classWeights: [Double], options: TrainingOptions) throws -> FitOutcome {
    let start = monotonicSeconds()
    let d = train.dim, c = train.classCount
    let par = Parallel(threads: options.threads)
    // Standardization statistics over the fitted rows.
    var mean = [Float](repeating: 0, count: d), variance = [Float](repeating: 1, count: d)
    var scale = [Float](repeating: 1, count: d)
    if config.batchnorm {
        var s = [Double](repeating: 0, count: d), s2 = [Double](repeating: 0, count: d)
        train.values.withUnsafeBufferPointer { x in
            for r in rows { let p = x.baseAddress! + r * d; for j in 0..<d { s[j] += Double(p[j]) } }
            for j in 0..<d { s[j] /= Double(rows.count) }
            for r in rows { let p = x.baseAddress! + r * d; for j in 0..<d { let t = Double(p[j]) - s[j]; s2[j] += t * t } }
        }
        for j in 0..<d {
            mean[j] = Float(s[j]); variance[j] = Float(s2[j] / Double(rows.count))
            scale[j] = 1 / (variance[j] + 1e-3).squareRoot()
        }
    }
    func design(_ data: LabeledFeatures, _ rs: [Int]) -> LinearDesign {
        var x = [Float](repeating: 0, count: rs.count * d)
        data.values.withUnsafeBufferPointer { src in
            for (i, r) in rs.enumerated() {
                let p = src.baseAddress! + r * d
                for j in 0..<d { x[i * d + j] = (p[j] - mean[j]) * scale[j] }
            }
        }
        return LinearDesign(x: x, labels: rs.map { data.labels[$0] }, n: rs.count, d: d, c: c)
    }
    let trainX = design(train, rows)
    let rowWeights = trainX.labels.map { Float(classWeights[Int($0)]) }
    let valX = validation.map { design($0, Array(0..<$0.n)) }
    let l2 = config.l2
    let nParams = d * c + c

    func weights(_ theta: [Double]) -> HeadWeights {
        let bn = config.batchnorm ? BatchNormWeights(gamma: .init(repeating: 1, count: d), beta: .init(repeating: 0, count: d),
                                                     movingMean: mean, movingVariance: variance) : nil
        return HeadWeights(inputBatchNorm: bn, hidden: nil, hiddenBatchNorm: nil,
                           output: DenseWeights(inputs: d, outputs: c, kernel: theta[0..<(d * c)].map { Float($0) },
                                                bias: theta[(d * c)...].map { Float($0) }))
    }
    func objective(_ theta: [Double], grad: inout [Double]) -> (loss: Double, correct: Int) {
        let r = trainX.lossAndGradient(theta: theta, rowWeights: rowWeights, grad: &grad, par: par)
        var pen = 0.0
        for i in 0..<(d * c) { pen += theta[i] * theta[i]; grad[i] += 2 * l2 * theta[i] }
        return (r.loss + l2 * pen, r.correct)
    }

    var theta = [Double](repeating: 0, count: nParams)
    var grad = [Double](repeating: 0, count: nParams)
    var (f, correct) = objective(theta, grad: &grad)
    let memory = 10
    var sHist: [[Double]] = [], yHist: [[Double]] = [], rhoHist: [Double] = []
    var stopper = EarlyStopping(patience: config.patience)
    var best: [Double]? = nil
    var records: [EpochRecord] = []
    var tIter = monotonicSeconds()
    var newGrad = [Double](repeating: 0, count: nParams)

    for iter in 1...config.epochs {
        // Two-loop recursion: direction = -H * grad.
        var q = grad
        var alphas = [Double](repeating: 0, count: sHist.count)
        for k in stride(from: sHist.count - 1, through: 0, by: -1) {
            let a = rhoHist[k] * dot(sHist[k], q); alphas[k] = a
            axpy(-a, yHist[k], &q)
        }
        if let sl = sHist.last, let yl = yHist.last {
            let gamma = dot(sl, yl) / dot(yl, yl)
            for i in 0..<nParams { q[i] *= gamma }
        } else {
            let gn = dot(grad, grad).squareRoot()
            if gn > 0 { for i in 0..<nParams { q[i] /= gn } }
        }
        for k in 0..<sHist.count {
            let b = rhoHist[k] * dot(yHist[k], q)
            axpy(alphas[k] - b, sHist[k], &q)
        }
        var dir = q.map { -$0 }
        var slope = dot(grad, dir)
        if slope >= 0 {   // not a descent direction: restart from steepest descent
            sHist.removeAll(); yHist.removeAll(); rhoHist.removeAll()
            let gn = max(dot(grad, grad).squareRoot(), 1e-300)
            dir = grad.map { -$0 / gn }; slope = dot(grad, dir)
        }
        // Backtracking line search (Armijo).
        var step = 1.0
        var candidate = theta
        var fNew = f, cNew = correct
        var accepted = false
        for _ in 0..<30 {
            for i in 0..<nParams { candidate[i] = theta[i] + step * dir[i] }
            (fNew, cNew) = objective(candidate, grad: &newGrad)
            if fNew.isFinite && fNew <= f + 1e-4 * step * slope { accepted = true; break }
            step *= 0.5
        }
        if !accepted { break }
        var s = [Double](repeating: 0, count: nParams), y = s
        for i in 0..<nParams { s[i] = candidate[i] - theta[i]; y[i] = newGrad[i] - grad[i] }
        let sy = dot(s, y)
        if sy > 1e-12 {
            sHist.append(s); yHist.append(y); rhoHist.append(1 / sy)
            if sHist.count > memory { sHist.removeFirst(); yHist.removeFirst(); rhoHist.removeFirst() }
        }
        let fOld = f
        theta = candidate; f = fNew; correct = cNew; swap(&grad, &newGrad)

        var rec = EpochRecord(epoch: iter, trainLoss: f, trainAccuracy: Double(correct) / Double(trainX.n),
                              validationLoss: nil, validationAccuracy: nil, seconds: 0)
        if let v = valX {
            let pen = (0..<(d * c)).reduce(0.0) { $0 + theta[$1] * theta[$1] } * l2
            let r = v.evaluate(theta: theta, par: par)
            rec.validationLoss = r.loss + pen
            rec.validationAccuracy = Double(r.correct) / Double(v.n)
        }
        let now = monotonicSeconds(); rec.seconds = now - tIter; tIter = now
        records.append(rec)
        options.onEpoch?(rec)
        if let vl = rec.validationLoss, config.patience > 0 {
            let (improved, stop) = stopper.update(epoch: iter, loss: vl)
            if improved { best = theta }
            if stop { break }
        }
        // Converged: tiny gradient or no relative progress (scipy-like ftol/gtol).
        let gmax = grad.reduce(0.0) { max($0, abs($1)) }
        if gmax < 1e-5 || (fOld - f) <= 1e-9 * max(abs(f), abs(fOld), 1) { break }
    }
    if records.isEmpty {   // no step could be taken (already optimal)
        records.append(EpochRecord(epoch: 1, trainLoss: f, trainAccuracy: Double(correct) / Double(trainX.n),
                                   validationLoss: nil, validationAccuracy: nil, seconds: monotonicSeconds() - start))
    }
    let seconds = monotonicSeconds() - start
    if let best { return FitOutcome(weights: weights(best), bestEpoch: stopper.bestEpoch, records: records, seconds: seconds) }
    return FitOutcome(weights: weights(theta), bestEpoch: records.count, records: records, seconds: seconds)
}

@inline(__always) func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += a[i] * b[i] }
    return s
}
@inline(__always) func axpy(_ a: Double, _ x: [Double], _ y: inout [Double]) {
    for i in 0..<x.count { y[i] += a * x[i] }
}

/// A standardized design matrix for the linear solver, evaluated in fixed row chunks.
struct LinearDesign {
    var x: [Float]
    var labels: [Int32]
    var n: Int, d: Int, c: Int
    static let chunks = 4

    /// Mean weighted cross-entropy and its gradient w.r.t. theta = [W (d x c, row-major), b (c)].
    func lossAndGradient(theta: [Double], rowWeights: [Float], grad: inout [Double], par: Parallel) -> (loss: Double, correct: Int) {
        let w = theta.map { Float($0) }
        let chunks = LinearDesign.chunks, d = self.d, c = self.c, n = self.n
        var partG = [[Float]](repeating: [Float](repeating: 0, count: d * c + c), count: chunks)
        var partL = [Double](repeating: 0, count: chunks), partC = [Int](repeating: 0, count: chunks)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                partG.withUnsafeMutableBufferPointer { pg in
                    partL.withUnsafeMutableBufferPointer { pl in
                        partC.withUnsafeMutableBufferPointer { pc in
                            let pgB = pg.baseAddress!, plB = pl.baseAddress!, pcB = pc.baseAddress!
                            par.run(chunks) { ci in
                                let rr = Parallel.range(ci, of: chunks, n, align: 1)
                                if rr.isEmpty { return }
                                let m = rr.count
                                var z = [Float](repeating: 0, count: m * c), p = z
                                z.withUnsafeMutableBufferPointer { zb in
                                    p.withUnsafeMutableBufferPointer { pb in
                                        let xs = xp.baseAddress! + rr.lowerBound * d
                                        gemm(m: m, n: c, k: d, a: xs, lda: d, b: wp.baseAddress!, ldb: c, c: zb.baseAddress!, ldc: c)
                                        for i in 0..<m { for k in 0..<c { zb[i * c + k] += wp[d * c + k] } }
                                        softmaxRows(zb.baseAddress!, pb.baseAddress!, rows: m, c: c)
                                        var loss = 0.0, correct = 0
                                        let invN = 1 / Float(n)
                                        for i in 0..<m {
                                            let y = Int(labels[rr.lowerBound + i]), wy = rowWeights[rr.lowerBound + i]
                                            var best = 0
                                            for k in 1..<c where zb[i * c + k] > zb[i * c + best] { best = k }
                                            if best == y { correct += 1 }
                                            loss -= Double(wy) * Double(logf(max(pb[i * c + y], Float.leastNormalMagnitude)))
                                            for k in 0..<c { zb[i * c + k] = pb[i * c + k] * wy * invN }
                                            zb[i * c + y] -= wy * invN
                                        }
                                        pgB[ci].withUnsafeMutableBufferPointer { g in
                                            gemm(transA: true, m: d, n: c, k: m, a: xs, lda: d, b: zb.baseAddress!, ldb: c, c: g.baseAddress!, ldc: c)
                                            for i in 0..<m { for k in 0..<c { g[d * c + k] += zb[i * c + k] } }
                                        }
                                        plB[ci] = loss; pcB[ci] = correct
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<grad.count { grad[i] = 0 }
        var loss = 0.0, correct = 0
        for ci in 0..<chunks {
            for i in 0..<grad.count { grad[i] += Double(partG[ci][i]) }
            loss += partL[ci]; correct += partC[ci]
        }
        return (loss / Double(n), correct)
    }

    /// Unweighted mean cross-entropy and correct count.
    func evaluate(theta: [Double], par: Parallel) -> (loss: Double, correct: Int) {
        var g = [Double](repeating: 0, count: theta.count)
        return lossAndGradient(theta: theta, rowWeights: [Float](repeating: 1, count: n), grad: &g, par: par)
    }
}
