import Foundation
import XCTest

/// `extract` end to end on small copies of scenes6 (made in a temporary folder at test time).
final class ExtractTests: XCTestCase {
    struct Summary: Decodable { let extraction_id: Int; let images: Int; let new_features: Int; let reused_features: Int; let failed: Int }
    struct Info: Decodable {
        struct Extraction: Decodable { let id: Int; let backbone: String; let features: Int }
        struct Failure: Decodable { let path: String; let reason: String }
        let images: Int
        let extractions: [Extraction]
        let failures: [Failure]
    }

    /// DIR/train/<class>/ and DIR/test/<class>/ with `perClass` images each, from scenes6.
    func makeDataset(classes: [String] = ["forest", "sea"], perClass: Int = 3, testPerClass: Int = 1) throws -> URL {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory().appendingPathComponent("data")
        for (split, n) in [("train", perClass), ("test", testPerClass)] where n > 0 {
            for c in classes {
                let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)")
                let dst = dir.appendingPathComponent("\(split)/\(c)")
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            }
        }
        return dir
    }

    func extract(_ data: URL, store: URL, _ extra: [String] = []) throws -> Summary {
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path,
                                        "--batch", "4", "--quiet", "--json"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Summary.self, from: Data(r.stdout.utf8))
    }

    func info(_ store: URL) throws -> Info {
        let r = try CLI.run("extract", ["store", "info", store.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Info.self, from: Data(r.stdout.utf8))
    }

    func testSecondRunComputesNothingAndMoreCopiesComputeOnlyTheMissing() throws {
        let data = try makeDataset()
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let first = try extract(data, store: store)
        XCTAssertEqual(first.images, 8)
        XCTAssertEqual(first.new_features, 8)
        let again = try extract(data, store: store)
        XCTAssertEqual(again.new_features, 0)
        XCTAssertEqual(again.reused_features, 8)
        let more = try extract(data, store: store, ["--augment", "2"])
        XCTAssertEqual(more.new_features, 16)
        XCTAssertEqual(more.reused_features, 8)
        XCTAssertEqual(more.extraction_id, first.extraction_id)
        // A renamed file is the same image; a new one is computed.
        let forest = data.appendingPathComponent("train/forest")
        let name = try FileManager.default.contentsOfDirectory(atPath: forest.path).sorted()[0]
        try FileManager.default.moveItem(at: forest.appendingPathComponent(name), to: forest.appendingPathComponent("renamed-" + name))
        XCTAssertEqual(try extract(data, store: store, ["--augment", "2"]).new_features, 0)
        let i = try info(store)
        XCTAssertEqual(i.images, 8)
        XCTAssertEqual(i.extractions.first?.features, 24)
        XCTAssertEqual(i.extractions.first?.backbone, "efficientnet_lite0")
    }

    func testBadFilesAreRecordedAndTheRunGoesOn() throws {
        let data = try makeDataset(perClass: 2, testPerClass: 0)
        let sea = data.appendingPathComponent("train/sea")
        try Data().write(to: sea.appendingPathComponent("empty.jpg"))
        try Data("hello".utf8).write(to: sea.appendingPathComponent("text.jpg"))
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let s = try extract(data, store: store)
        XCTAssertEqual(s.new_features, 4)
        XCTAssertEqual(s.failed, 2)
        let failures = try info(store).failures
        XCTAssertEqual(Set(failures.map { URL(fileURLWithPath: $0.path).lastPathComponent }), ["empty.jpg", "text.jpg"])
        XCTAssertTrue(failures.allSatisfy { !$0.reason.isEmpty })
    }

    /// A header that declares a zero dimension, a file over --max-file-bytes and a Latin-1 file name:
    /// the first two are recorded for that file only, the third is extracted; every good image is stored.
    func testHostileHeadersSizesAndNamesNeverStopTheRun() throws {
        let data = try makeDataset(perClass: 3, testPerClass: 0)
        let sea = data.appendingPathComponent("train/sea")
        let first = try FileManager.default.contentsOfDirectory(atPath: sea.path).sorted()[0]
        let jpeg = try Data(contentsOf: sea.appendingPathComponent(first))
        // A PNG whose IHDR claims width 0 (height 150), sorted first in its class.
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8))
        png += Data([0, 0, 0, 0, 0, 0, 0, 150, 8, 2, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82])
        try png.write(to: sea.appendingPathComponent("a-zero-width.png"))
        // An image over the byte limit given below.
        try (jpeg + Data(count: 600_000)).write(to: sea.appendingPathComponent("big.jpg"))
        // A Latin-1 name: "caf\xE9.jpg" (same bytes as a good image plus one, so a new image).
        let latin1 = Array(sea.path.utf8) + Array("/caf".utf8) + [0xE9] + Array(".jpg".utf8) + [0]
        let fd = latin1.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o644) } }
        let bytes = [UInt8](jpeg) + [0]
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
        close(fd)
        defer { _ = latin1.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { unlink($0.baseAddress!) } } }

        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let s = try extract(data, store: store, ["--max-file-bytes", "500000"])
        XCTAssertEqual(s.images, 7)
        XCTAssertEqual(s.new_features, 7)
        XCTAssertEqual(s.failed, 2)
        let failures = try info(store).failures
        let byName = Dictionary(uniqueKeysWithValues: failures.map { (URL(fileURLWithPath: $0.path).lastPathComponent, $0.reason) })
        XCTAssertEqual(Set(byName.keys), ["a-zero-width.png", "big.jpg"])
        XCTAssertTrue(byName["a-zero-width.png"]!.contains("PNG header declares a size of 0x150"), byName["a-zero-width.png"]!)
        XCTAssertTrue(byName["big.jpg"]!.contains("above the limit of 500000 bytes"), byName["big.jpg"]!)
    }

    func testThreeShardsMergeToExactlyTheUnshardedRows() throws {
        let data = try makeDataset(perClass: 4, testPerClass: 1)
        let dir = data.deletingLastPathComponent()
        let whole = dir.appendingPathComponent("whole.sqlite")
        let all = try extract(data, store: whole, ["--augment", "1"])
        var total = 0
        var shards: [String] = []
        for i in 0..<3 {
            let s = dir.appendingPathComponent("shard\(i).sqlite")
            total += try extract(data, store: s, ["--augment", "1", "--shard", "\(i)/3"]).new_features
            shards.append(s.path)
        }
        XCTAssertEqual(total, all.new_features)
        let merged = dir.appendingPathComponent("merged.sqlite")
        let r = try CLI.run("extract", ["store", "merge", merged.path] + shards)
        XCTAssertEqual(r.status, 0, r.stderr)
        let a = try info(whole), b = try info(merged)
        XCTAssertEqual(a.images, b.images)
        XCTAssertEqual(a.extractions.map(\.features), b.extractions.map(\.features))
        // Exported feature matrices are identical row for row (same images, same copies, same values).
        for (store, out) in [(whole, "ea"), (merged, "eb")] {
            let e = try CLI.run("extract", ["store", "export", "--store", store.path, "--extraction", "1", "--format", "csv",
                                            "--out", dir.appendingPathComponent(out + ".csv").path])
            XCTAssertEqual(e.status, 0, e.stderr)
        }
        let ea = try String(contentsOf: dir.appendingPathComponent("ea.csv"), encoding: .utf8).split(separator: "\n").sorted()
        let eb = try String(contentsOf: dir.appendingPathComponent("eb.csv"), encoding: .utf8).split(separator: "\n").sorted()
        XCTAssertEqual(ea, eb)
    }

    /// Starts `extract` (batch 2, 3 augmented copies) on `data` and SIGKILLs it once some batches are in.
    func extractAndKill(_ data: URL, store: URL, _ extra: [String] = []) throws {
        let p = Process()
        p.executableURL = try CLI.binary("extract")
        p.arguments = ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--batch", "2",
                       "--augment", "3", "--quiet"] + extra
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            usleep(100_000)
            // (info() asserts success: ask only once the run has created the store.)
            if FileManager.default.fileExists(atPath: store.path), let i = try? info(store), (i.extractions.first?.features ?? 0) >= 4 { break }
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func testKilledRunLeavesAValidStoreAndTheNextRunResumes() throws {
        let data = try makeDataset(classes: ["forest", "sea", "street"], perClass: 16, testPerClass: 0)
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        try extractAndKill(data, store: store)
        let partial = try info(store).extractions.first?.features ?? 0
        XCTAssertEqual(partial % 2, 0, "only whole batches are stored")
        XCTAssertLessThan(partial, 192)
        let resumed = try extract(data, store: store, ["--augment", "3"])
        XCTAssertEqual(resumed.reused_features, partial)
        XCTAssertEqual(resumed.new_features, 192 - partial)
    }

    func testFolderWithoutImagesIsAnErrorBeforeAnyWork() throws {
        let dir = try CLI.temporaryDirectory()
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("cats"), withIntermediateDirectories: true)
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", dir.path, "--store",
                                        dir.appendingPathComponent("f.sqlite").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(dir.lastPathComponent), r.stderr)
    }
}
