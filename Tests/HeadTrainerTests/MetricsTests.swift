import Foundation
import HeadTrainerCore
import XCTest

/// Swift metrics against scikit-learn on fixed predictions (fixture from tools/goldens/metrics_sklearn.py).
final class MetricsTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            struct PerClass: Decodable { let `class`: String; let precision, recall, f1: Double; let support: Int; let auc: Double? }
            struct Expected: Decodable {
                let accuracy, macro_precision, macro_recall, macro_f1, log_loss: Double
                let macro_auc: Double?
                let sklearn_macro_auc: Double?
                let per_class: [PerClass]
                let confusion: [[Int]]
            }
            let name: String
            let class_names: [String]
            let labels: [Int32]
            let probability_numerators: [[Int]]
            let grid: Int
            let expected: Expected
        }
        let cases: [Case]
    }

    func loadFixture() throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "metrics_sklearn", withExtension: "json", subdirectory: "Fixtures"),
                                "Fixtures/metrics_sklearn.json missing; run tools/goldens/metrics_sklearn.py")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testMatchesScikitLearn() throws {
        let fixture = try loadFixture()
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 5)
        for c in fixture.cases {
            let probs = c.probability_numerators.flatMap { $0.map { Float($0) / Float(c.grid) } }
            let m = try ClassificationMetrics(probabilities: probs, labels: c.labels, classNames: c.class_names)
            let e = c.expected, tol = 1e-6
            XCTAssertEqual(m.accuracy, e.accuracy, accuracy: tol, c.name)
            XCTAssertEqual(m.macroPrecision, e.macro_precision, accuracy: tol, c.name)
            XCTAssertEqual(m.macroRecall, e.macro_recall, accuracy: tol, c.name)
            XCTAssertEqual(m.macroF1, e.macro_f1, accuracy: tol, c.name)
            XCTAssertEqual(m.logLoss, e.log_loss, accuracy: tol, c.name)
            XCTAssertEqual(m.confusion, e.confusion, c.name)
            if let want = e.macro_auc { XCTAssertEqual(try XCTUnwrap(m.macroAUC), want, accuracy: tol, c.name) } else { XCTAssertNil(m.macroAUC, c.name) }
            // Where scikit-learn's own macro AUC is defined (no absent class), it is the same number.
            if let sk = e.sklearn_macro_auc { XCTAssertEqual(try XCTUnwrap(m.macroAUC), sk, accuracy: tol, c.name) }
            for (got, want) in zip(m.perClass, e.per_class) {
                XCTAssertEqual(got.className, want.class)
                XCTAssertEqual(got.precision, want.precision, accuracy: tol, "\(c.name) \(want.class)")
                XCTAssertEqual(got.recall, want.recall, accuracy: tol, "\(c.name) \(want.class)")
                XCTAssertEqual(got.f1, want.f1, accuracy: tol, "\(c.name) \(want.class)")
                XCTAssertEqual(got.support, want.support, "\(c.name) \(want.class)")
                if let a = want.auc { XCTAssertEqual(try XCTUnwrap(got.auc), a, accuracy: tol, "\(c.name) \(want.class)") } else { XCTAssertNil(got.auc) }
            }
        }
    }

    func testFixtureCoversEdgeCases() throws {
        let names = try loadFixture().cases.map(\.name)
        XCTAssert(names.contains("class_never_predicted"))
        XCTAssert(names.contains("classes_absent"))
    }

    func testCodableKeysAreStableSnakeCase() throws {
        let m = try ClassificationMetrics(probabilities: [0.9, 0.1, 0.2, 0.8, 0.6, 0.4], labels: [0, 1, 1], classNames: ["a", "b"])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(m)) as? [String: Any])
        for key in ["accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc", "log_loss", "per_class", "confusion"] {
            XCTAssertNotNil(json[key], key)
        }
        let first = try XCTUnwrap((json["per_class"] as? [[String: Any]])?.first)
        for key in ["class", "precision", "recall", "f1", "support"] { XCTAssertNotNil(first[key], key) }
        XCTAssertEqual(try JSONDecoder().decode(ClassificationMetrics.self, from: JSONEncoder().encode(m)), m)
    }

    func testTextTable() throws {
        let m = try ClassificationMetrics(probabilities: [0.9, 0.1, 0.2, 0.8, 0.6, 0.4], labels: [0, 1, 1], classNames: ["cats", "dogs"])
        let t = m.table(title: "test")
        XCTAssert(t.contains("cats") && t.contains("dogs") && t.contains("macro") && t.contains("confusion"))
        XCTAssert(t.contains("0.6667"))   // accuracy 2/3
    }

    func testRejectsBadInput() {
        XCTAssertThrowsError(try ClassificationMetrics(probabilities: [0.5, 0.5], labels: [0, 1], classNames: ["a", "b"]))
        XCTAssertThrowsError(try ClassificationMetrics(probabilities: [0.5, 0.5], labels: [2], classNames: ["a", "b"]))
    }
}
