import BackboneEngine
import FeatureStore
import GRDB
import Foundation
import XCTest

/// `extract --precision auto|fp32|bf16` end to end. The probe's result is injected with
/// WORKBENCH_BF16_RATIO, so what is asserted does not depend on the CPU the tests run on.
extension ExtractTests {
    struct PrecisionSummary: Decodable {
        let extraction_id: Int64, new_features: Int, reused_features: Int
        let precision: String, precision_source: String, precision_reason: String, bf16_probe_ratio: Double?
        struct Int8Check: Decodable { let images: Int, cosine_min: Double, cosine_median: Double }
        let int8_check: Int8Check?
    }

    func extractAt(_ data: URL, store: URL, ratio: String, _ extra: [String] = []) throws -> (PrecisionSummary, stderr: String) {
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                        "--batch", "4", "--json"] + extra, environment: ["WORKBENCH_BF16_RATIO": ratio])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (try JSONDecoder().decode(PrecisionSummary.self, from: Data(r.stdout.utf8)), r.stderr)
    }

    func storedPrecisions(_ store: URL) throws -> [String] {
        try FeatureStore(path: store.path, mode: .readOnly).extractions().map(\.settings.precision)
    }

    /// Where oneDNN has no bf16 convolutions (AVX2: Haswell to Zen 3, here `ONEDNN_MAX_CPU_ISA=AVX2`)
    /// `--precision bf16` is refused before any work, naming the fix; `auto` is fp32 without probing,
    /// whatever the CPU's flags (this CPU's table would pick bf16), and runs.
    func testBF16WithoutAVX512IsRefusedAndAutoIsFP32() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("avx2.sqlite")
        let avx2 = ["ONEDNN_MAX_CPU_ISA": "AVX2"]
        for args in [["--data", data.path, "--store", store.path], ["bench", "--seconds", "0.01"]] {
            let r = try CLI.run("extract", args + ["--backbone", "efficientnet_lite0", "--precision", "bf16"], environment: avx2)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--precision bf16: oneDNN has no bf16 convolutions on this CPU (its instruction set here: AVX2; bf16 needs AVX-512). Use --precision fp32, or auto (fp32 here)"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.path), "refused before the store is created")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--batch", "4", "--json"],
                            environment: avx2.merging(["WORKBENCH_BF16_RATIO": "2"]) { $1 })
        XCTAssertEqual(r.status, 0, r.stderr)
        let s = try JSONDecoder().decode(PrecisionSummary.self, from: Data(r.stdout.utf8))
        XCTAssertEqual([s.precision, s.precision_source], ["fp32", "rule"])
        XCTAssertNil(s.bf16_probe_ratio)
        XCTAssertTrue(s.precision_reason.hasPrefix("oneDNN has no bf16 convolutions on this CPU (its instruction set here: AVX2"), s.precision_reason)
    }

    /// `extract predict` with a head on a bf16 extraction, where oneDNN has no bf16 convolutions
    /// (`ONEDNN_MAX_CPU_ISA=AVX2`): the features are computed in fp32, which it says, and the
    /// prediction is the bf16 one's (same ranking, probabilities within 0.02).
    func testPredictOnABF16ExtractionWithoutBF16UsesFP32() throws {
        try skipWithoutBF16()
        let data = try makeDataset(perClass: 3, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("predict.sqlite")
        let (e, _) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet"])
        struct Trained: Decodable { let head_id: Int64 }
        let t = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--json", "--hidden", "0", "--val-split", "0", "--l2", "1"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let head = try JSONDecoder().decode(Trained.self, from: Data(t.stdout.utf8)).head_id
        let folder = data.appendingPathComponent("test/forest")
        let image = folder.appendingPathComponent(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()[0])
        struct Ranked: Decodable { struct Guess: Decodable { let index: Int; let probability: Float }; let top: [Guess] }
        func predict(_ environment: [String: String]) throws -> ([Ranked.Guess], stderr: String) {
            let r = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(head)", "--top", "2", "--json", image.path],
                                environment: environment)
            XCTAssertEqual(r.status, 0, r.stderr)
            return (try JSONDecoder().decode([Ranked].self, from: Data(r.stdout.utf8))[0].top, r.stderr)
        }
        let (bf16, hereErr) = try predict([:])
        let (fp32, avx2Err) = try predict(["ONEDNN_MAX_CPU_ISA": "AVX2"])
        XCTAssertFalse(hereErr.contains("in fp32 instead"), hereErr)
        XCTAssertTrue(avx2Err.contains("predict: extraction \(e.extraction_id) is bf16, but oneDNN has no bf16 convolutions on this CPU (its instruction set here: AVX2; bf16 needs AVX-512); computing its features in fp32 instead"), avx2Err)
        XCTAssertEqual(bf16.map(\.index), fp32.map(\.index))
        for (a, b) in zip(bf16, fp32) { XCTAssertEqual(a.probability, b.probability, accuracy: 0.02) }
    }

    /// `--convolution direct|auto` is reported, and both add to one extraction (the algorithm is not
    /// part of its identity: the features agree to ~1e-6). Lite0 has no convolution that runs as Winograd.
    func testConvolutionAlgorithmIsReportedAndSharesTheExtraction() throws {
        struct Summary: Decodable { let extraction_id: Int64, new_features: Int, reused_features: Int, convolution: String, winograd_convolutions: Int }
        let data = try makeDataset(perClass: 2, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("conv.sqlite")
        var ids: [Int64] = []
        for (algorithm, augment, new) in [("direct", "0", 4), ("auto", "1", 4)] {
            let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                            "--batch", "4", "--precision", "fp32", "--convolution", algorithm, "--augment", augment, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let s = try JSONDecoder().decode(Summary.self, from: Data(r.stdout.utf8))
            XCTAssertEqual([s.convolution, "\(s.winograd_convolutions)", "\(s.new_features)"], [algorithm, "0", "\(new)"])
            ids.append(s.extraction_id)
        }
        XCTAssertEqual(ids[0], ids[1])   // the second run added the augmented copies to the first run's extraction
        let bad = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--convolution", "winograd"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("auto") && bad.stderr.contains("direct"), bad.stderr)
    }

    func testAutoRecordsTheProbedPrecisionAndResumesIt() throws {
        try skipWithoutBF16()
        let data = try makeDataset(perClass: 2, testPerClass: 0)
        let dir = data.deletingLastPathComponent()
        let fast = dir.appendingPathComponent("fast.sqlite"), slow = dir.appendingPathComponent("slow.sqlite")

        let (a, aErr) = try extractAt(data, store: fast, ratio: "2")
        XCTAssertEqual([a.precision, a.precision_source], ["bf16", "probe"])
        XCTAssertEqual(a.bf16_probe_ratio, 2)
        XCTAssertTrue(aErr.contains("precision bf16 (probe: bf16 convolutions 2.00x fp32's speed)"), aErr)
        XCTAssertEqual(try storedPrecisions(fast), ["bf16"])   // what was used, never "auto"

        // The probe now says slower, but the store's extraction with these settings is resumed.
        let (b, _) = try extractAt(data, store: fast, ratio: "0.5")
        XCTAssertEqual([b.precision, b.precision_source], ["bf16", "rule"])
        XCTAssertEqual([b.extraction_id, Int64(b.new_features), Int64(b.reused_features)], [a.extraction_id, 0, 4])
        XCTAssertEqual(try storedPrecisions(fast), ["bf16"])

        let (c, _) = try extractAt(data, store: slow, ratio: "0.5")
        XCTAssertEqual([c.precision, c.precision_source], ["fp32", "probe"])
        XCTAssertEqual(try storedPrecisions(slow), ["fp32"])

        // An unclear probe: the table decides (which way depends on this CPU; it is recorded either way).
        let (d, _) = try extractAt(data, store: dir.appendingPathComponent("unclear.sqlite"), ratio: "1")
        XCTAssertEqual(d.precision_source, "table")
        XCTAssertTrue(d.precision_reason.hasPrefix("table: ") && d.precision_reason.contains("probe ratio 1.00 inconclusive"), d.precision_reason)
        XCTAssertTrue(["fp32", "bf16"].contains(d.precision))
    }

    func testExplicitBF16WarnsWhereSlowerAndProceeds() throws {
        try skipWithoutBF16()
        let data = try makeDataset(perClass: 1, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let (s, stderr) = try extractAt(data, store: store, ratio: "0.5", ["--precision", "bf16", "--quiet"])
        XCTAssertEqual([s.precision, s.precision_source], ["bf16", "requested"])
        XCTAssertEqual(s.new_features, 2)
        let lines = stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, stderr)
        XCTAssertTrue(lines[0].hasPrefix("--precision bf16: on this CPU (") && lines[0].contains("run at 0.50x fp32's speed (50% slower, measured by the probe); proceeding in bf16"), stderr)
        // Faster there: nothing said. fp32 and --cache-blocks (auto) record fp32.
        let (_, quietErr) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet"])
        XCTAssertEqual(quietErr, "")
        let (f, _) = try extractAt(data, store: store, ratio: "2", ["--precision", "fp32", "--quiet"])
        XCTAssertEqual([f.precision, f.precision_source], ["fp32", "requested"])
        let cached = data.deletingLastPathComponent().appendingPathComponent("cached.sqlite")
        let (k, _) = try extractAt(data, store: cached, ratio: "2", ["--cache-blocks", "1", "--quiet"])
        XCTAssertEqual([k.precision, k.precision_source], ["fp32", "rule"])
        XCTAssertEqual(try storedPrecisions(store), ["bf16", "fp32"])
        XCTAssertEqual(try storedPrecisions(cached), ["fp32"])
    }

    func testBenchReportsTheResolvedPrecision() throws {
        try skipWithoutBF16()
        let r = try CLI.run("extract", ["bench", "--backbone", "efficientnet_lite0", "--precision", "auto", "--batch", "1",
                                        "--seconds", "0.01", "--json"], environment: ["WORKBENCH_BF16_RATIO": "0.5"])
        if r.stderr.contains("weights") && r.status != 0 { throw XCTSkip("Lite0 weights not installed (run scripts/setup): \(r.stderr)") }
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Report: Decodable { let precision: String; let precision_reason: String }
        let report = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(report.precision, "fp32")
        XCTAssertEqual(report.precision_reason, "probe: bf16 convolutions 0.50x fp32's speed")
    }
}

extension ExtractTests {
    /// Adding features to a bf16 extraction that tool 0.1.0 started (every convolution in bf16) says
    /// that the extraction's features will mix two computations, and proceeds; one this tool started
    /// says nothing.
    func testResumingABF16ExtractionOfToolZeroOneWarns() throws {
        try skipWithoutBF16()
        let data = try makeDataset(perClass: 1, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("older.sqlite")
        let (a, _) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet"])
        let (same, sameErr) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet", "--augment", "1"])
        XCTAssertEqual([same.extraction_id, Int64(same.new_features)], [a.extraction_id, 2])
        XCTAssertFalse(sameErr.contains("warning"), sameErr)
        // As a 0.1.0 build would have recorded it.
        try DatabaseQueue(path: store.path).write { try $0.execute(sql: "UPDATE extractions SET tool_version = '0.1.0'") }
        let (b, err) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet", "--augment", "2"])
        XCTAssertEqual([b.extraction_id, Int64(b.new_features), Int64(b.reused_features)], [a.extraction_id, 2, 4])
        XCTAssertTrue(err.contains("warning: extraction \(a.extraction_id) in \(store.path) was started by tool 0.1.0")
                      && err.contains("adds 2 feature rows") && err.contains("new --store"), err)
        // Nothing to add: nothing mixes, nothing said.
        let (_, again) = try extractAt(data, store: store, ratio: "2", ["--precision", "bf16", "--quiet", "--augment", "2"])
        XCTAssertFalse(again.contains("warning"), again)
    }
}
