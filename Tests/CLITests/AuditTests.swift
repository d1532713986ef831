import Foundation
import XCTest

/// Byte-identical images under two classes, in train and test, and twice in a class; and a
/// near-duplicate (same pixels, other bytes) under another class: `extract` says so in one line,
/// `extract store audit` lists them, and the conflict policy decides what train-head sees.
final class AuditTests: XCTestCase {
    struct Audit: Decodable {
        struct Group: Decodable { let sha256: String; let paths: [String]; let classes: [String]; let splits: [String] }
        struct Near: Decodable { let a: String; let b: String; let cosine: Double }
        let conflicts: [Group]
        let leaks: [Group]
        let duplicates: [Group]
        let near: [Near]
    }

    func testConflictsLeaksDuplicatesAndNearDuplicates() throws {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory(), data = dir.appendingPathComponent("data")
        var first: [String: URL] = [:]
        for (split, n) in [("train", 3), ("test", 1)] {
            for c in ["forest", "sea"] {
                let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)"), dst = data.appendingPathComponent("\(split)/\(c)")
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                    if first["\(split)/\(c)"] == nil { first["\(split)/\(c)"] = dst.appendingPathComponent(f) }
                }
            }
        }
        let forest = try Data(contentsOf: first["train/forest"]!)
        try forest.write(to: data.appendingPathComponent("train/sea/zz-conflict.jpg"))                      // forest bytes under sea
        try Data(contentsOf: first["test/sea"]!).write(to: data.appendingPathComponent("train/sea/zz-leak.jpg"))   // a test image in train
        let sea = try Data(contentsOf: first["train/sea"]!)
        try sea.write(to: data.appendingPathComponent("train/sea/zz-dup.jpg"))                             // twice in sea
        let other = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("train/forest").path).sorted()[1]
        let near = try Data(contentsOf: data.appendingPathComponent("train/forest/\(other)")) + Data([0])   // same pixels, other bytes
        try near.write(to: data.appendingPathComponent("train/sea/zz-near.jpg"))

        let store = dir.appendingPathComponent("f.sqlite")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--batch", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("dataset audit: 1 image(s) under two or more classes, 1 in both train and test, 1 duplicated within a class"), r.stderr)

        let a = try CLI.run("extract", ["store", "audit", store.path, "--near", "--json"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let audit = try JSONDecoder().decode(Audit.self, from: Data(a.stdout.utf8))
        XCTAssertEqual(audit.conflicts.map(\.classes), [["forest", "sea"]])
        XCTAssertEqual(audit.conflicts.first?.paths.last, "train/sea/zz-conflict.jpg")
        XCTAssertEqual(audit.leaks.map(\.splits), [["test", "train"]])
        XCTAssertEqual(audit.duplicates.map { $0.paths.count }, [2])
        XCTAssertEqual(audit.duplicates.first?.paths.last, "train/sea/zz-dup.jpg")
        let pair = try XCTUnwrap(audit.near.first { $0.a.hasSuffix("zz-near.jpg") || $0.b.hasSuffix("zz-near.jpg") }, a.stdout)
        XCTAssertGreaterThan(pair.cosine, 0.9999)
        XCTAssertTrue(pair.a.hasSuffix(other) || pair.b.hasSuffix(other))

        // Default policy (drop): the conflicting image is out of training and evaluation.
        func excluded() throws -> Int {
            let t = try CLI.run("train-head", ["--backbone", "efficientnet_lite0", "--store", store.path, "--json", "--epochs", "5"])
            XCTAssertEqual(t.status, 0, t.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(json["excluded_images"] as? Int)
        }
        XCTAssertEqual(try excluded(), 1)
        // keep-last labels it with its last path's class (sea) and keeps it.
        let k = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--store", store.path, "--conflicts", "keep-last", "--quiet"])
        XCTAssertEqual(k.status, 0, k.stderr)
        XCTAssertEqual(try excluded(), 0)
    }
}
