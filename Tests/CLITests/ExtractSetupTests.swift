import Foundation
import XCTest

/// What `extract` does before its pipeline: files are identified on all cores and the backbone loads
/// (a requested fp32 or bf16 also compiles) on a thread of its own. The records, their order and the
/// errors are those of one thread doing it all in turn.
final class ExtractSetupTests: XCTestCase {
    func extract(_ data: URL, store: URL, _ extra: [String]) throws -> CLI.Result {
        try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--batch", "4"] + extra)
    }

    /// The failures' paths, in the order the store recorded them.
    func failurePaths(_ store: URL) throws -> [String] {
        struct Info: Decodable { struct Failure: Decodable { let path: String }; let images: Int; let failures: [Failure] }
        let r = try CLI.run("extract", ["store", "info", store.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Info.self, from: Data(r.stdout.utf8)).failures.map { URL(fileURLWithPath: $0.path).lastPathComponent }
    }

    /// The files named by stderr's `skipped PATH: reason` lines, in order.
    func skipped(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("skipped ") }.map {
            URL(fileURLWithPath: String($0.dropFirst("skipped ".count).prefix { $0 != ":" })).lastPathComponent
        }
    }

    /// 40 bad files among 6 good ones, spread over every chunk identify splits the files into: each
    /// is recorded once, in scan order (by path within a class), in the store and on stderr.
    func testFailuresAreRecordedInScanOrder() throws {
        let data = try CLI.smallDataset(perClass: 3, testPerClass: 0)
        let names = (0..<40).map { String(format: "bad-%02d.jpg", $0) }
        for (i, name) in names.enumerated() {
            try Data("not an image \(i)".utf8).write(to: data.appendingPathComponent("train/\(i % 2 == 0 ? "forest" : "sea")/\(name)"))
        }
        let expected = names.enumerated().filter { $0.offset % 2 == 0 }.map(\.element) + names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let r = try extract(data, store: store, ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(skipped(r.stderr), expected)
        XCTAssertEqual(try failurePaths(store), expected)
        XCTAssertTrue(r.stdout.contains("\"new_features\" : 6"), r.stdout)
    }

    /// A weights file that cannot be read fails the run where loading it always did: after the
    /// files are identified and recorded (the bad one reported first), with the file named.
    func testAWeightsErrorComesAfterTheFilesAreIdentified() throws {
        let data = try CLI.smallDataset(perClass: 2, testPerClass: 0)
        try Data("hello".utf8).write(to: data.appendingPathComponent("train/sea/text.jpg"))
        let dir = data.deletingLastPathComponent()
        let weights = dir.appendingPathComponent("junk.pth")
        try Data("junk\n".utf8).write(to: weights)
        let store = dir.appendingPathComponent("f.sqlite")
        for precision in ["fp32", "auto"] {   // compiled ahead, and loaded only
            let r = try extract(data, store: store, ["--weights", weights.path, "--precision", precision])
            XCTAssertNotEqual(r.status, 0)
            let lines = r.stderr.split(separator: "\n").map(String.init)
            let error = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("error: ") }, r.stderr)
            XCTAssertTrue(lines[error].contains(weights.path) && lines[error].contains("unrecognized weight file"), lines[error])
            XCTAssertEqual(skipped(lines[..<error].joined(separator: "\n")), ["text.jpg"])
        }
        XCTAssertEqual(try failurePaths(store), ["text.jpg", "text.jpg"])
    }

    /// A store that cannot be opened fails the run with its own error (the files being read
    /// meanwhile are dropped), as when the store was opened before any file was read.
    func testAStoreErrorStopsTheRunWhileFilesAreRead() throws {
        let data = try CLI.smallDataset(perClass: 3, testPerClass: 1)
        let store = data.deletingLastPathComponent().appendingPathComponent("not-a-store.sqlite")
        try Data("not a store".utf8).write(to: store)
        let r = try extract(data, store: store, ["--precision", "fp32"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: feature store \(store.path) is damaged"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: store), Data("not a store".utf8))
    }

    /// fp32 compiled ahead (--precision fp32) computes exactly what fp32 compiled after identify
    /// computes (auto with --cache-blocks picks fp32 by rule): the exported features are equal.
    func testCompiledAheadGivesTheSameFeatures() throws {
        let data = try CLI.smallDataset(perClass: 2, testPerClass: 1)
        let dir = data.deletingLastPathComponent()
        var exported: [[Substring]] = []
        for (name, precision) in [("ahead", "fp32"), ("after", "auto")] {
            let store = dir.appendingPathComponent("\(name).sqlite"), out = dir.appendingPathComponent("\(name).csv")
            let r = try extract(data, store: store, ["--precision", precision, "--cache-blocks", "1", "--quiet", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("\"precision\" : \"fp32\""), r.stdout)
            let e = try CLI.run("extract", ["store", "export", "--store", store.path, "--extraction", "1", "--format", "csv", "--out", out.path])
            XCTAssertEqual(e.status, 0, e.stderr)
            exported.append(try String(contentsOf: out, encoding: .utf8).split(separator: "\n").sorted())
        }
        XCTAssertEqual(exported[0].count, 7)   // header and 6 images
        XCTAssertEqual(exported[0], exported[1])
    }

    /// Batches are committed by a writer thread while the engine computes the next: when the store
    /// cannot grow (the file-size limit of a full store's size, `ulimit -f`, SIGXFSZ ignored so the
    /// write fails with EFBIG), the run stops with the store's error, and every batch committed
    /// before it is kept: a second run reuses them and computes only the rest.
    func testAStoreThatCannotGrowKeepsTheBatchesWrittenBefore() throws {
        let data = try CLI.smallDataset(perClass: 30, testPerClass: 0)
        let dir = data.deletingLastPathComponent()
        let full = dir.appendingPathComponent("full.sqlite"), store = dir.appendingPathComponent("s.sqlite")
        let args = ["--data", data.path, "--batch", "4", "--precision", "fp32", "--quiet", "--json"]
        XCTAssertEqual(try extract(data, store: full, ["--precision", "fp32", "--quiet"]).status, 0)
        let kib = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: full.path)[.size] as? Int) / 1024
        let binary = try CLI.binary("extract").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "trap '' XFSZ; ulimit -f \(kib); exec \"$0\" \"$@\"", binary, "--backbone", "efficientnet_lite0",
                       "--store", store.path] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0, stderr)
        XCTAssertTrue(stderr.contains("storing features of extraction") && stderr.contains("Everything committed before this batch is kept"), stderr)
        struct Summary: Decodable { let new_features: Int; let reused_features: Int }
        let again = try extract(data, store: store, args)
        XCTAssertEqual(again.status, 0, again.stderr)
        let s = try JSONDecoder().decode(Summary.self, from: Data(again.stdout.utf8))
        XCTAssertEqual(s.new_features + s.reused_features, 60)
        XCTAssertGreaterThan(s.reused_features, 0, "batches committed before the error are kept")
        XCTAssertEqual(s.reused_features % 4, 0, "whole batches")
    }
}
