import Foundation
import HeadTrainerCore
import XCTest

/// Synthetic data: `classes` Gaussian blobs in `dim` dimensions, `images` per class, each with
/// `copies` augmented copies (copy 0 = the original, the others jittered).
func syntheticFeatures(classes: Int = 3, dim: Int = 16, imagesPerClass: Int = 60, copies: Int = 3,
                       spread: Float = 0.35, seed: UInt64 = 1, idOffset: Int64 = 0) -> LabeledFeatures {
    var rng = HeadRNG(seed: seed, stream: 77)
    func gauss() -> Float {
        let u = max(rng.nextFloat(), 1e-7), v = rng.nextFloat()
        return (-2 * logf(u)).squareRoot() * cosf(2 * .pi * v)
    }
    var centers = [[Float]]()
    for c in 0..<classes { centers.append((0..<dim).map { j in j % classes == c ? 2.0 : (j % 2 == 0 ? 0.3 : -0.2) }) }
    var values: [Float] = [], labels: [Int32] = [], ids: [Int64] = [], aug: [Int32] = []
    var id = idOffset
    for c in 0..<classes {
        for _ in 0..<imagesPerClass {
            let base = centers[c].map { $0 + spread * gauss() }
            for k in 0..<copies {
                values += k == 0 ? base : base.map { $0 + 0.1 * gauss() }
                labels.append(Int32(c)); ids.append(id); aug.append(Int32(k))
            }
            id += 1
        }
    }
    return LabeledFeatures(dim: dim, values: values, labels: labels, imageIDs: ids, augIndex: aug,
                           classNames: (0..<classes).map { "class\($0)" })
}

final class TrainingTests: XCTestCase {
    func smallConfig() -> HeadConfig {
        var c = HeadConfig { $0.hidden = 32; $0.dropout = 0.2; $0.l2 = 1e-4; $0.batchnorm = true; $0.lr = 3e-3; $0.batchSize = 32; $0.epochs = 25; $0.patience = 5 }
        c.seed = 11
        return c
    }

    func testSeparableProblemReachesHighAccuracy() throws {
        let train = syntheticFeatures(seed: 1)
        let test = syntheticFeatures(imagesPerClass: 30, copies: 1, seed: 2, idOffset: 10_000)
        let r = try trainHead(config: smallConfig(), train: train, test: test)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(r.metrics.test).accuracy, 0.95)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(r.metrics.validation).accuracy, 0.9)
        XCTAssertGreaterThan(r.epochsRun, 0)
        XCTAssert((1...r.epochsRun).contains(r.bestEpoch))
        XCTAssertEqual(r.curves.epochs.count, r.epochsRun)
        XCTAssertEqual(r.curves.bestEpoch, r.bestEpoch)
        // Best epoch = the lowest validation loss, whose weights were restored.
        let losses = r.curves.epochs.map { $0.validationLoss! }
        XCTAssertEqual(losses.firstIndex(of: losses.min()!)! + 1, r.bestEpoch)
        // Predictions of the restored head reproduce the reported test metrics.
        let copy0 = test
        let again = try r.head.evaluate(copy0)
        XCTAssertEqual(again.accuracy, r.metrics.test!.accuracy, accuracy: 1e-12)
    }

    func testLinearHeadBothSolvers() throws {
        let train = syntheticFeatures(seed: 3)
        let test = syntheticFeatures(imagesPerClass: 30, copies: 1, seed: 4, idOffset: 10_000)
        for solver in [HeadSolver.lbfgs, .adam] {
            var cfg = smallConfig(); cfg.hidden = 0; cfg.solver = solver; cfg.lr = 1e-2
            let r = try trainHead(config: cfg, train: train, test: test)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(r.metrics.test).accuracy, 0.95, "\(solver)")
            XCTAssertNil(r.head.weights.hidden)
            XCTAssertNotNil(r.head.weights.inputBatchNorm)
        }
    }

    func testDeterministicForSeedAndIndependentOfThreads() throws {
        let train = syntheticFeatures(seed: 5)
        var cfg = smallConfig(); cfg.epochs = 4; cfg.hidden = 96   // >= 64 units: the chunked parallel path
        let a = try trainHead(config: cfg, train: train, test: nil, options: TrainingOptions(threads: 1))
        let b = try trainHead(config: cfg, train: train, test: nil, options: TrainingOptions(threads: 1))
        let c = try trainHead(config: cfg, train: train, test: nil, options: TrainingOptions(threads: 2))
        XCTAssertEqual(a.head.weights, b.head.weights)
        XCTAssertEqual(a.head.weights, c.head.weights)
        XCTAssertEqual(a.curves.epochs.map(\.trainLoss), c.curves.epochs.map(\.trainLoss))
        cfg.seed += 1
        let d = try trainHead(config: cfg, train: train, test: nil, options: TrainingOptions(threads: 1))
        XCTAssertNotEqual(a.head.weights, d.head.weights)
    }

    func testNoLeakageBetweenTrainingAndValidation() throws {
        let data = syntheticFeatures(classes: 4, imagesPerClass: 25, copies: 4, seed: 6)
        let s = try TrainValidationSplit.make(data, valSplit: 0.2, augmented: 2, seed: 9)
        let trainImages = Set(s.trainRows.map { data.imageIDs[$0] })
        let valImages = Set(s.validationRows.map { data.imageIDs[$0] })
        XCTAssert(trainImages.isDisjoint(with: valImages))
        XCTAssertEqual(valImages, Set(s.validationImages))
        XCTAssert(s.validationRows.allSatisfy { data.augIndex[$0] == 0 })
        XCTAssert(s.trainRows.allSatisfy { data.augIndex[$0] <= 2 })
        XCTAssertEqual(s.trainRows.count, trainImages.count * 3)   // copies 0, 1, 2 of every training image
        // Stratified: round(0.2 * 25) = 5 images of each class held out.
        for c in 0..<4 { XCTAssertEqual(s.validationRows.filter { data.labels[$0] == c }.count, 5) }
        // Whole-run view: the result's validation ids are never among the fitted rows' images.
        let r = try trainHead(config: { var c = smallConfig(); c.epochs = 2; c.augmented = 1; return c }(), train: data, test: nil)
        let split2 = try TrainValidationSplit.make(data, valSplit: 0.2, augmented: 1, seed: r.head.config.seed)
        XCTAssertEqual(r.validationImageIDs, split2.validationImages)
        XCTAssert(Set(split2.trainRows.map { data.imageIDs[$0] }).isDisjoint(with: Set(r.validationImageIDs)))
        XCTAssertEqual(r.trainRows, split2.trainRows.count)
    }

    func testBadInputErrorsNameTheProblem() throws {
        let good = syntheticFeatures(imagesPerClass: 10, copies: 1)
        var bad = good; bad.values.removeLast()
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: bad, test: nil)) { e in
            guard case HeadTrainerError.dimensionMismatch = e else { return XCTFail("\(e)") }
        }
        var one = good; one.labels = one.labels.map { _ in 0 }
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: one, test: nil)) { e in
            guard case HeadTrainerError.singleClass = e else { return XCTFail("\(e)") }
        }
        var nan = good; nan.values[7 * good.dim + 3] = .nan
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: nan, test: nil)) { e in
            XCTAssertEqual(e as? HeadTrainerError, .nonFiniteFeature(split: "train", row: 7, column: 3, imageID: good.imageIDs[7]))
            XCTAssert("\(e)".contains("row 7"))
        }
        var inf = good; inf.values[2] = .infinity
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: good, test: inf)) { e in
            guard case HeadTrainerError.nonFiniteFeature(split: "test", row: 0, column: 2, _) = e else { return XCTFail("\(e)") }
        }
        let empty = LabeledFeatures(dim: good.dim, values: [], labels: [], classNames: good.classNames)
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: empty, test: nil)) { e in
            guard case HeadTrainerError.emptySplit = e else { return XCTFail("\(e)") }
        }
        var augOnly = good; augOnly.augIndex = augOnly.augIndex.map { _ in 1 }
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: good, test: augOnly)) { e in
            guard case HeadTrainerError.emptySplit(split: "test", _) = e else { return XCTFail("\(e)") }
        }
        let narrow = syntheticFeatures(dim: 8, imagesPerClass: 5, copies: 1)
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: good, test: narrow)) { e in
            guard case HeadTrainerError.incompatible = e else { return XCTFail("\(e)") }
        }
        var cfg = smallConfig(); cfg.dropout = 1
        XCTAssertThrowsError(try trainHead(config: cfg, train: good, test: nil)) { e in
            guard case HeadTrainerError.invalidConfig(field: "dropout", _, _) = e else { return XCTFail("\(e)") }
        }
        var label = good; label.labels[4] = 9
        XCTAssertThrowsError(try trainHead(config: smallConfig(), train: label, test: nil)) { e in
            guard case HeadTrainerError.labelOutOfRange(split: "train", row: 4, label: 9, classCount: 3) = e else { return XCTFail("\(e)") }
        }
    }

    func testBalancedClassWeightsLikeScikitLearn() throws {
        // 3 classes with 40 / 20 / 10 images (one copy each, no validation): weights n / (k * n_c).
        var parts: [LabeledFeatures] = []
        for (c, count) in [40, 20, 10].enumerated() {
            let d = syntheticFeatures(classes: 3, imagesPerClass: count, copies: 1, seed: UInt64(c + 20), idOffset: Int64(c * 1000))
            parts.append(d.subset((0..<d.n).filter { d.labels[$0] == c }))
        }
        let all = LabeledFeatures(dim: 16, values: parts.flatMap(\.values), labels: parts.flatMap(\.labels),
                                  imageIDs: parts.flatMap(\.imageIDs), augIndex: parts.flatMap(\.augIndex), classNames: parts[0].classNames)
        var cfg = smallConfig(); cfg.valSplit = 0; cfg.epochs = 2; cfg.classWeights = .balanced
        let r = try trainHead(config: cfg, train: all, test: nil)
        let n = 70.0
        XCTAssertEqual(r.classWeights[0], n / (3 * 40), accuracy: 1e-12)
        XCTAssertEqual(r.classWeights[1], n / (3 * 20), accuracy: 1e-12)
        XCTAssertEqual(r.classWeights[2], n / (3 * 10), accuracy: 1e-12)
        XCTAssertNil(r.metrics.validation)
        XCTAssertEqual(r.bestEpoch, 2)
    }

    func testSerializationRoundTripAndPredict() throws {
        let train = syntheticFeatures(seed: 8)
        var cfg = smallConfig(); cfg.epochs = 3
        let head = try trainHead(config: cfg, train: train, test: nil).head
        let blob = try head.encoded()
        let back = try TrainedHead(encoded: blob)
        XCTAssertEqual(back, head)
        let json = try JSONDecoder().decode(TrainedHead.self, from: JSONEncoder().encode(head))
        XCTAssertEqual(json, head)
        let x = Array(train.values[0..<(5 * train.dim)])
        let p = try head.predict(features: x)
        XCTAssertEqual(p, try back.predict(features: x))
        XCTAssertEqual(p.count, 5 * 3)
        for i in 0..<5 { XCTAssertEqual(p[(i * 3)..<(i * 3 + 3)].reduce(0, +), 1, accuracy: 1e-5) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("head-\(UUID()).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        try head.write(to: url)
        XCTAssertEqual(try TrainedHead(contentsOf: url), head)
        XCTAssertThrowsError(try TrainedHead(encoded: blob.dropLast(4))) { e in
            guard case HeadTrainerError.corruptHead = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try head.predict(features: [1, 2, 3]))
    }

    func testCurvesSVG() throws {
        let r = try trainHead(config: { var c = smallConfig(); c.epochs = 6; return c }(), train: syntheticFeatures(seed: 9), test: nil)
        let svg = r.curves.svg(title: "synthetic <test>")
        XCTAssert(svg.hasPrefix("<?xml") && svg.contains("<svg") && svg.hasSuffix("</svg>\n"))
        XCTAssert(svg.contains(">epoch<") && svg.contains(">loss<") && svg.contains(">accuracy<"))
        XCTAssert(svg.contains("best epoch \(r.bestEpoch)"))
        XCTAssert(svg.contains("synthetic &lt;test&gt;"))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("curves-\(UUID()).svg")
        defer { try? FileManager.default.removeItem(at: url) }
        try r.curves.writeSVG(to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), r.curves.svg())
        let decoded = try JSONDecoder().decode(TrainingCurves.self, from: JSONEncoder().encode(r.curves))
        XCTAssertEqual(decoded, r.curves)
        let keys = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(r.curves.epochs[0])) as? [String: Any])
        for k in ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"] { XCTAssertNotNil(keys[k], k) }
    }

    func testConfigDecodesPartialJSONWithDefaults() throws {
        let c = try JSONDecoder().decode(HeadConfig.self, from: Data(#"{"hidden": 0, "class_weights": "balanced", "batch_size": 64}"#.utf8))
        XCTAssertEqual(c.hidden, 0); XCTAssertEqual(c.classWeights, .balanced); XCTAssertEqual(c.batchSize, 64)
        XCTAssertEqual(c.lr, 1e-4); XCTAssertEqual(c.patience, 5); XCTAssertEqual(c.seed, 42); XCTAssertTrue(c.batchnorm)
        XCTAssertEqual(try JSONDecoder().decode(HeadConfig.self, from: JSONEncoder().encode(c)), c)
    }

    func testBenchmarkEntryPoint() {
        let s = HeadBenchmark.run(rows: 300, dim: 64, classes: 3, epochs: 1)
        XCTAssertGreaterThan(s, 0)
        XCTAssertLessThan(s, 10)
    }
}
