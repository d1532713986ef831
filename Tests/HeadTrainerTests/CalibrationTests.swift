import Foundation
import HeadTrainerCore
import XCTest

/// ECE, temperature scaling and ranking curves against NumPy/SciPy/scikit-learn
/// (fixture from tools/goldens/calibration_sklearn.py).
final class CalibrationTests: XCTestCase {
    struct Fixture: Decodable {
        struct Bin: Decodable { let count: Int; let confidence, accuracy: Double }
        struct ROC: Decodable { let fpr, tpr: [Double] }
        struct PerClass: Decodable { let average_precision, auc: Double?; let roc: ROC? }
        struct ProbabilityCase: Decodable {
            let name: String
            let class_names: [String]
            let labels: [Int32]
            let probability_numerators: [[Int]]
            let grid: Int
            let ece: Double
            let bins: [Bin]
            let per_class: [PerClass]
            let temperature: Double
            let ece_calibrated: Double
            var probabilities: [Float] { probability_numerators.flatMap { $0.map { Float($0) / Float(grid) } } }
        }
        struct LogitCase: Decodable { let name: String; let labels: [Int32]; let classes: Int; let logits: [[Double]]; let temperature: Double }
        let bins: Int
        let probability_cases: [ProbabilityCase]
        let logit_cases: [LogitCase]
    }

    func loadFixture() throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "calibration_sklearn", withExtension: "json", subdirectory: "Fixtures"),
                                "Fixtures/calibration_sklearn.json missing; run tools/goldens/calibration_sklearn.py")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testECEAndReliabilityBinsMatchNumPy() throws {
        let f = try loadFixture()
        XCTAssertEqual(f.bins, Calibration.defaultBins)
        XCTAssertGreaterThanOrEqual(f.probability_cases.count, 5)
        for c in f.probability_cases {
            let k = c.class_names.count
            let r = Calibration.Reliability(probabilities: c.probabilities, labels: c.labels, classes: k)
            XCTAssertEqual(r.ece, c.ece, accuracy: 1e-6, c.name)
            XCTAssertEqual(r.bins.map(\.count), c.bins.map(\.count), c.name)
            for (got, want) in zip(r.bins, c.bins) {
                XCTAssertEqual(got.confidence, want.confidence, accuracy: 1e-6, c.name)
                XCTAssertEqual(got.accuracy, want.accuracy, accuracy: 1e-6, c.name)
            }
            // The metrics carry the same number.
            let m = try ClassificationMetrics(probabilities: c.probabilities, labels: c.labels, classNames: c.class_names)
            XCTAssertEqual(try XCTUnwrap(m.ece), c.ece, accuracy: 1e-6, c.name)
        }
    }

    func testTemperatureMatchesSciPy() throws {
        let f = try loadFixture()
        for c in f.logit_cases {
            let t = Calibration.fitTemperature(logits: c.logits.flatMap { $0 }, labels: c.labels, classes: c.classes)
            XCTAssertEqual(t, c.temperature, accuracy: 1e-4, c.name)
        }
        XCTAssertGreaterThan(try XCTUnwrap(f.logit_cases.first { $0.name == "overconfident" }).temperature, 1)
        XCTAssertLessThan(try XCTUnwrap(f.logit_cases.first { $0.name == "underconfident" }).temperature, 1)
        // From probabilities, the way a head's temperature is fitted; then the ECE of the rescaled rows.
        for c in f.probability_cases {
            let k = c.class_names.count, p = c.probabilities
            let t = Calibration.fitTemperature(logits: Calibration.logits(probabilities: p), labels: c.labels, classes: k)
            XCTAssertEqual(t, c.temperature, accuracy: 1e-4, c.name)
            let scaled = Calibration.scale(probabilities: p, classes: k, temperature: t)
            XCTAssertEqual(Calibration.Reliability(probabilities: scaled, labels: c.labels, classes: k).ece, c.ece_calibrated,
                           accuracy: 1e-6, c.name)
        }
    }

    func testTemperatureKeepsAccuracyAndConfusion() throws {
        for c in try loadFixture().probability_cases {
            let k = c.class_names.count, p = c.probabilities
            let before = try ClassificationMetrics(probabilities: p, labels: c.labels, classNames: c.class_names)
            for t in [0.2, 0.7, c.temperature, 3.0] {
                let scaled = Calibration.scale(probabilities: p, classes: k, temperature: t)
                let after = try ClassificationMetrics(probabilities: scaled, labels: c.labels, classNames: c.class_names)
                XCTAssertEqual(after.accuracy, before.accuracy, "\(c.name) T=\(t)")
                XCTAssertEqual(after.confusion, before.confusion, "\(c.name) T=\(t)")
                for i in 0..<c.labels.count {
                    XCTAssertEqual(scaled[(i * k)..<(i * k + k)].reduce(0, +), 1, accuracy: 1e-5)
                }
            }
        }
    }

    func testAveragePrecisionAndROCMatchScikitLearn() throws {
        var checked = 0
        for c in try loadFixture().probability_cases {
            let k = c.class_names.count
            for (j, want) in c.per_class.enumerated() {
                let curves = RankingCurves(probabilities: c.probabilities, labels: c.labels, classes: k, classIndex: j)
                guard let ap = want.average_precision, let auc = want.auc, let roc = want.roc else {
                    XCTAssertNil(curves, "\(c.name) class \(j) has no positives or no negatives"); continue
                }
                let got = try XCTUnwrap(curves, "\(c.name) class \(j)")
                XCTAssertEqual(got.averagePrecision, ap, accuracy: 1e-6, "\(c.name) class \(j)")
                XCTAssertEqual(got.auc, auc, accuracy: 1e-6, "\(c.name) class \(j)")
                XCTAssertEqual(got.roc.count, roc.fpr.count, "\(c.name) class \(j)")
                for (p, (x, y)) in zip(got.roc, zip(roc.fpr, roc.tpr)) {
                    XCTAssertEqual(p.x, x, accuracy: 1e-12); XCTAssertEqual(p.y, y, accuracy: 1e-12)
                }
                XCTAssertEqual(got.precisionRecall.last?.x, 1, "the last threshold takes every row")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 20)
    }

    /// Training fits the temperature on validation; the head keeps it through its blob; heads
    /// without one (older blobs) decode with none and are left unscaled.
    func testTrainedHeadCarriesItsTemperature() throws {
        let train = syntheticFeatures(seed: 21)
        let test = syntheticFeatures(imagesPerClass: 20, copies: 1, seed: 22, idOffset: 10_000)
        var cfg = HeadConfig { $0.hidden = 16; $0.epochs = 20; $0.patience = 5; $0.lr = 3e-3; $0.batchSize = 32 }
        cfg.seed = 5
        let r = try trainHead(config: cfg, train: train, test: test)
        let cal = try XCTUnwrap(r.metrics.calibration)
        let t = try XCTUnwrap(r.head.temperature)
        XCTAssertEqual(cal.temperature, t)
        XCTAssert(Calibration.temperatureRange.contains(t))
        XCTAssertEqual(cal.validation.accuracy, try XCTUnwrap(r.metrics.validation).accuracy)
        XCTAssertEqual(try XCTUnwrap(cal.test).accuracy, try XCTUnwrap(r.metrics.test).accuracy)
        XCTAssertEqual(try XCTUnwrap(cal.test).confusion, try XCTUnwrap(r.metrics.test).confusion)
        // The fit minimizes the validation NLL: it is no worse than the uncalibrated one.
        XCTAssertLessThanOrEqual(cal.validation.logLoss, try XCTUnwrap(r.metrics.validation).logLoss + 1e-9)
        XCTAssert(cal.line(uncalibrated: r.metrics).contains("ECE"))

        let back = try TrainedHead(encoded: try r.head.encoded())
        XCTAssertEqual(back.temperature, t)
        let p = try r.head.predict(test)
        XCTAssertEqual(back.calibrated(p), Calibration.scale(probabilities: p, classes: 3, temperature: t))

        var old = r.head
        old.temperature = nil
        let blob = try old.encoded()
        XCTAssertFalse(String(decoding: blob.prefix(2000), as: UTF8.self).contains("temperature"), "no key: the blob of an old head")
        let decoded = try TrainedHead(encoded: blob)
        XCTAssertNil(decoded.temperature)
        XCTAssertEqual(decoded.calibrated(p), p)

        var bad = r.head
        bad.temperature = -1
        XCTAssertThrowsError(try TrainedHead(encoded: try bad.encoded())) { e in
            guard case HeadTrainerError.corruptHead = e else { return XCTFail("\(e)") }
        }

        var noValidation = cfg
        noValidation.valSplit = 0
        let r0 = try trainHead(config: noValidation, train: train, test: test)
        XCTAssertNil(r0.metrics.calibration)
        XCTAssertNil(r0.head.temperature)
    }
}
