import CHeadKernels
import FineTuneCore
import Foundation
import XCTest

/// Agreement with PyTorch (float64) on the goldens of tools/goldens/finetune.py, finite differences
/// for TF SAME stride 2, and the errors a store with a bad network gets.
final class FineTuneTests: XCTestCase {
    struct Goldens: Decodable {
        struct Adam: Decodable {
            let learningRate: Float, blockLearningRate: Float
            let losses: [Double]
            let tensors: [String: [Double]]
        }
        struct Config: Decodable {
            let name: String
            let network: FineTuneNetwork
            let batch: Int, classes: Int
            let hidden: Int?
            let batchNorm: BatchNormMode
            let loss: Double
            let gradients: [String: [Double]]?
            let gradientNorms: [String: Double]?
            let gradientSamples: [String: [[Double]]]?
            let adam: Adam?
            let runningStats: [String: [Double]]?
        }
        let configs: [Config]
    }

    static let goldens: Goldens = {
        let url = Bundle.module.url(forResource: "finetune_goldens", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
    }()

    /// Relative L2 error; a tensor whose true gradient is zero (a BN beta followed by conv + BN in
    /// train mode) gets its float32 noise compared to 1e-5 instead.
    func relativeL2(_ a: [Float], _ b: [Double]) -> Double {
        if b.allSatisfy({ abs($0) < 1e-12 }) { return (a.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot() / 1e-1 }
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func trainer(_ c: Goldens.Config, learningRate: Float = 1e-3, blockLearningRate: Float = 1e-4,
                 gemm: GemmLibrary = .oneDNN) throws -> FineTuner {
        let head = SoftmaxHead(inFeatures: c.network.outputChannels, hidden: c.hidden, classes: c.classes)
        var options = FineTuneOptions()
        options.batchNorm = c.batchNorm
        options.learningRate = learningRate
        options.blockLearningRate = blockLearningRate
        options.gemm = gemm
        return try FineTuner(network: c.network, head: head,
                             tensors: Synthetic.tensors(c.network.requiredTensors() + head.requiredTensors()),
                             options: options)
    }

    func batch(_ c: Goldens.Config) -> (inputs: [Float], labels: [Int32]) {
        (Synthetic.inputs(count: c.batch * c.network.input.count), (0..<c.batch).map { Int32($0 % c.classes) })
    }

    func testGradientsMatchPyTorch() throws {
        XCTAssertEqual(Self.goldens.configs.count, 21)
        for c in Self.goldens.configs { for gemm in GemmLibrary.allCases {
            let t = try trainer(c, gemm: gemm)
            let (inputs, labels) = batch(c)
            let loss = try t.computeGradients(inputs: inputs, labels: labels, batch: c.batch)
            XCTAssertEqual(Double(loss), c.loss, accuracy: 1e-5 * c.loss, c.name)
            let grads = t.gradients()
            let trainable = (c.network.requiredTensors() + SoftmaxHead(inFeatures: c.network.outputChannels,
                             hidden: c.hidden, classes: c.classes).requiredTensors()).filter(\.trainable)
            var checked = 0
            for spec in trainable {
                let g = try XCTUnwrap(grads[spec.name], spec.name)
                if let full = c.gradients {
                    let want = try XCTUnwrap(full[spec.name], "\(c.name) \(spec.name)")
                    XCTAssertEqual(g.count, want.count)
                    XCTAssertLessThan(relativeL2(g, want), 1e-4, "\(c.name) \(spec.name)")
                } else {
                    let norm = (g.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
                    let want = try XCTUnwrap(c.gradientNorms?[spec.name], spec.name)
                    XCTAssertEqual(norm, want, accuracy: max(1e-4 * want, 1e-5), "\(c.name) \(spec.name) norm")
                    let samples = try XCTUnwrap(c.gradientSamples?[spec.name], spec.name)
                    XCTAssertLessThan(relativeL2(samples.map { g[Int($0[0])] }, samples.map { $0[1] }), 1e-4,
                                      "\(c.name) \(spec.name) samples")
                }
                checked += 1
            }
            XCTAssertEqual(checked, (c.gradients?.count ?? c.gradientNorms!.count), c.name)
            // Train mode: the running statistics after this one forward (momentum 0.1, unbiased variance).
            let tensors = t.tensors()
            for (name, want) in c.runningStats ?? [:] {
                XCTAssertLessThan(relativeL2(tensors[name]!, want), 1e-5, "\(c.name) \(name)")
            }
            XCTAssertEqual(c.runningStats != nil, c.batchNorm == .train && c.gradients != nil, c.name)
        } }
    }

    func testAdamStepsMatchPyTorch() throws {
        var configs = 0
        for c in Self.goldens.configs {
            guard let adam = c.adam else { continue }
            configs += 1
            let t = try trainer(c, learningRate: adam.learningRate, blockLearningRate: adam.blockLearningRate)
            let (inputs, labels) = batch(c)
            for want in adam.losses {
                let loss = try t.trainStep(inputs: inputs, labels: labels, batch: c.batch)
                XCTAssertEqual(Double(loss), want, accuracy: 1e-5 * want, c.name)
            }
            let tensors = t.tensors()
            XCTAssertEqual(Set(tensors.keys), Set(adam.tensors.keys))
            for (name, want) in adam.tensors {
                XCTAssertLessThan(relativeL2(tensors[name]!, want), 1e-5, "\(c.name) \(name)")
            }
        }
        XCTAssertEqual(configs, 1)
    }

    func testLite0ArchitectureIsTheGoldensOne() throws {
        for blocks in [1, 2] {
            let want = try XCTUnwrap(Self.goldens.configs.first { $0.name == "lite0-\(blocks)-frozen" })
            XCTAssertEqual(try FineTuneNetwork.efficientNetLite0(lastBlocks: blocks), want.network)
        }
        let five = try FineTuneNetwork.efficientNetLite0(lastBlocks: 5)
        XCTAssertEqual(five.input, FeatureShape(channels: 112, height: 14, width: 14))
        XCTAssertEqual(five.blocks.first?.layers[3].stride, 2)
        XCTAssertEqual(five.outputChannels, 1280)
        XCTAssertThrowsError(try FineTuneNetwork.efficientNetLite0(lastBlocks: 17))
        // Plain data: JSON round trip.
        let json = try JSONEncoder().encode(five)
        XCTAssertEqual(try JSONDecoder().decode(FineTuneNetwork.self, from: json), five)
    }

    /// TF SAME with stride 2 on an even size pads 0 before and 1 after; central differences of the
    /// float32 loss against the analytic gradient of the depthwise weights and the head.
    func testFiniteDifferencesTFSameStride2() throws {
        let net = FineTuneNetwork(input: FeatureShape(channels: 3, height: 6, width: 6), blocks: [
            Block(name: "b", layers: [.depthwise("dw", channels: 3, kernel: 3, stride: 2, padding: .tfSame),
                                      .batchNorm("bn", channels: 3, epsilon: 1e-3), .activation(.swish),
                                      .squeezeExcite("se", channels: 3, reduced: 2, activation: .swish),
                                      .depthwise("dw2", channels: 3, kernel: 2, stride: 2, padding: .tfSame),
                                      .pointwise("pw", 3, 4, bias: true), .activation(.sigmoid), .globalAveragePool]),
        ])
        let head = SoftmaxHead(inFeatures: 4, classes: 3)
        var tensors = Synthetic.tensors(net.requiredTensors() + head.requiredTensors())
        for k in tensors.keys where k.hasSuffix(".weight") && !k.hasPrefix("bn") { tensors[k] = tensors[k]!.map { $0 * 4 } }
        let inputs = Synthetic.inputs(count: 2 * 3 * 36), labels: [Int32] = [0, 2]
        try assertCentralDifferences(net, head, tensors, inputs: inputs, labels: labels,
                                     ["dw.weight", "dw2.weight", "se.reduce.weight", "se.expand.bias", "pw.weight", "bn.weight", "head.out.weight"])
    }

    /// The analytic gradients of `names` against central differences (step 1e-2) of the float32 loss
    /// on a batch of 2, within 2e-2 relative L2.
    func assertCentralDifferences(_ net: FineTuneNetwork, _ head: SoftmaxHead, _ tensors: [String: [Float]], inputs: [Float],
                                  labels: [Int32], _ names: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let t = try FineTuner(network: net, head: head, tensors: tensors)
        try t.computeGradients(inputs: inputs, labels: labels, batch: 2)
        let grads = t.gradients()
        for name in names {
            var numeric: [Float] = []
            for i in 0..<tensors[name]!.count {
                func loss(_ delta: Float) throws -> Float {
                    var p = tensors
                    p[name]![i] += delta
                    return try FineTuner(network: net, head: head, tensors: p).computeGradients(inputs: inputs, labels: labels, batch: 2)
                }
                let h: Float = 1e-2
                numeric.append((try loss(h) - loss(-h)) / (2 * h))
            }
            XCTAssertLessThan(relativeL2(grads[name]!, numeric.map(Double.init)), 2e-2, name, file: file, line: line)
        }
    }

    /// Full k x k convolutions (TF SAME 3x3 stride 2 on an even size, TF SAME 2x2 stride 1, symmetric
    /// stride 1 and 2, with and without bias; smooth activations, so that the differences do not
    /// cross a ReLU's kink): central differences of the float32 loss against the analytic gradients,
    /// the first convolution's input gradient included (it follows a trainable layer). The max pool
    /// and ReLU are checked against PyTorch (`convtiny` in the goldens).
    func testFiniteDifferencesFullConvolution() throws {
        let net = FineTuneNetwork(input: FeatureShape(channels: 3, height: 8, width: 8), blocks: [
            Block(name: "a", layers: [.pointwise("pw0", 3, 3, bias: true),
                                      .conv("c1", 3, 4, kernel: 3, stride: 2, padding: .tfSame, bias: true),
                                      .batchNorm("bn", channels: 4, epsilon: 1e-3), .activation(.swish)]),
            Block(name: "b", layers: [.conv("c2", 4, 4, kernel: 3, stride: 1, padding: .symmetric), .residualAdd]),
            Block(name: "c", layers: [.conv("c3", 4, 5, kernel: 3, stride: 2, padding: .symmetric, bias: true), .activation(.swish),
                                      .conv("c4", 5, 5, kernel: 2, stride: 1, padding: .tfSame), .globalAveragePool]),
        ])
        let head = SoftmaxHead(inFeatures: 5, classes: 3)
        let tensors = Synthetic.tensors(net.requiredTensors() + head.requiredTensors())
        let inputs = Synthetic.inputs(count: 2 * 3 * 64), labels: [Int32] = [0, 2]
        try assertCentralDifferences(net, head, tensors, inputs: inputs, labels: labels,
                                     ["pw0.weight", "c1.weight", "c1.bias", "c2.weight", "c3.weight", "c3.bias", "c4.weight", "head.out.weight"])
    }

    func testErrorsNameTheProblem() throws {
        let net = FineTuneNetwork(input: FeatureShape(channels: 4, height: 3, width: 3), blocks: [
            Block(name: "layer4.1", layers: [.conv("layer4.1.conv1", 4, 4, kernel: 3, stride: 1, padding: .symmetric),
                                             .maxPool(kernel: 4, stride: 4), .globalAveragePool]),
        ])
        let head = SoftmaxHead(inFeatures: 4, classes: 2)
        let tensors = Synthetic.tensors(net.requiredTensors() + head.requiredTensors())
        XCTAssertThrowsError(try FineTuner(network: net, head: head, tensors: tensors)) { error in
            XCTAssertTrue("\(error)".contains("maxpool: max pool needs kernel <= 3x3"), "\(error)")
        }
        let lite = try FineTuneNetwork.efficientNetLite0(lastBlocks: 1)
        let liteHead = SoftmaxHead(inFeatures: 1280, classes: 2)
        var partial = Synthetic.tensors(lite.requiredTensors() + liteHead.requiredTensors())
        partial["_bn1.running_var"] = nil
        XCTAssertThrowsError(try FineTuner(network: lite, head: liteHead, tensors: partial)) { error in
            XCTAssertEqual(error as? FineTuneError, .missingTensor(name: "_bn1.running_var", shape: [1280]))
        }
        let t = try FineTuner(network: lite, head: liteHead,
                              tensors: Synthetic.tensors(lite.requiredTensors() + liteHead.requiredTensors()))
        XCTAssertThrowsError(try t.computeGradients(inputs: [Float](repeating: 0, count: 10), labels: [0], batch: 1))
        XCTAssertThrowsError(try t.computeGradients(inputs: Synthetic.inputs(count: 192 * 49), labels: [2], batch: 1))
    }
}

/// The benchmark entry point runs and counts FLOPs as documented; FINETUNE_BENCH_ROWS=N (and
/// FINETUNE_BENCH_EPOCHS) prints the full measurement (1 and 2 blocks, BN frozen); nothing is timed in CI.
final class FineTuneBenchmarkTests: XCTestCase {
    func testBenchmarkEntryPoint() throws {
        let network = try FineTuneNetwork.efficientNetLite0(lastBlocks: 1)
        let head = SoftmaxHead(inFeatures: 1280, classes: 10)
        let t = try FineTuner(network: network, head: head,
                              tensors: Synthetic.tensors(network.requiredTensors() + head.requiredTensors()))
        let f = t.convolutionFLOPs(batch: 1)
        // 192->1152, depthwise 3x3 on 1152, 1152->320, 320->1280, all on 7x7.
        let macs: Int = 192 * 1152 + 1152 * 9 + 1152 * 320 + 320 * 1280
        let fwd = Double(2 * 49 * macs)
        XCTAssertEqual(f.forward, fwd)
        XCTAssertEqual(f.backward, 2 * fwd - Double(2 * 49 * 192 * 1152))
        if let rows = ProcessInfo.processInfo.environment["FINETUNE_BENCH_ROWS"].flatMap(Int.init) {
            let epochs = ProcessInfo.processInfo.environment["FINETUNE_BENCH_EPOCHS"].flatMap(Int.init) ?? 2
            for blocks in [1, 2] {
                for gemm in GemmLibrary.allCases {
                    print(try FineTuneBenchmark.run(rows: rows, lastBlocks: blocks, gemm: gemm, epochs: epochs))
                }
            }
        } else {
            let r = try FineTuneBenchmark.run(rows: 70, batch: 32, lastBlocks: 2, epochs: 1)
            XCTAssertTrue(r.finalLoss.isFinite)
            XCTAssertGreaterThan(r.secondsPerEpoch, 0)
        }
    }
}

/// The fine-tuner's C loops (finetune_body.h: batch norm + ReLU/ReLU6 fused, depthwise, Adam) give the
/// same bits in every instruction-set variant the CPU supports, BN frozen and training.
final class FineTuneKernelVariantTests: XCTestCase {
    /// ReLU and ReLU6 keep NaN (as PyTorch's), in the 16-lane loop and in its tail, so a run that
    /// diverges shows it in its loss.
    func testActivationsKeepNaN() {
        let x: [Float] = (0..<20).map { [Float.nan, -1, 3, 7, .infinity][$0 % 5] }
        for (act, want) in [(CHK_FT_RELU, [Float.nan, 0, 3, 7, .infinity]), (CHK_FT_RELU6, [Float.nan, 0, 3, 6, 6])] {
            var y = [Float](repeating: 0, count: x.count)
            chk_ft_act(x.count, Int32(act), x, &y)
            for i in x.indices {
                XCTAssertTrue(y[i] == want[i % 5] || (y[i].isNaN && want[i % 5].isNaN), "act \(act) at \(i): \(y[i])")
            }
        }
    }

    func testAllVariantsTrainIdentically() throws {
        let saved = chk_isa_active()
        defer { _ = chk_isa_set(saved) }
        // 21, 37 and 19 channels: the 16-lane loops and their scalar tails; batch norm with ReLU6, with ReLU,
        // with nothing, and with ReLU6 + pool; a residual; a ReLU6 after a biased convolution.
        let net = FineTuneNetwork(input: FeatureShape(channels: 21, height: 5, width: 5), blocks: [
            Block(name: "b", layers: [.pointwise("pw", 21, 37), .batchNorm("bn1", channels: 37, epsilon: 1e-3), .activation(.relu6),
                                      .depthwise("dw", channels: 37, kernel: 3, stride: 1, padding: .tfSame),
                                      .batchNorm("bn2", channels: 37, epsilon: 1e-3), .activation(.relu),
                                      .pointwise("pj", 37, 21), .batchNorm("bn3", channels: 21, epsilon: 1e-3), .residualAdd]),
            Block(name: "h", layers: [.pointwise("hc", 21, 19, bias: true), .activation(.relu6),
                                      .pointwise("hd", 19, 19), .batchNorm("bn4", channels: 19, epsilon: 1e-3), .activation(.relu6),
                                      .globalAveragePool]),
        ])
        let head = SoftmaxHead(inFeatures: 19, classes: 3)
        let inputs = Synthetic.inputs(count: 4 * 21 * 25), labels: [Int32] = [0, 1, 2, 1]
        for mode in BatchNormMode.allCases {
            var results: [(Int32, [String: [Float]])] = []
            for isa in (0...chk_isa_best()).reversed() {
                XCTAssertEqual(chk_isa_set(isa), isa)
                var options = FineTuneOptions()
                options.batchNorm = mode
                let t = try FineTuner(network: net, head: head, tensors: Synthetic.tensors(net.requiredTensors() + head.requiredTensors()),
                                      options: options)
                for _ in 0..<3 { try t.trainStep(inputs: inputs, labels: labels, batch: 4) }
                try t.computeGradients(inputs: inputs, labels: labels, batch: 4)
                results.append((isa, t.tensors().merging(t.gradients().map { ("d " + $0, $1) }) { a, _ in a }))
            }
            for (isa, r) in results.dropFirst() {
                XCTAssertEqual(r, results[0].1, "variant \(isa) differs from \(results[0].0), BN \(mode)")
            }
            XCTAssertGreaterThan(results.count, 1, "only one variant on this CPU")
        }
    }
}
