import BackboneEngine
import XCTest

/// The engine's building blocks against naive loops written straight from the definitions
/// (TensorFlow SAME padding, grouped convolution, fused residual + activation, pooling, dense).
final class EngineOpsTests: XCTestCase {
    struct Rng { var s: UInt64; mutating func next() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1 } }

    /// Naive NCHW convolution with explicit (top, left) padding, zero outside.
    func naiveConv(_ x: [Float], n: Int, c: Int, h: Int, w: Int, weights: [Float], bias: [Float], out: Int,
                   k: Int, stride: Int, groups: Int, padTop: Int, padLeft: Int, oh: Int, ow: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n * out * oh * ow)
        let cpg = c / groups, opg = out / groups
        for b in 0..<n { for o in 0..<out { let g = o / opg
            for i in 0..<oh { for j in 0..<ow {
                var acc = bias[o]
                for ci in 0..<cpg { for di in 0..<k { for dj in 0..<k {
                    let yy = i * stride + di - padTop, xx = j * stride + dj - padLeft
                    guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                    acc += x[((b * c + g * cpg + ci) * h + yy) * w + xx] * weights[((o * cpg + ci) * k + di) * k + dj]
                } } }
                y[((b * out + o) * oh + i) * ow + j] = acc
            } } } }
        return y
    }

    func run(_ net: Network, input: [Float], n: Int, c: Int, h: Int, w: Int, output: String = "y") throws -> [Float] {
        let compiled = try CompiledNetwork(net, batch: n, height: h, width: w)
        for i in 0..<input.count { compiled.input[i] = input[i] }
        try compiled.run()
        return Array(compiled.output(output)!)
    }

    func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, tol, file: file, line: line)
    }

    func testSamePaddingStride2IsAsymmetricLikeTensorFlow() {
        // 224 input, k3 s2: total padding 1, all of it after (bottom/right), as TF does.
        XCTAssertTrue(Padding.same.amounts(input: 224, kernel: 3, stride: 2, vertical: true) == (0, 1))
        XCTAssertTrue(Padding.same.amounts(input: 56, kernel: 5, stride: 2, vertical: true) == (1, 2))
        XCTAssertTrue(Padding.same.amounts(input: 14, kernel: 5, stride: 1, vertical: false) == (2, 2))
    }

    func testWindowGivesEachSidesPaddingAndTheOutputSize() {
        // SAME: ceil(input / stride) whatever the kernel; VALID: no padding; PyTorch's symmetric padding.
        XCTAssertEqual(Padding.same.window(input: (224, 225), kernel: (3, 3), stride: 2),
                       Window(top: 0, left: 1, bottom: 1, right: 1, height: 112, width: 113))
        XCTAssertEqual(Padding.valid.window(input: (7, 7), kernel: (3, 3), stride: 2),
                       Window(top: 0, left: 0, bottom: 0, right: 0, height: 3, width: 3))
        XCTAssertEqual(Padding.symmetric(3).window(input: (224, 224), kernel: (7, 7), stride: 2),
                       Window(top: 3, left: 3, bottom: 3, right: 3, height: 112, width: 112))
        XCTAssertEqual(Padding.explicit(top: 1, left: 0, bottom: 2, right: 0).window(input: (5, 5), kernel: (3, 1), stride: 1),
                       Window(top: 1, left: 0, bottom: 2, right: 0, height: 6, width: 5))
    }

    func testConvolutionsMatchNaiveLoops() throws {
        var rng = Rng(s: 7)
        for (k, stride, groups, cin, cout, size) in [(3, 2, 1, 3, 16, 9), (5, 2, 24, 24, 24, 10), (1, 1, 1, 20, 36, 7), (3, 1, 4, 16, 32, 8)] {
            let n = 2
            let x = (0..<(n * cin * size * size)).map { _ in rng.next() }
            let wts = (0..<(cout * cin / groups * k * k)).map { _ in rng.next() }
            let bias = (0..<cout).map { _ in rng.next() }
            var net = Network(name: "t", inputChannels: cin)
            net.add("y", .conv(Convolution(outChannels: cout, kernel: k, stride: stride, groups: groups, padding: .same,
                                           weights: wts, bias: bias, activation: .none)), inputs: ["input"])
            net.outputs["y"] = "y"
            let (pt, _) = Padding.same.amounts(input: size, kernel: k, stride: stride, vertical: true)
            let o = (size + stride - 1) / stride
            let expected = naiveConv(x, n: n, c: cin, h: size, w: size, weights: wts, bias: bias, out: cout, k: k,
                                     stride: stride, groups: groups, padTop: pt, padLeft: pt, oh: o, ow: o)
            assertClose(try run(net, input: x, n: n, c: cin, h: size, w: size), expected)
        }
    }

    func testResidualSumThenRelu6PoolAndDense() throws {
        var rng = Rng(s: 11)
        let (n, c, s) = (2, 16, 6)
        let x = (0..<(n * c * s * s)).map { _ in rng.next() * 4 }
        let w1 = (0..<(c * c)).map { _ in rng.next() }
        let b1 = (0..<c).map { _ in rng.next() }
        let wd = (0..<(5 * c)).map { _ in rng.next() }
        let bd = (0..<5).map { _ in rng.next() }
        var net = Network(name: "t", inputChannels: c)
        let stem = net.add("stem", .conv(Convolution(outChannels: c, kernel: 1, padding: .valid, weights: w1, bias: b1,
                                                     activation: .none)), inputs: ["input"])
        let r = net.add("res", .conv(Convolution(outChannels: c, kernel: 1, padding: .valid, weights: w1, bias: b1,
                                                 residual: stem, activation: .relu6)), inputs: [stem])
        let p = net.add("pool", .globalAveragePool, inputs: [r])
        net.add("y", .dense(Dense(outFeatures: 5, weights: wd, bias: bd, activation: .none)), inputs: [p])
        net.outputs["y"] = "y"
        net.outputs["pool"] = "pool"

        let one = naiveConv(x, n: n, c: c, h: s, w: s, weights: w1, bias: b1, out: c, k: 1, stride: 1, groups: 1,
                            padTop: 0, padLeft: 0, oh: s, ow: s)
        let two = naiveConv(one, n: n, c: c, h: s, w: s, weights: w1, bias: b1, out: c, k: 1, stride: 1, groups: 1,
                            padTop: 0, padLeft: 0, oh: s, ow: s)
        let act = zip(two, one).map { min(max($0 + $1, 0), 6) }
        var pooled = [Float](repeating: 0, count: n * c)
        for b in 0..<n { for ch in 0..<c { pooled[b * c + ch] = act[(b * c + ch) * s * s ..< (b * c + ch + 1) * s * s].reduce(0, +) / Float(s * s) } }
        var dense = [Float](repeating: 0, count: n * 5)
        for b in 0..<n { for o in 0..<5 { dense[b * 5 + o] = bd[o] + (0..<c).reduce(Float(0)) { $0 + wd[o * c + $1] * pooled[b * c + $1] } } }

        let compiled = try CompiledNetwork(net, batch: n, height: s, width: s)
        for i in 0..<x.count { compiled.input[i] = x[i] }
        try compiled.run()
        assertClose(Array(compiled.output("pool")!), pooled)
        assertClose(Array(compiled.output("y")!), dense)
    }

    func testBatchNormFoldingEqualsNormalizingTheOutput() {
        let w: [Float] = [1, 2, 3, 4], gamma: [Float] = [2, 0.5], beta: [Float] = [0.1, -1], mean: [Float] = [0.3, 2], v: [Float] = [4, 0.25]
        let (fw, fb) = BatchNorm.fold(weights: w, bias: nil, gamma: gamma, beta: beta, mean: mean, variance: v, epsilon: 0)
        // Channel 0 sees input (1, 1): conv = 3, bn = (3 - 0.3) / 2 * 2 + 0.1.
        XCTAssertEqual(fw[0] + fw[1] + fb[0], (3 - 0.3) / 2 * 2 + 0.1, accuracy: 1e-5)
        XCTAssertEqual(fw[2] + fw[3] + fb[1], (7 - 2) / 0.5 * 0.5 - 1, accuracy: 1e-5)
    }

    func testMissingInputIsAClearError() {
        var net = Network(name: "broken")
        net.add("y", .globalAveragePool, inputs: ["nowhere"])
        net.outputs["y"] = "y"
        XCTAssertThrowsError(try CompiledNetwork(net, batch: 1, height: 8, width: 8)) { e in
            XCTAssertTrue("\(e)".contains("nowhere"), "\(e)")
        }
    }
}
