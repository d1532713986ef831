import FeatureStore
import Foundation
import XCTest

/// `train-head sweep` and `train-head report` end to end, on a small EfficientNet-Lite0 extraction
/// of scenes6 made once per test run (3 classes, 8 training and 2 test images each, 1 augmented copy).
final class SweepTests: XCTestCase {
    /// 8 trials (2 hidden x 2 lr x 2 augmented), fixed 150 epochs so each takes a moment; vgg16 has
    /// no features in the store, which must be reported and skipped.
    static let sweepYAML = """
        name: test-sweep
        extractions: [vgg16, efficientnet_lite0]
        defaults: {epochs: 150, patience: 0, batch_size: 8, val_split: 0.25}
        parameters:
          hidden: [16, 32]
          lr: [1e-3, 3.0e-3]
          augmented: [0, 1]
        """

    static var cachedStore: URL?

    /// The extraction store, made once (a minute at most); every test works on its own copy.
    func freshStore() throws -> URL {
        if SweepTests.cachedStore == nil {
            guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
            let dir = try CLI.temporaryDirectory()
            let data = dir.appendingPathComponent("data")
            for (split, n) in [("train", 8), ("test", 2)] {
                for c in ["forest", "glacier", "street"] {
                    let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)")
                    let dst = data.appendingPathComponent("\(split)/\(c)")
                    try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                    for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                        try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                    }
                }
            }
            let store = dir.appendingPathComponent("base.sqlite")
            let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                            "--augment", "1", "--batch", "8", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            SweepTests.cachedStore = store
        }
        let copy = try CLI.temporaryDirectory().appendingPathComponent("f.sqlite")
        try FileManager.default.copyItem(at: SweepTests.cachedStore!, to: copy)
        return copy
    }

    func sweepFile(in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("sweep.yaml")
        try SweepTests.sweepYAML.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// The stdout of the last `sweepJSON` call (for exact decoding).
    var lastStdout = ""

    func sweepJSON(_ store: URL, _ extra: [String] = []) throws -> [String: Any] {
        let r = try CLI.run("train-head", ["sweep", try sweepFile(in: store.deletingLastPathComponent()).path,
                                           "--store", store.path, "--json", "--quiet"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        lastStdout = r.stdout
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    /// The trials without their store-specific head ids, for comparing runs.
    func comparable(_ json: [String: Any]) -> [NSDictionary] {
        ((json["trials"] as? [[String: Any]]) ?? []).map { t in
            var t = t
            t["head_id"] = nil
            return t as NSDictionary
        }
    }

    func testSweepRunsEveryTrialReportsTheMissingBackboneAndPrintsTheJSONShape() throws {
        let store = try freshStore()
        let file = try sweepFile(in: store.deletingLastPathComponent())
        let text = try CLI.run("train-head", ["sweep", file.path, "--store", store.path, "--jobs", "2"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stderr.contains("extract --backbone vgg16"), text.stderr)
        XCTAssertTrue(text.stdout.contains("8 of 8 trials"), text.stdout)
        XCTAssertTrue(text.stdout.contains("val loss"), text.stdout)

        // Run again: nothing left to train, same answer.
        let json = try sweepJSON(store)
        XCTAssertEqual(json["ran"] as? Int, 0)
        XCTAssertEqual(json["skipped"] as? Int, 8)
        XCTAssertEqual(json["missing"] as? [String], ["vgg16"])
        let trials = try XCTUnwrap(json["trials"] as? [[String: Any]])
        XCTAssertEqual(trials.count, 8)
        XCTAssertEqual(Set(trials.compactMap { $0["id"] as? String }).count, 8)
        var losses: [Double] = []
        for t in trials {
            XCTAssertNotNil(t["id"] as? String)
            let config = try XCTUnwrap(t["config"] as? [String: Any])
            for key in ["hidden", "dropout", "l2", "lr", "batch_size", "augmented", "seed", "class_weights"] {
                XCTAssertNotNil(config[key], "config lacks \(key)")
            }
            XCTAssertEqual(config["epochs"] as? Int, 150)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(t["best_epoch"] as? Int), 1)
            for split in ["validation", "test"] {
                let m = try XCTUnwrap(t[split] as? [String: Any], "trial lacks \(split)")
                for key in ["accuracy", "macro_precision", "macro_recall", "macro_f1", "log_loss", "confusion", "per_class", "count"] {
                    XCTAssertNotNil(m[key], "\(split) lacks \(key)")
                }
            }
            losses.append(try XCTUnwrap((t["validation"] as? [String: Any])?["log_loss"] as? Double))
        }
        XCTAssertEqual(losses, losses.sorted(), "trials are sorted by validation loss")
        XCTAssertEqual(json["best"] as? String, trials[0]["id"] as? String)
    }

    func testKilledSweepResumesWithoutRedoingTrialsAndEndsWithTheSameLeaderboard() throws {
        let whole = try freshStore()
        let reference = try sweepJSON(whole, ["--jobs", "2"])

        let store = try freshStore()
        let file = try sweepFile(in: store.deletingLastPathComponent())
        // Progress lines ("[k/8] ...") are printed after each trial is saved: kill after the third.
        let run = try CLI.runAndKill("train-head", ["sweep", file.path, "--store", store.path, "--jobs", "1"], when: "[3/8]", timeout: 120)
        XCTAssertTrue(run.stderr.contains("[3/8]"), run.stderr)
        XCTAssertTrue(run.killed, "the sweep was killed before it finished")

        let resumed = try sweepJSON(store)
        let skipped = try XCTUnwrap(resumed["skipped"] as? Int)
        XCTAssertGreaterThanOrEqual(skipped, 3)
        XCTAssertLessThan(skipped, 8)
        XCTAssertEqual(resumed["ran"] as? Int, 8 - skipped, "finished trials are not trained again")
        XCTAssertEqual(comparable(resumed), comparable(reference), "same trials, configs and metrics as an uninterrupted run")
        XCTAssertEqual(resumed["best"] as? String, reference["best"] as? String)
    }

    func testShardsSplitTheTrialsWithoutOverlap() throws {
        let store = try freshStore()
        let file = try sweepFile(in: store.deletingLastPathComponent())
        func keys(_ extra: [String]) throws -> [String] {
            let r = try CLI.run("train-head", ["sweep", file.path, "--store", store.path, "--dry-run", "--quiet"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout.split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        }
        let all = try keys([]), a = try keys(["--shard", "0/2"]), b = try keys(["--shard", "1/2"])
        XCTAssertEqual(all.count, 8)
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(Set(a).intersection(b), [])
        XCTAssertEqual(Set(a).union(b), Set(all))
        XCTAssertEqual(try keys(["--shard", "0/2"]), a, "deterministic")
    }

    func testReportNumbersEqualTheStore() throws {
        let store = try freshStore()
        let json = try sweepJSON(store, ["--jobs", "2"])
        let out = store.deletingLastPathComponent().appendingPathComponent("report")
        let r = try CLI.run("train-head", ["report", "--store", store.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        let md = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)

        // Every metric cell: data-head / data-split / data-metric / data-value, equal to the store's value.
        // (Decoded with JSONDecoder: Foundation's JSONSerialization may round the last digit on Linux.)
        struct Metrics: Decodable {
            let accuracy: Double, macro_precision: Double, macro_recall: Double, macro_f1: Double, log_loss: Double
            let macro_auc: Double?
            var byName: [String: Double?] {
                ["accuracy": accuracy, "macro_precision": macro_precision, "macro_recall": macro_recall,
                 "macro_f1": macro_f1, "log_loss": log_loss, "macro_auc": macro_auc]
            }
        }
        struct Trial: Decodable { let id: String; let head_id: Int; let train: Metrics; let validation: Metrics; let test: Metrics }
        struct Sweep: Decodable { let trials: [Trial] }
        let exact = try JSONDecoder().decode(Sweep.self, from: Data(lastStdout.utf8)).trials
        let trials = try XCTUnwrap(json["trials"] as? [[String: Any]])
        var byHead: [Int: Trial] = [:]
        for t in exact { byHead[t.head_id] = t }
        let cell = try NSRegularExpression(pattern: #"data-head="(\d+)" data-split="(\w+)" data-metric="(\w+)" data-value="([^"]+)""#)
        let matches = cell.matches(in: html, range: NSRange(html.startIndex..., in: html))
        XCTAssertGreaterThanOrEqual(matches.count, 8 * 5 + 7)
        for m in matches {
            let g = (1...4).map { String(html[Range(m.range(at: $0), in: html)!]) }
            let trial = try XCTUnwrap(byHead[Int(g[0])!], "head \(g[0]) of the report is not in the sweep")
            let split = [("train", trial.train), ("validation", trial.validation), ("test", trial.test)].first { $0.0 == g[1] }!.1
            XCTAssertEqual(Double(g[3]), try XCTUnwrap(split.byName[g[2]]), "head \(g[0]) \(g[1]) \(g[2])")
        }
        // The leaderboard lists every trial in the store's order; the backbone row is the best head.
        let rows = try NSRegularExpression(pattern: #"<tr data-trial="([0-9a-f]+)""#)
        let ids = rows.matches(in: html, range: NSRange(html.startIndex..., in: html)).map { String(html[Range($0.range(at: 1), in: html)!]) }
        XCTAssertEqual(ids, trials.compactMap { $0["id"] as? String })
        let best = trials[0]
        let bestTest = exact[0].test.accuracy
        XCTAssertTrue(html.contains(#"<tr data-backbone="efficientnet_lite0"><td>efficientnet_lite0</td><td class="num">\#(best["head_id"]!)</td>"#))
        XCTAssertTrue(md.contains("| efficientnet_lite0 | \(best["head_id"]!) |"), md)
        XCTAssertTrue(md.contains(String(format: "%.4f", bestTest)), md)
        // The Keras notebook's numbers, curves, confusion matrix and one scatter plot per swept setting.
        for ref in ["0.881", "0.735", "0.725", "0.167"] { XCTAssertTrue(html.contains(">\(ref)</td>"), ref) }
        for key in ["hidden", "lr", "augmented"] { XCTAssertTrue(html.contains("data-scatter=\"\(key)\""), key) }
        XCTAssertTrue(html.contains("true \\ predicted"))
        XCTAssertTrue(html.contains("best epoch"))
        // Self-contained: nothing loaded from elsewhere.
        try assertSelfContained(html)
        // Calibration and ranking of the best head, recomputed from its weights: the uncalibrated test ECE
        // equals the one stored at training time (same head, same features).
        let bestHead = try XCTUnwrap(best["head_id"] as? Int)
        let stored = try storedTestMetrics(store, head: bestHead)
        let storedECE = try XCTUnwrap(stored.ece)
        let ece = try XCTUnwrap(firstMatch(#"data-calibration-head="\#(bestHead)".*?data-ece="([^"]+)""#, in: html))
        XCTAssertEqual(try XCTUnwrap(Double(ece)), storedECE, accuracy: 1e-9)
        XCTAssertTrue(html.contains("data-reliability=\"\(bestHead)\""))
        XCTAssertTrue(html.contains("data-roc=\"\(bestHead)\"") && html.contains("data-pr=\"\(bestHead)\""))
        XCTAssertEqual(html.components(separatedBy: "data-ap=").count - 1, 3, "one average precision per class")
        // The ROC legend's per-class AUCs are the stored test metrics' (same head, same probabilities).
        let rocSVG = try XCTUnwrap(firstMatch(#"(<svg[^>]*data-roc="\#(bestHead)".*?</svg>)"#, in: html))
        for c in stored.per_class {
            let auc = try XCTUnwrap(firstMatch(#"data-class="\#(c.class)" data-auc="([^"]+)""#, in: rocSVG), c.class)
            XCTAssertEqual(try XCTUnwrap(Double(auc)), try XCTUnwrap(c.auc), accuracy: 1e-12, c.class)
        }
        XCTAssertTrue(md.contains("## Calibration and ranking"), md)
    }

    func firstMatch(_ pattern: String, in text: String) throws -> String? {
        let re = try NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        guard let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        return String(text[Range(m.range(at: 1), in: text)!])
    }

    struct StoredTest: Decodable {
        struct PerClass: Decodable { let `class`: String; let auc: Double? }
        let ece: Double?
        let per_class: [PerClass]
    }

    /// The test metrics in a head's stored metrics JSON.
    func storedTestMetrics(_ store: URL, head: Int) throws -> StoredTest {
        struct Stored: Decodable { let test: StoredTest }
        let db = try FeatureStore(path: store.path, mode: .readOnly)
        return try JSONDecoder().decode(Stored.self, from: Data(try db.head(id: Int64(head)).metrics.utf8)).test
    }

    /// Nothing loaded from elsewhere: no stylesheets, imports or script files; images only as data: URIs.
    func assertSelfContained(_ html: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for bad in ["<link", "@import", "url(", "<script src", "<iframe"] { XCTAssertFalse(html.contains(bad), bad, file: file, line: line) }
        let sources = try NSRegularExpression(pattern: #"src="([^"]{0,15})"#)
        for m in sources.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            XCTAssertTrue(String(html[Range(m.range(at: 1), in: html)!]).hasPrefix("data:image/jpeg"), file: file, line: line)
        }
    }

    /// `extract predict` applies the head's temperature unless --no-calibration: softmax(log p / T),
    /// with the same ranking.
    func testPredictAppliesTheHeadsTemperature() throws {
        let store = try freshStore()
        let t = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--epochs", "30", "--json"])
        XCTAssertEqual(t.status, 0, t.stderr)
        struct Trained: Decodable { let head_id: Int; let calibration: C; struct C: Decodable { let temperature: Double } }
        let trained = try JSONDecoder().decode(Trained.self, from: Data(t.stdout.utf8))
        let temperature = trained.calibration.temperature
        XCTAssertNotEqual(temperature, 1)
        let image = CLI.scenes6.appendingPathComponent("test/glacier")
        let file = image.appendingPathComponent(try FileManager.default.contentsOfDirectory(atPath: image.path).sorted()[5]).path
        struct Guess: Decodable { let index: Int; let probability: Double }
        struct Ranked: Decodable { let top: [Guess] }
        func predict(_ extra: [String]) throws -> [Guess] {
            let r = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(trained.head_id)", "--top", "3", "--json", file] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try JSONDecoder().decode([Ranked].self, from: Data(r.stdout.utf8))[0].top
        }
        let raw = try predict(["--no-calibration"]), calibrated = try predict([])
        XCTAssertEqual(raw.map(\.index), calibrated.map(\.index), "same ranking")
        let scaled = raw.map { Foundation.pow($0.probability, 1 / temperature) }, total = scaled.reduce(0, +)   // 3 classes: all of them
        for (c, s) in zip(calibrated, scaled) { XCTAssertEqual(c.probability, s / total, accuracy: 2e-6) }
    }

    /// The error gallery: misclassified test images grouped by (true, predicted), most frequent pair
    /// first, capped by --gallery, linked from the confusion matrix; a vanished image is a placeholder.
    func testReportErrorGallery() throws {
        let store = try freshStore()
        // A deliberately weak head (2 epochs at a tiny learning rate) so that there are errors to show.
        let t = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--epochs", "2",
                                           "--lr", "1e-6", "--patience", "0", "--hidden", "0", "--solver", "adam", "--json"])
        XCTAssertEqual(t.status, 0, t.stderr)
        struct Report: Decodable {
            let head_id: Int
            let test: M; let calibration: C?
            struct M: Decodable { let accuracy: Double; let count: Int; let confusion: [[Int]] }
            struct C: Decodable { let temperature: Double; let test: M? }
        }
        let trained = try JSONDecoder().decode(Report.self, from: Data(t.stdout.utf8))
        XCTAssertEqual(trained.calibration?.test?.accuracy, trained.test.accuracy, "temperature scaling keeps accuracy")
        let wrong = trained.test.count - (0..<3).reduce(0) { $0 + trained.test.confusion[$1][$1] }
        XCTAssertGreaterThan(wrong, 1, "the weak head must misclassify some test images for this test")
        let dir = store.deletingLastPathComponent()
        func report(_ extra: [String]) throws -> String {
            let out = dir.appendingPathComponent("report-\(extra.joined())")
            let r = try CLI.run("train-head", ["report", "--store", store.path, "--out", out.path] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        }
        let html = try report([])
        try assertSelfContained(html)
        let head = trained.head_id
        // Pairs: their counts add up to the errors, most frequent first; every linked cell has its pair.
        let counts = try NSRegularExpression(pattern: #"<div class="pair" id="errors-\#(head)-(\d+)-(\d+)" data-count="(\d+)""#)
            .matches(in: html, range: NSRange(html.startIndex..., in: html))
            .map { m in (1...3).map { Int(html[Range(m.range(at: $0), in: html)!])! } }
        XCTAssertEqual(counts.map { $0[2] }.reduce(0, +), wrong)
        XCTAssertEqual(counts.map { $0[2] }, counts.map { $0[2] }.sorted(by: >))
        for c in counts { XCTAssertEqual(c[2], trained.test.confusion[c[0]][c[1]], "pair \(c[0]) -> \(c[1])") }
        for c in counts { XCTAssertTrue(html.contains("data-target=\"errors-\(head)-\(c[0])-\(c[1])\""), "confusion cell links to its pair") }
        XCTAssertTrue(html.contains("<script>") && html.contains("scrollIntoView"))
        XCTAssertEqual(html.components(separatedBy: "<img src=\"data:image/jpeg;base64,").count - 1, wrong, "every error shown (below the cap)")
        // The cap, and no gallery at all.
        let one = try report(["--gallery", "1"])
        XCTAssertEqual(one.components(separatedBy: "<figure class=\"thumb\"").count - 1, 1)
        let none = try report(["--gallery", "0"])
        XCTAssertFalse(none.contains("<figure") || none.contains("data-target="))
        // In a browser (when one is installed), clicking a confusion cell flashes its pair's images.
        if let chromium = Self.chromium {
            let probe = dir.appendingPathComponent("click.html")
            try html.replacingOccurrences(of: "</body>", with: #"<script>var c = document.querySelector("td[data-target]"); c.click();"#
                + #"var f = document.querySelector(".pair.flash"); document.body.setAttribute("data-clicked", (f ? f.id : "none") + " " + c.getAttribute("data-target"));</script></body>"#)
                .write(to: probe, atomically: true, encoding: .utf8)
            let p = Process(), out = Pipe()
            p.executableURL = URL(fileURLWithPath: chromium)
            p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.absoluteString]
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let clicked = try XCTUnwrap(firstMatch(#"data-clicked="([^"]+)""#, in: dom)).split(separator: " ")
            XCTAssertEqual(clicked.count, 2)
            XCTAssertEqual(clicked.first, clicked.last, "the clicked cell's pair is highlighted")
            XCTAssertTrue(clicked.first?.hasPrefix("errors-\(head)-") ?? false)
        }
        // An image that is gone: a placeholder with its path, not an error.
        let path = try XCTUnwrap(firstMatch(#"<figure class="thumb" data-row="\d+"><img [^>]*><figcaption><code>([^<]+)</code>"#, in: html))
        let moved = URL(fileURLWithPath: path + ".moved")
        try FileManager.default.moveItem(atPath: path, toPath: moved.path)
        defer { try? FileManager.default.moveItem(atPath: moved.path, toPath: path) }
        let gone = try report(["--gallery", "100"])
        XCTAssertTrue(gone.contains("image no longer on disk</div><figcaption><code>\(path)</code>"), "placeholder and path")
        XCTAssertEqual(gone.components(separatedBy: "<img src=").count - 1, wrong - 1)
    }

    /// Renders the report in headless Chromium when it is installed (it is not a CI dependency).
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    func testReportRendersInHeadlessChromium() throws {
        guard let chromium = Self.chromium else { throw XCTSkip("chromium is not installed (scripts/check-report.sh does the same check)") }
        let store = try freshStore()
        _ = try sweepJSON(store, ["--jobs", "2"])
        let out = store.deletingLastPathComponent().appendingPathComponent("report")
        XCTAssertEqual(try CLI.run("train-head", ["report", "--store", store.path, "--out", out.path]).status, 0)
        let png = out.appendingPathComponent("report.png")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400",
                       "--screenshot=\(png.path)", out.appendingPathComponent("report.html").absoluteString]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let bytes = try Data(contentsOf: png)
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")
        XCTAssertGreaterThan(bytes.count, 50_000, "a page with tables and plots, not a blank one")
    }

    /// Errors in a sweep file name the file and the key path of the bad value.
    func testSweepFileErrorsNameTheFileAndTheKey() throws {
        let dir = try CLI.temporaryDirectory()
        let cases: [(yaml: String, expected: [String])] = [
            ("extractions: [a]\nparamters: {lr: [1]}", ["`paramters` is not a key of sweep files", "parameters"]),
            ("extractions: [a]\nparameters:\n  - hidden: [0]\n  - hiden: [1]", ["`parameters[1].hiden` is not a head setting", "hidden, dropout"]),
            ("extractions: [a]\ndefaults: {hidden: wide}", ["`defaults.hidden` must be an integer, not `wide`"]),
            ("extractions: [a]\nparameters: {lr: [1e-3, fast]}", ["`parameters.lr[1]` must be a number, not `fast`"]),
            ("extractions: [a]\nparameters: {class_weights: [none, balance]}", ["`parameters.class_weights[1]` must be none or balanced"]),
            ("extractions: [a]\nparameters: {batchnorm: [true, 2]}", ["`parameters.batchnorm[1]` must be true or false"]),
            ("extractions: [a]\nparameters: {lr: {min: 1e-4, max: 1e-2}}", ["`parameters.lr` is a range", "search: random"]),
            ("extractions: [a]\ndefaults: {lr: 1e-3}\nparameters: {lr: [1e-4]}", ["`parameters.lr` is also in `defaults`"]),
            ("extractions: [a]\ndefaults: {dropout: 1.5}", ["dropout", "[0, 1)"]),
            ("parameters: {lr: [1e-4]}", ["`extractions` is missing"]),
        ]
        for (i, c) in cases.enumerated() {
            let file = dir.appendingPathComponent("bad-\(i).yaml")
            try c.yaml.write(to: file, atomically: true, encoding: .utf8)
            let r = try CLI.run("train-head", ["sweep", file.path, "--store", dir.appendingPathComponent("none.sqlite").path, "--dry-run"])
            XCTAssertNotEqual(r.status, 0, c.yaml)
            for part in [file.path] + c.expected { XCTAssertTrue(r.stderr.contains(part), "\(part) is not in: \(r.stderr)") }
        }
    }
}
