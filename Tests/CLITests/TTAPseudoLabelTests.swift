import FeatureStore
import Foundation
import XCTest

/// `train-head --tta`, `extract predict --tta` and `train-head --pseudo-label` on a tiny Lite0 store.
final class TTAPseudoLabelTests: XCTestCase {
    static let classes = ["forest", "sea", "street"]

    /// 3 classes x (6 train + 3 test) images of scenes6, copies 0...2 of each (test images too).
    static let store: Result<(data: URL, store: URL), Error> = Result {
        let data = try CLI.smallDataset(classes: classes, perClass: 6, testPerClass: 3)
        let store = data.deletingLastPathComponent().appendingPathComponent("tiny.sqlite")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                        "--augment", "2", "--batch", "8", "--quiet"])
        guard r.status == 0 else { throw NSError(domain: "extract", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
        return (data, store)
    }

    func trainHead(_ args: [String]) throws -> [String: Any] {
        let (_, store) = try Self.store.get()
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--hidden", "0", "--json"] + args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    /// Mean -log p(true class) of `predict --top 3` over the test images: the log loss train-head reports.
    func predictLogLoss(head: Int, tta: Int) throws -> Double {
        let (data, store) = try Self.store.get()
        var paths: [String] = [], truth: [String] = []
        for c in Self.classes {
            let dir = data.appendingPathComponent("test/\(c)")
            for f in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() {
                paths.append(dir.appendingPathComponent(f).path)
                truth.append(c)
            }
        }
        let r = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(head)", "--top", "3", "--tta", "\(tta)", "--json", "--no-calibration"] + paths)
        XCTAssertEqual(r.status, 0, r.stderr)
        let entries = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(entries.count, 9)
        var loss = 0.0
        for (entry, label) in zip(entries, truth) {
            let top = try XCTUnwrap(entry["top"] as? [[String: Any]])
            let p = try XCTUnwrap(top.first { $0["label"] as? String == label }?["probability"] as? Double)
            loss -= log(p)
        }
        return loss / Double(entries.count)
    }

    func testTTAReportsBothStoresThemAndPredictAgrees() throws {
        let plain = try trainHead([])
        XCTAssertNil(plain["tta"])
        let tta = try trainHead(["--tta", "2"])
        // The same fit: the scores without TTA are unchanged, and TTA adds its own.
        let plainTest = try XCTUnwrap(plain["test"] as? [String: Any]), ttaPlainTest = try XCTUnwrap(tta["test"] as? [String: Any])
        XCTAssertEqual(plainTest["log_loss"] as? Double, ttaPlainTest["log_loss"] as? Double)
        let block = try XCTUnwrap(tta["tta"] as? [String: Any])
        XCTAssertEqual(block["copies"] as? Int, 2)
        let ttaTest = try XCTUnwrap(block["test"] as? [String: Any])
        XCTAssertEqual(ttaTest["count"] as? Int, 9)
        XCTAssertNotNil(block["validation"])

        // Kept with the head in the store.
        let headID = try XCTUnwrap(tta["head_id"] as? Int)
        let db = try FeatureStore(path: try Self.store.get().store.path, mode: .readOnly)
        let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try db.head(id: Int64(headID)).metrics.utf8)) as? [String: Any])
        XCTAssertEqual((metrics["tta"] as? [String: Any])?["copies"] as? Int, 2)

        // predict on the test files, drawing copies as extract did, gives the probabilities train-head scored.
        let ttaLoss = try XCTUnwrap(ttaTest["log_loss"] as? Double), plainLoss = try XCTUnwrap(ttaPlainTest["log_loss"] as? Double)
        XCTAssertNotEqual(ttaLoss, plainLoss)
        XCTAssertEqual(try predictLogLoss(head: headID, tta: 2), ttaLoss, accuracy: 1e-4)
        XCTAssertEqual(try predictLogLoss(head: headID, tta: 0), plainLoss, accuracy: 1e-4)
    }

    func testTTAAboveTheStoredCopiesIsAClearError() throws {
        let (_, store) = try Self.store.get()
        let r = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--hidden", "0", "--tta", "3"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("extract --augment 3"), r.stderr)
    }

    func testPseudoLabelRoundsAreReported() throws {
        let r = try trainHead(["--labeled-fraction", "0.5", "--pseudo-label", "--threshold", "0.5", "--rounds", "1", "--tta", "1"])
        let rounds = try XCTUnwrap(r["pseudo_label_rounds"] as? [[String: Any]])
        XCTAssertEqual(rounds.map { $0["round"] as? Int }, [0, 1])
        XCTAssertEqual(rounds[0]["labeled_images"] as? Int, 9)
        XCTAssertEqual(rounds[0]["unlabeled_images"] as? Int, 9)
        let histogram = try XCTUnwrap(rounds[1]["class_histogram"] as? [Int])
        XCTAssertEqual(histogram.count, 3)
        XCTAssertEqual(histogram.reduce(0, +), rounds[1]["pseudo_labels"] as? Int)

        let (_, store) = try Self.store.get()
        let text = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--hidden", "0",
                                              "--labeled-fraction", "0.5", "--pseudo-label", "--rounds", "1"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("round 1: 9 labeled + "), text.stdout)
    }

    /// `pseudo_label_rounds` of a linear head trained with one round of pseudo-labels at threshold 0
    /// (every unlabeled image kept), on the features `selector` names.
    func selfTrainingRounds(_ store: URL, _ selector: [String]) throws -> [[String: Any]] {
        let r = try CLI.run("train-head", ["--store", store.path, "--hidden", "0", "--json",
                                           "--pseudo-label", "--threshold", "0", "--rounds", "1"] + selector)
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return try XCTUnwrap(report["pseudo_label_rounds"] as? [[String: Any]])
    }

    /// Scenes6 training images 4 and 5 of each class (not in `CLI.smallDataset`'s first 4) into `folder`,
    /// named `<class>-<file>`.
    func copyUnlabeledImages(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for c in Self.classes {
            let src = CLI.scenes6.appendingPathComponent("train/\(c)")
            for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted()[4..<6] {
                try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: folder.appendingPathComponent("\(c)-\(f)"))
            }
        }
    }

    /// `extract --unlabeled` stores DIR/unlabeled/ without classes; `--pseudo-label` labels them. A file
    /// there with the bytes of a labeled image stays labeled.
    func testUnlabeledFolderFeedsPseudoLabels() throws {
        let data = try CLI.smallDataset(classes: Self.classes, perClass: 4, testPerClass: 2)
        try copyUnlabeledImages(to: data.appendingPathComponent("unlabeled/batch1"))
        let labeledFile = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("train/sea").path).sorted()[0]
        try FileManager.default.copyItem(at: data.appendingPathComponent("train/sea/\(labeledFile)"),
                                         to: data.appendingPathComponent("unlabeled/copy-of-a-sea-image.jpg"))
        let store = data.deletingLastPathComponent().appendingPathComponent("unlabeled.sqlite")
        let e = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                        "--augment", "1", "--unlabeled", "--batch", "8", "--quiet"])
        XCTAssertEqual(e.status, 0, e.stderr)

        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let images = try db.images(datasetID: 1)
        XCTAssertEqual(images.filter { $0.split == .unlabeled }.count, 6)
        XCTAssertTrue(images.filter { $0.split == .unlabeled }.allSatisfy { $0.classIndex == ImageSplit.noClass && $0.path.hasPrefix("unlabeled/batch1/") })
        XCTAssertEqual(try db.loadFeatures(extractionID: 1, split: .unlabeled).rows, 12)
        XCTAssertEqual(try db.datasets().first?.classes, Self.classes)
        db.close()

        let rounds = try selfTrainingRounds(store, ["--backbone", "efficientnet_lite0"])
        XCTAssertEqual(rounds.count, 2)
        XCTAssertEqual(rounds[0]["labeled_images"] as? Int, 12)
        XCTAssertEqual(rounds[0]["unlabeled_images"] as? Int, 6)
        XCTAssertEqual(rounds[1]["pseudo_labels"] as? Int, 6, "threshold 0 keeps every unlabeled image")
        XCTAssertNil(rounds[1]["pseudo_label_accuracy"], "no true labels to compare with")
        // Without --pseudo-label the unlabeled images are not trained on: the same as a store without them.
        let plain = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--hidden", "0", "--json"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertNil((try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])?["pseudo_label_rounds"])
    }

    /// `extract --data FOLDER --unlabeled` on a folder of images without class folders (the experiment's
    /// `seg_pred`, here as Kaggle doubles it: seg_pred/seg_pred/*.jpg) stores a dataset without classes;
    /// `train-head --pseudo-label` on a labeled extraction with the same settings labels those images too.
    /// A labeled dataset without an unlabeled/ folder is refused with the fix.
    func testFolderOfUnlabeledImagesFeedsPseudoLabels() throws {
        let data = try CLI.smallDataset(classes: Self.classes, perClass: 4, testPerClass: 2)
        let pred = data.deletingLastPathComponent().appendingPathComponent("seg_pred/seg_pred")
        try copyUnlabeledImages(to: pred)
        let store = data.deletingLastPathComponent().appendingPathComponent("folder.sqlite")
        func extract(_ dir: URL, _ extra: [String]) throws -> CLI.Result {
            try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", dir.path, "--store", store.path,
                                    "--precision", "fp32", "--batch", "8", "--quiet"] + extra)
        }
        let labeledOnly = try extract(data, ["--unlabeled"])
        XCTAssertNotEqual(labeledOnly.status, 0)
        XCTAssertTrue(labeledOnly.stderr.contains("looks like a labeled dataset"), labeledOnly.stderr)
        XCTAssertEqual(try extract(data, []).status, 0)
        let e = try extract(pred.deletingLastPathComponent(), ["--unlabeled"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let folder = try XCTUnwrap(try db.datasets().first { $0.classes.isEmpty })
        XCTAssertEqual(try db.images(datasetID: folder.id).filter { $0.split == .unlabeled }.count, 6)
        db.close()

        let rounds = try selfTrainingRounds(store, ["--extraction", "1"])
        XCTAssertEqual(rounds[0]["unlabeled_images"] as? Int, 6)
        XCTAssertEqual(rounds[1]["pseudo_labels"] as? Int, 6)
    }
}
