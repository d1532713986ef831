import FineTuneCore
import Foundation
@testable import HeadTrainerCore
import XCTest

/// `train-head --unfreeze` (issue #12): the joint step (FineTuner blocks -> HeadNetwork with
/// d loss / d features -> FineTuner backward) and the training loop around it.
final class FineTuneTrainingTests: XCTestCase {
    func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for i in a.indices { d += Double(a[i] - b[i]) * Double(a[i] - b[i]); n += Double(b[i]) * Double(b[i]) }
        return (d / max(n, 1e-30)).squareRoot()
    }

    func transpose(_ w: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: w.count)
        for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = w[r * cols + c] } }
        return t
    }

    /// The blocks' gradients of the joint step equal those of FineTuner with its own softmax head
    /// (the path checked against PyTorch in FineTuneTests), for the same head weights: Lite0's last
    /// block + head conv, hidden 16, no batch norm or dropout in the head.
    func testJointStepGivesTheBlockGradientsOfTheVerifiedPath() throws {
        let network = try FineTuneNetwork.efficientNetLite0(lastBlocks: 1)
        let softmax = SoftmaxHead(inFeatures: 1280, hidden: 16, classes: 3)
        let blockSpecs = network.requiredTensors()
        let headTensors = Synthetic.tensors(softmax.requiredTensors(), firstIndex: blockSpecs.count)
        let blockTensors = Synthetic.tensors(blockSpecs)
        let batch = 4
        let inputs = Synthetic.inputs(count: batch * network.input.count)
        let labels: [Int32] = [0, 2, 1, 2]
        for mode in BatchNormMode.allCases {
            var options = FineTuneOptions()
            options.batchNorm = mode
            let reference = try FineTuner(network: network, head: softmax, tensors: blockTensors.merging(headTensors) { a, _ in a },
                                          options: options)
            try reference.computeGradients(inputs: inputs, labels: labels, batch: batch)
            let expected = reference.gradients()

            let tuner = try FineTuner(network: network, head: nil, tensors: blockTensors, options: options)
            let config = HeadConfig { $0.hidden = 16; $0.batchnorm = false; $0.dropout = 0; $0.l2 = 0; $0.batchSize = batch }
            let weights = HeadWeights(inputBatchNorm: nil,
                                      hidden: DenseWeights(inputs: 1280, outputs: 16, kernel: transpose(headTensors["head.hidden.weight"]!, rows: 16, cols: 1280),
                                                           bias: headTensors["head.hidden.bias"]!),
                                      hiddenBatchNorm: nil,
                                      output: DenseWeights(inputs: 16, outputs: 3, kernel: transpose(headTensors["head.out.weight"]!, rows: 3, cols: 16),
                                                           bias: headTensors["head.out.bias"]!))
            let net = HeadNetwork(config: config, weights: weights, maxBatch: batch, threads: 1)
            var dF = [Float](repeating: 0, count: batch * 1280)
            inputs.withUnsafeBufferPointer { x in
                let features = tuner.trainingFeatures(x.baseAddress!, batch: batch)
                labels.withUnsafeBufferPointer { y in
                    Array(0..<batch).withUnsafeBufferPointer { rows in
                        dF.withUnsafeMutableBufferPointer { g in
                            _ = net.trainStep(data: features, labels: y.baseAddress!, rows: rows, capture: GradientCapture(net),
                                              inputGradient: g.baseAddress!)
                        }
                    }
                }
            }
            tuner.backward(featureGradient: dF, batch: batch)
            let got = tuner.gradients()
            XCTAssertEqual(Set(got.keys), Set(blockSpecs.filter(\.trainable).map(\.name)))
            for (name, g) in got {
                // A BN beta followed by conv + train-mode BN has a true gradient of zero: both sides are
                // float32 noise there, compared in absolute terms.
                let scale = expected.values.map { $0.reduce(0.0) { $0 + Double($1) * Double($1) } }.max()!.squareRoot()
                let zeroByConstruction = mode == .train && name.hasSuffix("_bn2.bias") && name.contains("_blocks.15")
                if zeroByConstruction {
                    XCTAssertLessThan(relativeL2(g, expected[name]!) * expected[name]!.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot(), 1e-6 * scale, name)
                } else {
                    XCTAssertLessThan(relativeL2(g, expected[name]!), 1e-4, "\(name), BN \(mode)")
                }
            }
        }
    }

    /// d loss / d input through the head's training-mode input batch norm, hidden layer, ReLU, second
    /// batch norm and softmax, against central differences of the same head written here in Double.
    func testInputGradientThroughTheHeadMatchesFiniteDifferences() throws {
        let d = 6, h = 5, c = 3, batch = 7
        let config = HeadConfig { $0.hidden = h; $0.batchnorm = true; $0.dropout = 0; $0.l2 = 0; $0.batchSize = batch }
        var rng = HeadRNG(seed: 7, stream: 9)
        var weights = HeadWeights.initial(config: config, inputs: d, classes: c, rng: &rng)
        weights.inputBatchNorm!.gamma = (0..<d).map { 0.8 + 0.1 * Float($0) }
        weights.inputBatchNorm!.beta = (0..<d).map { 0.05 * Float($0) - 0.1 }
        weights.hiddenBatchNorm!.gamma = (0..<h).map { 1.2 - 0.1 * Float($0) }
        let x = (0..<(batch * d)).map { Float(sin(Double($0) * 1.7) * 2 + Double($0 % d) * 0.3) }
        let labels: [Int32] = (0..<batch).map { Int32($0 % c) }

        let net = HeadNetwork(config: config, weights: weights, maxBatch: batch, threads: 1)
        var dx = [Float](repeating: 0, count: batch * d)
        x.withUnsafeBufferPointer { xs in
            labels.withUnsafeBufferPointer { y in
                Array(0..<batch).withUnsafeBufferPointer { rows in
                    dx.withUnsafeMutableBufferPointer { g in
                        _ = net.trainStep(data: xs.baseAddress!, labels: y.baseAddress!, rows: rows, capture: GradientCapture(net),
                                          inputGradient: g.baseAddress!)
                    }
                }
            }
        }

        func batchNorm(_ v: [[Double]], _ bn: BatchNormWeights) -> [[Double]] {
            let n = Double(v.count), cols = v[0].count
            var out = v
            for j in 0..<cols {
                let mean = v.reduce(0) { $0 + $1[j] } / n
                let variance = v.reduce(0) { $0 + ($1[j] - mean) * ($1[j] - mean) } / n
                for i in v.indices { out[i][j] = Double(bn.gamma[j]) * (v[i][j] - mean) / (variance + Double(bn.epsilon)).squareRoot() + Double(bn.beta[j]) }
            }
            return out
        }
        func dense(_ v: [[Double]], _ w: DenseWeights) -> [[Double]] {
            v.map { row in (0..<w.outputs).map { o in (0..<w.inputs).reduce(Double(w.bias[o])) { $0 + row[$1] * Double(w.kernel[$1 * w.outputs + o]) } } }
        }
        func loss(_ flat: [Double]) -> Double {
            let rows = (0..<batch).map { Array(flat[($0 * d)..<(($0 + 1) * d)]) }
            let hidden = batchNorm(dense(batchNorm(rows, weights.inputBatchNorm!), weights.hidden!).map { $0.map { max($0, 0) } },
                                   weights.hiddenBatchNorm!)
            let logits = dense(hidden, weights.output)
            var total = 0.0
            for (i, l) in logits.enumerated() {
                let m = l.max()!, z = l.reduce(0) { $0 + exp($1 - m) }
                total -= l[Int(labels[i])] - m - log(z)
            }
            return total / Double(batch)
        }
        let x64 = x.map(Double.init)
        var numeric = [Float](repeating: 0, count: x.count)
        let step = 1e-5
        for i in x.indices {
            var plus = x64, minus = x64
            plus[i] += step; minus[i] -= step
            numeric[i] = Float((loss(plus) - loss(minus)) / (2 * step))
        }
        XCTAssertLessThan(relativeL2(dx, numeric), 1e-4)
    }

    /// A tiny MBConv-like block + head conv, trained with a head on two separable classes.
    func tinyBlocks(blockLR: Double = 1e-3) -> FineTuneBlocks {
        let c = 8, mid = 16
        let block = Block(name: "b", layers: [
            .pointwise("b.expand", c, mid), .batchNorm("b.bn0", channels: mid, epsilon: 1e-3), .activation(.relu6),
            .depthwise("b.dw", channels: mid, kernel: 3, stride: 1, padding: .tfSame), .batchNorm("b.bn1", channels: mid, epsilon: 1e-3),
            .activation(.relu6), .pointwise("b.project", mid, c), .batchNorm("b.bn2", channels: c, epsilon: 1e-3), .residualAdd])
        let head = Block(name: "head", layers: [.pointwise("conv_head", c, 32), .batchNorm("bn_head", channels: 32, epsilon: 1e-3),
                                                 .activation(.relu6), .globalAveragePool])
        let network = FineTuneNetwork(input: FeatureShape(channels: c, height: 3, width: 3), blocks: [block, block.renamed("b2"), head])
        let (frozen, trained) = try! network.splitForTraining(last: 1)
        return FineTuneBlocks(frozen: frozen, trained: trained, tensors: Synthetic.tensors(network.requiredTensors()),
                              blockLearningRate: blockLR, batchNorm: .frozen)
    }

    func tinyData(images: Int, seed: UInt64) -> LabeledFeatures {
        var rng = HeadRNG(seed: seed, stream: 1)
        let dim = 8 * 9
        var values: [Float] = [], labels: [Int32] = []
        for i in 0..<images {
            let y = Int32(i % 2)
            labels.append(y)
            values += (0..<dim).map { j in (rng.nextFloat() - 0.5) + (j / 9 == 0 ? (y == 0 ? 1 : -1) : 0) }
        }
        return LabeledFeatures(dim: dim, values: values, labels: labels, classNames: ["a", "b"])
    }

    /// Block inputs live in an unlinked temporary file: rows read back as written, a subset maps to
    /// the same file rows, a frozen run writes a new file, and nothing is left in TMPDIR.
    func testBlockInputsReadBackFromTheirFileAndLeaveNothingBehind() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rowfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = tinyData(images: 10, seed: 3)
        let file = try RowFile(dim: data.dim, rows: data.n, directory: dir.path)
        try data.values.withUnsafeBufferPointer { v in
            for r in (0..<data.n).reversed() { try file.write(row: r, v.baseAddress! + r * data.dim) }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])   // unlinked at once
        let inputs = BlockInputs(metadata: data, file: file, fileRows: Array(0..<data.n)).subset([7, 2, 2])
        XCTAssertEqual(inputs.rows.labels, [data.labels[7], data.labels[2], data.labels[2]])
        var row = [Float](repeating: 0, count: data.dim)
        for (i, r) in [7, 2, 2].enumerated() {
            try row.withUnsafeMutableBufferPointer { try inputs.read(i, into: $0.baseAddress!) }
            XCTAssertEqual(row, Array(data.values[r * data.dim ..< (r + 1) * data.dim]))
        }
        XCTAssertThrowsError(try RowFile(dim: 4, rows: 1, directory: dir.appendingPathComponent("missing").path)) {
            XCTAssertTrue("\($0)".contains("TMPDIR"), "\($0)")
        }

        // The frozen block's outputs in their own file equal the in-memory run.
        let blocks = tinyBlocks()
        let runner = try FineTuner(network: blocks.frozen!, head: nil, tensors: blocks.tensors, options: FineTuneOptions())
        let frozen = try runFrozenBlocks(runner, on: try BlockInputs(data), split: "train")
        let inMemory = try runBlocks(runner, on: data, split: "train")
        XCTAssertEqual(frozen.dim, inMemory.dim)
        for r in 0..<data.n {
            var out = [Float](repeating: 0, count: frozen.dim)
            try out.withUnsafeMutableBufferPointer { try frozen.read(r, into: $0.baseAddress!) }
            XCTAssertEqual(out, Array(inMemory.values[r * inMemory.dim ..< (r + 1) * inMemory.dim]))
        }
    }

    /// The loop: a frozen block runs first, the kept blocks + head score the test split exactly as
    /// `predictFineTuned` does on the same inputs, and a learning rate that blows the blocks up stops
    /// training with the epoch and the layer named.
    func testFineTuneHeadScoresWhatPredictGivesAndStopsOnNaN() throws {
        let blocks = tinyBlocks()
        let train = tinyData(images: 40, seed: 1), test = tinyData(images: 12, seed: 2)
        let config = HeadConfig { $0.hidden = 8; $0.epochs = 3; $0.patience = 0; $0.valSplit = 0.25; $0.batchSize = 8; $0.lr = 1e-2 }
        let result = try fineTuneHead(config: config, blocks: blocks, train: train, test: test, options: TrainingOptions(threads: 1))
        XCTAssertEqual(result.training.epochsRun, 3)
        XCTAssertEqual(result.training.bestEpoch, 3)   // no early stopping: the last epoch is kept
        XCTAssertNotEqual(result.blockTensors["b2.expand.weight"], blocks.tensors["b2.expand.weight"])   // the blocks trained
        let probabilities = try predictFineTuned(head: result.training.head, frozen: blocks.frozen, frozenTensors: blocks.tensors,
                                                 trained: blocks.trained, trainedTensors: result.blockTensors, inputs: test.values)
        let metrics = try ClassificationMetrics(probabilities: probabilities, labels: test.labels, classNames: ["a", "b"])
        let scored = try XCTUnwrap(result.training.metrics.test)
        XCTAssertEqual(metrics.confusion, scored.confusion)
        XCTAssertEqual(metrics.logLoss, scored.logLoss, accuracy: 1e-6)
        XCTAssertGreaterThan(result.frozenHead.metrics.train.accuracy, 0.5)

        var exploding = tinyBlocks(blockLR: 1e30)
        exploding.batchNorm = .train
        XCTAssertThrowsError(try fineTuneHead(config: config, blocks: exploding, train: train, test: test, options: TrainingOptions(threads: 1))) {
            guard case let HeadTrainerError.nonFiniteLoss(epoch, layer) = $0 else { return XCTFail("\($0)") }
            XCTAssertGreaterThanOrEqual(epoch, 1)
            XCTAssertFalse(layer.isEmpty)
            XCTAssertTrue("\($0)".contains("Lower --block-lr"), "\($0)")
        }
    }
}

private extension Block {
    func renamed(_ prefix: String) -> Block {
        Block(name: prefix, layers: layers.map { l in
            var l = l
            if l.name.hasPrefix(name + ".") { l.name = prefix + l.name.dropFirst(name.count) }
            return l
        })
    }
}
