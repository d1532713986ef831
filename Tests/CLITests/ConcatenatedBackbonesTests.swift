import FeatureStore
import Foundation
import HeadTrainerCore
import XCTest

/// Heads on concatenated features (`train-head --backbone a+b`, `--extraction 1+3`): row matching,
/// errors, what the head records, leaderboards, and `extract predict` running every backbone.
final class ConcatenatedBackbonesTests: XCTestCase {
    struct Report: Decodable {
        struct Metrics: Decodable { let accuracy: Double; let log_loss: Double }
        let head_id: Int64; let extraction_id: Int64; let extraction_ids: [Int64]; let backbone: String
        let train: Metrics; let test: Metrics?
    }

    /// Synthetic features of 60 images of one dataset (3 classes, every 5th image a test image, copies 0
    /// and 1): tiny_a (4-d) and tiny_b (3-d) carry the class with noise; tiny_c is tiny_b without copy 1
    /// of the first 4 images; tiny_d belongs to another dataset.
    func syntheticStore() throws -> (url: URL, ids: [String: Int64]) {
        let url = try CLI.temporaryDirectory().appendingPathComponent("synthetic.sqlite")
        let store = try FeatureStore(path: url.path, mode: .create)
        defer { store.close() }
        var ids: [String: Int64] = [:]
        var noise: UInt64 = 7
        func next() -> Float {
            noise = noise &* 6364136223846793005 &+ 1442695040888963407
            return Float(noise >> 40) / Float(1 << 24) - 0.5
        }
        for (root, backbones) in [("/synthetic/data", ["tiny_a": 4, "tiny_b": 3, "tiny_c": 3]), ("/synthetic/other", ["tiny_d": 2])] {
            let dataset = try store.dataset(root: root, classes: ["a", "b", "c"])
            let images = (0..<60).map { i in
                ImageRecord(datasetID: dataset.id, sha256: String(format: "%064x", i + 1), path: "c\(i % 3)/\(i).jpg", classIndex: i % 3,
                            split: i % 5 == 4 ? .test : .train, width: 10, height: 10)
            }
            let imageIDs = try store.upsertImages(images)
            for (name, dim) in backbones.sorted(by: { $0.key < $1.key }) {
                let e = try store.extraction(for: ExtractionSettings(
                    datasetID: dataset.id, backbone: name, weightsSHA256: String(repeating: "c", count: 64), weightsSource: "generated",
                    preprocessing: "{}", augmentationPolicy: "null", imageSize: 8, fit: "pad", precision: "fp32",
                    featureDType: .f32, featureDim: dim, toolVersion: "test", seed: 0))
                ids[name] = e.id
                var rows: [FeatureRow] = []
                for (i, id) in imageIDs.enumerated() {
                    for aug in 0..<2 where !(name == "tiny_c" && aug == 1 && i < 4) {
                        rows.append(FeatureRow(imageID: id, augIndex: aug, values: (0..<dim).map { d in (d == i % 3 ? 1 : 0) + 2 * next() }))
                    }
                }
                try store.insertFeatures(extractionID: e.id, rows: rows)
            }
        }
        return (url, ids)
    }

    func trainJSON(_ store: URL, _ args: [String]) throws -> Report {
        let r = try CLI.run("train-head", ["--store", store.path, "--json"] + args)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func testHeadOnTwoBackbonesRecordsBothInOrder() throws {
        let (store, ids) = try syntheticStore()
        let ab = try trainJSON(store, ["--backbone", "tiny_a+tiny_b", "--hidden", "0"])
        XCTAssertEqual(ab.backbone, "tiny_a+tiny_b")
        XCTAssertEqual(ab.extraction_ids, [ids["tiny_a"]!, ids["tiny_b"]!])
        XCTAssertEqual(ab.extraction_id, ids["tiny_a"]!)
        let ba = try trainJSON(store, ["--extraction", "\(ids["tiny_b"]!)+\(ids["tiny_a"]!)", "--hidden", "0"])
        XCTAssertEqual(ba.backbone, "tiny_b+tiny_a")

        let db = try FeatureStore(path: store.path, mode: .readOnly)
        XCTAssertEqual(try db.extractions(of: db.head(id: ab.head_id)).map(\.id), [ids["tiny_a"]!, ids["tiny_b"]!])
        XCTAssertEqual(try db.extractions(of: db.head(id: ba.head_id)).map(\.id), [ids["tiny_b"]!, ids["tiny_a"]!])
        // The head's input is 7 wide: predicting 4-d features is refused.
        let head = try TrainedHead(encoded: db.head(id: ab.head_id).weights)
        XCTAssertEqual(try head.predict(features: [Float](repeating: 0, count: 7)).count, 3)
        XCTAssertThrowsError(try head.predict(features: [Float](repeating: 0, count: 4)))

        let text = try CLI.run("train-head", ["--store", store.path, "--backbone", "tiny_a+tiny_b", "--hidden", "0"])
        XCTAssertTrue(text.stdout.contains("extractions \(ids["tiny_a"]!)+\(ids["tiny_b"]!) (tiny_a+tiny_b, 7-d)"), text.stdout)
    }

    /// The same extraction twice is a linear head on [x, x]: with the L2 penalty doubled, its optimum
    /// is the single-extraction head's kernel split in halves, so both heads score alike.
    func testSameExtractionTwiceMatchesTheSingleHeadWithItsKernelSplit() throws {
        let (store, ids) = try syntheticStore()
        let a = ids["tiny_a"]!
        // L-BFGS run to convergence (no early stopping), so both reach their optimum.
        let common = ["--hidden", "0", "--no-batchnorm", "--augmented", "0", "--patience", "0", "--epochs", "1000"]
        let single = try trainJSON(store, ["--extraction", "\(a)", "--l2", "1e-3"] + common)
        let twice = try trainJSON(store, ["--extraction", "\(a)+\(a)", "--l2", "2e-3"] + common)
        XCTAssertEqual(twice.backbone, "tiny_a+tiny_a")
        XCTAssertEqual(twice.train.accuracy, single.train.accuracy)
        XCTAssertEqual(twice.test?.accuracy, single.test?.accuracy)
        XCTAssertEqual(twice.train.log_loss, single.train.log_loss, accuracy: 1e-4)
        XCTAssertEqual(twice.test?.log_loss ?? 0, single.test?.log_loss ?? 1, accuracy: 1e-4)
    }

    func testMissingRowsAndOtherDatasetsAreClearErrors() throws {
        let (store, ids) = try syntheticStore()
        let missing = try CLI.run("train-head", ["--store", store.path, "--backbone", "tiny_a+tiny_c"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("extraction \(ids["tiny_c"]!) (tiny_c) lacks 4 of the 96 train rows"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("extract --backbone tiny_c"), missing.stderr)
        // Copy 0 only: nothing is missing.
        XCTAssertEqual(try trainJSON(store, ["--backbone", "tiny_a+tiny_c", "--hidden", "0", "--augmented", "0"]).backbone, "tiny_a+tiny_c")

        let other = try CLI.run("train-head", ["--store", store.path, "--backbone", "tiny_a+tiny_d"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("/synthetic/other") && other.stderr.contains("same dataset"), other.stderr)
        let empty = try CLI.run("train-head", ["--store", store.path, "--backbone", "tiny_a+"])
        XCTAssertTrue(empty.stderr.contains("empty part"), empty.stderr)
    }

    func testSweepAndReportShowTheCombinedBackbone() throws {
        let (store, _) = try syntheticStore()
        let dir = store.deletingLastPathComponent()
        let file = dir.appendingPathComponent("concat.yaml")
        try """
            name: concat
            extractions: [tiny_a, tiny_a+tiny_b, tiny_a+vgg16]
            defaults: {hidden: 0, augmented: 0}
            parameters: {l2: [1e-4, 1e-3]}
            """.write(to: file, atomically: true, encoding: .utf8)
        let r = try CLI.run("train-head", ["sweep", file.path, "--store", store.path, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("4 of 4 trials"), r.stdout)
        XCTAssertTrue(r.stdout.contains("tiny_a+tiny_b"), r.stdout)
        XCTAssertTrue(r.stderr.contains("extract --backbone vgg16"), r.stderr)
        XCTAssertTrue(r.stdout.contains("not trained (no features in the store): tiny_a+vgg16"), r.stdout)
        // Resumed: the trial keys of the concatenated trials are stable.
        let again = try CLI.run("train-head", ["sweep", file.path, "--store", store.path, "--json", "--quiet"])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["ran"] as? Int, 0)
        let trials = try XCTUnwrap(json["trials"] as? [[String: Any]])
        XCTAssertEqual(Set(trials.compactMap { $0["backbone"] as? String }), ["tiny_a", "tiny_a+tiny_b"])
        XCTAssertTrue(trials.contains { ($0["extraction_ids"] as? [Int])?.count == 2 })

        let out = dir.appendingPathComponent("report")
        XCTAssertEqual(try CLI.run("train-head", ["report", "--store", store.path, "--out", out.path]).status, 0)
        let md = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| tiny_a+tiny_b | "), md)
        // The combined head's curves come from the concatenated test features (not tiny_a's alone).
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        let combined = try XCTUnwrap(trials.first { ($0["extraction_ids"] as? [Int])?.count == 2 }?["head_id"] as? Int)
        let scored = try ReportChecks.assertCurvesMatchStoredMetrics(html, try FeatureStore(path: store.path, mode: .readOnly))
        XCTAssertTrue(scored.contains(Int64(combined)), "no ROC curves for the combined head \(combined): \(scored)")
    }

    /// `extract predict` on a head of two Lite0 extractions (224 and 192 pixels) gives the probabilities the
    /// head gives the stored features of the same image, concatenated in the head's order.
    func testPredictRunsEveryBackboneInTheHeadsOrder() throws {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory()
        let data = dir.appendingPathComponent("data")
        for (split, n) in [("train", 4), ("test", 1)] {
            for c in ["forest", "glacier", "street"] {
                let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)"), dst = data.appendingPathComponent("\(split)/\(c)")
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            }
        }
        let store = dir.appendingPathComponent("lite0.sqlite")
        for size in ["224", "192"] {
            let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                            "--image-size", size, "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        let extractions = try db.extractions()
        XCTAssertEqual(extractions.map(\.settings.imageSize), [224, 192])
        let (large, small) = (extractions[0].id, extractions[1].id)
        let trained = try trainJSON(store, ["--extraction", "\(small)+\(large)", "--hidden", "0", "--val-split", "0", "--l2", "1"])
        XCTAssertEqual(trained.backbone, "efficientnet_lite0+efficientnet_lite0")

        // A test image, and a strong L2 penalty, so that its probabilities are not all 0 or 1.
        let image = "test/glacier/" + (try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("test/glacier").path).sorted()[0])
        let p = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(trained.head_id)", "--top", "3", "--json",
                                        data.appendingPathComponent(image).path])
        XCTAssertEqual(p.status, 0, p.stderr)
        struct Ranked: Decodable { struct Guess: Decodable { let index: Int; let probability: Float }; let top: [Guess] }
        let ranked = try JSONDecoder().decode([Ranked].self, from: Data(p.stdout.utf8))[0].top
        XCTAssertEqual(ranked.count, 3)

        func stored(_ id: Int64) throws -> [Float] {
            let m = try db.loadFeatures(extractionID: id, maxAugIndex: 0)
            return Array(m.row(try XCTUnwrap(m.paths.firstIndex(of: image))))
        }
        let head = try TrainedHead(encoded: db.head(id: trained.head_id).weights)
        let expected = try head.predict(features: stored(small) + stored(large))
        let swapped = try head.predict(features: stored(large) + stored(small))
        for g in ranked { XCTAssertEqual(g.probability, expected[g.index], accuracy: 1e-4, "class \(g.index)") }
        XCTAssertGreaterThan(zip(expected, swapped).map { abs($0 - $1) }.max() ?? 0, 1e-3, "the order of the parts must matter for this test to tell")
    }
}
