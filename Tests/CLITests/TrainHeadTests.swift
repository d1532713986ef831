import Foundation
import XCTest

/// `train-head` on features written by `extract` (the two programs share only the store file).
final class TrainHeadTests: XCTestCase {
    struct Metrics: Decodable {
        let accuracy: Double; let macro_precision: Double; let macro_recall: Double; let macro_f1: Double
        let macro_auc: Double?; let log_loss: Double; let confusion: [[Int]]
    }
    struct Report: Decodable { let head_id: Int; let best_epoch: Int; let epochs: Int; let train: Metrics; let validation: Metrics?; let test: Metrics? }

    /// Lite0 features of all of scenes6 (copies 0 and 1), extracted once for this class.
    static let scenesStore: Result<URL, Error> = Result {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let store = try CLI.temporaryDirectory().appendingPathComponent("scenes6.sqlite")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", CLI.scenes6.path, "--store", store.path,
                                        "--augment", "1", "--quiet"])
        guard r.status == 0 else { throw NSError(domain: "extract", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
        return store
    }

    func train(_ store: URL, _ args: [String]) throws -> Report {
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--json"] + args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    /// The experiment's head (the defaults) on Lite0 features of scenes6 reaches >= 0.90 test
    /// accuracy. Three seeds of the defaults; the median must reach it (measured: 0.905, 0.913, 0.915).
    func testDefaultHeadReachesNinetyPercentOnScenes6() throws {
        let store = try Self.scenesStore.get()
        var accuracies: [Double] = []
        for seed in ["42", "1", "2"] {
            let start = Date()
            let r = try train(store, ["--seed", seed])
            XCTAssertLessThan(Date().timeIntervalSince(start), 60, "training a head takes seconds")
            XCTAssertEqual(r.test?.confusion.count, 6)
            XCTAssertEqual(r.test?.confusion.joined().reduce(0, +), 600)
            XCTAssertNotNil(r.validation)
            XCTAssertLessThanOrEqual(r.best_epoch, r.epochs)
            accuracies.append(r.test?.accuracy ?? 0)
        }
        print("default head test accuracy by seed (42, 1, 2):", accuracies)
        XCTAssertGreaterThanOrEqual(accuracies.sorted()[1], 0.90, "\(accuracies)")
    }

    func testLinearHeadAndJSONShape() throws {
        let store = try Self.scenesStore.get()
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "EfficientNet-Lite0", "--hidden", "0", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        for key in ["head_id", "best_epoch", "epochs", "train", "validation", "test"] { XCTAssertNotNil(obj[key], key) }
        let test = obj["test"] as! [String: Any]
        for key in ["accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc", "log_loss", "per_class", "confusion"] {
            XCTAssertNotNil(test[key], key)
        }
        XCTAssertGreaterThan(test["accuracy"] as! Double, 0.88)
        // The head is kept: predict with it on a new image.
        let headID = obj["head_id"] as! Int
        let image = CLI.scenes6.appendingPathComponent("test/forest")
        let file = try FileManager.default.contentsOfDirectory(atPath: image.path).sorted()[0]
        let p = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(headID)", "--json", image.appendingPathComponent(file).path])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertTrue(p.stdout.contains("\"forest\""), p.stdout)
    }

    func testNoFeaturesForBackboneSaysWhichExtractToRun() throws {
        let store = try Self.scenesStore.get()
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "vgg16"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("extract --backbone vgg16"), r.stderr)
    }

    func testMissingStoreAndOneClassAreClearErrors() throws {
        let dir = try CLI.temporaryDirectory()
        let missing = try CLI.run("train-head", ["--store", dir.appendingPathComponent("none.sqlite").path, "--backbone", "efficientnet_lite0"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("does not exist"), missing.stderr)

        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let data = dir.appendingPathComponent("one/forest")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let src = CLI.scenes6.appendingPathComponent("train/forest")
        for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(4) {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: data.appendingPathComponent(f))
        }
        let store = dir.appendingPathComponent("one.sqlite")
        XCTAssertEqual(try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.deletingLastPathComponent().path,
                                               "--store", store.path, "--quiet"]).status, 0)
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.lowercased().contains("class"), r.stderr)
    }
}
