import Foundation
import HeadTrainerCore
import XCTest

/// Analytic gradients of the training code (Float, BLAS, fused kernels) against central finite
/// differences of an independent, naive Double implementation of the same loss.
final class GradientCheckTests: XCTestCase {
    /// Deterministic test numbers.
    struct LCG {
        var s: UInt64
        mutating func next() -> Double { s = s &* 6364136223846793005 &+ 1442695040888963407; return Double(s >> 11) / Double(1 << 53) }
        mutating func uniform(_ lo: Double, _ hi: Double) -> Float { Float(lo + (hi - lo) * next()) }
    }

    /// All trainable tensors flattened in a fixed order, as Doubles.
    struct Params {
        var t: [String: [Double]]
    }

    static func params(_ w: HeadWeights) -> Params {
        var t: [String: [Double]] = [:]
        func dd(_ a: [Float]) -> [Double] { a.map(Double.init) }
        if let b = w.inputBatchNorm { t["bn1.gamma"] = dd(b.gamma); t["bn1.beta"] = dd(b.beta) }
        if let h = w.hidden { t["hidden.kernel"] = dd(h.kernel); t["hidden.bias"] = dd(h.bias) }
        if let b = w.hiddenBatchNorm { t["bn2.gamma"] = dd(b.gamma); t["bn2.beta"] = dd(b.beta) }
        t["output.kernel"] = dd(w.output.kernel); t["output.bias"] = dd(w.output.bias)
        return Params(t: t)
    }

    /// Naive reference: training-mode BN (batch mean, biased variance, eps 1e-3), no dropout,
    /// mean class-weighted cross-entropy + l2 * sum(W^2) of the regularised kernel.
    static func referenceLoss(_ p: Params, x: [Double], y: [Int32], n: Int, d: Int, hidden: Int, c: Int,
                              l2: Double, classWeights: [Double]) -> Double {
        func bn(_ a: [Double], _ rows: Int, _ cols: Int, _ g: [Double], _ b: [Double]) -> [Double] {
            var out = a
            for j in 0..<cols {
                var mu = 0.0; for i in 0..<rows { mu += a[i * cols + j] }; mu /= Double(rows)
                var v = 0.0; for i in 0..<rows { v += (a[i * cols + j] - mu) * (a[i * cols + j] - mu) }; v /= Double(rows)
                for i in 0..<rows { out[i * cols + j] = g[j] * (a[i * cols + j] - mu) / (v + 1e-3).squareRoot() + b[j] }
            }
            return out
        }
        func dense(_ a: [Double], _ rows: Int, _ k: Int, _ w: [Double], _ b: [Double], _ m: Int) -> [Double] {
            var out = [Double](repeating: 0, count: rows * m)
            for i in 0..<rows { for o in 0..<m { var s = b[o]; for j in 0..<k { s += a[i * k + j] * w[j * m + o] }; out[i * m + o] = s } }
            return out
        }
        var a = x
        if let g = p.t["bn1.gamma"] { a = bn(a, n, d, g, p.t["bn1.beta"]!) }
        var logits: [Double]
        var reg: [Double]
        if hidden > 0 {
            var hdn = dense(a, n, d, p.t["hidden.kernel"]!, p.t["hidden.bias"]!, hidden).map { max($0, 0) }
            if let g = p.t["bn2.gamma"] { hdn = bn(hdn, n, hidden, g, p.t["bn2.beta"]!) }
            logits = dense(hdn, n, hidden, p.t["output.kernel"]!, p.t["output.bias"]!, c)
            reg = p.t["hidden.kernel"]!
        } else {
            logits = dense(a, n, d, p.t["output.kernel"]!, p.t["output.bias"]!, c)
            reg = p.t["output.kernel"]!
        }
        var loss = 0.0
        for i in 0..<n {
            let row = logits[(i * c)..<(i * c + c)]
            let mx = row.max()!
            let lse = mx + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - mx) })
            loss += classWeights[Int(y[i])] * (lse - logits[i * c + Int(y[i])])
        }
        return loss / Double(n) + l2 * reg.reduce(0) { $0 + $1 * $1 }
    }

    static func randomWeights(d: Int, hidden: Int, c: Int, bn: Bool, rng: inout LCG) -> HeadWeights {
        func r(_ n: Int, _ lo: Double, _ hi: Double) -> [Float] { (0..<n).map { _ in rng.uniform(lo, hi) } }
        let bn1 = bn ? BatchNormWeights(gamma: r(d, 0.5, 1.5), beta: r(d, -0.5, 0.5), movingMean: r(d, 0, 0), movingVariance: r(d, 1, 1)) : nil
        if hidden == 0 {
            return HeadWeights(inputBatchNorm: bn1, hidden: nil, hiddenBatchNorm: nil,
                               output: DenseWeights(inputs: d, outputs: c, kernel: r(d * c, -0.6, 0.6), bias: r(c, -0.3, 0.3)))
        }
        let bn2 = bn ? BatchNormWeights(gamma: r(hidden, 0.5, 1.5), beta: r(hidden, -0.5, 0.5), movingMean: r(hidden, 0, 0), movingVariance: r(hidden, 1, 1)) : nil
        return HeadWeights(inputBatchNorm: bn1, hidden: DenseWeights(inputs: d, outputs: hidden, kernel: r(d * hidden, -0.5, 0.5), bias: r(hidden, -0.2, 0.4)),
                           hiddenBatchNorm: bn2, output: DenseWeights(inputs: hidden, outputs: c, kernel: r(hidden * c, -0.6, 0.6), bias: r(c, -0.3, 0.3)))
    }

    func check(hidden: Int, bn: Bool, l2: Double, weighted: Bool = false, d: Int = 20, c: Int = 4, n: Int = 16,
               file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = LCG(s: UInt64(hidden * 31 + (bn ? 7 : 0) + Int(l2 * 1000) + (weighted ? 5 : 0)))
        let w = Self.randomWeights(d: d, hidden: hidden, c: c, bn: bn, rng: &rng)
        let x = (0..<(n * d)).map { _ in rng.uniform(-1, 2) }
        let y = (0..<n).map { Int32($0 % c) }
        let cw: [Float] = weighted ? (0..<c).map { 0.5 + Float($0) * 0.5 } : [Float](repeating: 1, count: c)
        var cfg = HeadConfig { $0.hidden = hidden; $0.dropout = 0.5; $0.l2 = l2; $0.batchnorm = bn }   // dropout must be ignored by the check
        cfg.seed = 3
        let (loss, grads) = try HeadDiagnostics.lossAndGradients(config: cfg, weights: w, features: x, labels: y, classWeights: cw)
        let base = Self.params(w), analytic = Self.params(grads)
        let xd = x.map(Double.init), cwd = cw.map(Double.init)
        func ref(_ p: Params) -> Double { Self.referenceLoss(p, x: xd, y: y, n: n, d: d, hidden: hidden, c: c, l2: l2, classWeights: cwd) }
        XCTAssertEqual(loss, ref(base), accuracy: 1e-5 * max(1, abs(loss)), "loss value", file: file, line: line)
        XCTAssertEqual(Set(base.t.keys), Set(analytic.t.keys), file: file, line: line)
        let h = 1e-5
        var checked = 0
        for (name, values) in base.t.sorted(by: { $0.key < $1.key }) {
            let g = try XCTUnwrap(analytic.t[name], name, file: file, line: line)
            let scale = g.map(abs).max() ?? 0
            // Every entry of small tensors, a fixed sample of large ones (keeps the debug test fast).
            for i in stride(from: 0, to: values.count, by: values.count > 400 ? 7 : 1) {
                var plus = base, minus = base
                plus.t[name]![i] += h; minus.t[name]![i] -= h
                let numeric = (ref(plus) - ref(minus)) / (2 * h)
                let tol = 2e-3 * abs(numeric) + 2e-4 * max(scale, 1e-3)
                XCTAssertEqual(g[i], numeric, accuracy: tol, "\(name)[\(i)] hidden=\(hidden) bn=\(bn) l2=\(l2)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    func testLinearHead() throws { try check(hidden: 0, bn: false, l2: 0) }
    func testLinearHeadWithBatchNormAndL2() throws { try check(hidden: 0, bn: true, l2: 0.01) }
    func testHiddenHead() throws { try check(hidden: 13, bn: false, l2: 0) }
    func testHiddenHeadWithL2() throws { try check(hidden: 13, bn: false, l2: 0.01) }
    func testHiddenHeadWithBatchNorm() throws { try check(hidden: 13, bn: true, l2: 0) }
    func testDefaultShapedHeadWithBatchNormL2AndClassWeights() throws { try check(hidden: 13, bn: true, l2: 0.01, weighted: true) }
    /// Wide enough (>= 64 units) for the parallel chunked path and full SIMD rows.
    func testWideHiddenHeadUsesChunkedPath() throws { try check(hidden: 64, bn: true, l2: 0.01, d: 40, c: 3, n: 12) }
}
