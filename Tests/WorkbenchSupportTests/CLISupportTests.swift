import ArgumentParser
import WorkbenchCLI
import WorkbenchSupport
import XCTest

final class CLISupportTests: XCTestCase {
    func testShardParsing() throws {
        let s = try Shard("1/3")
        XCTAssertEqual([s.index, s.count], [1, 3])
        XCTAssertEqual((0..<7).filter(s.owns(position:)), [1, 4])
        for bad in ["3/3", "-1/2", "1/0", "1", "a/b", "1/2/3", ""] {
            XCTAssertThrowsError(try Shard(bad), bad) { XCTAssertTrue("\($0)".contains("--shard must be i/n"), "\($0)") }
        }
    }

    /// Keys split by FNV-1a: every key in exactly one shard, the same one on every run.
    func testKeysSplitIntoDisjointShards() throws {
        let keys = (0..<300).map { "/class\($0 % 6)/img\($0).jpg" }
        let shards = try (0..<3).map { try Shard("\($0)/3") }
        for k in keys { XCTAssertEqual(shards.filter { $0.owns(key: k) }.count, 1, k) }
        for s in shards { XCTAssertGreaterThan(keys.filter(s.owns(key:)).count, 70) }
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c: 0 mod 2, 1 mod 3.
        XCTAssertTrue(try Shard("0/2").owns(key: "a"))
        XCTAssertTrue(try Shard("1/3").owns(key: "a"))
    }

    func testFailingPassesArgumentParserExitsThrough() throws {
        struct Broken: Error {}
        XCTAssertEqual(try failing { 5 }, 5)
        XCTAssertThrowsError(try failing { throw Broken() }) { XCTAssertEqual($0 as? ExitCode, .failure) }
        XCTAssertThrowsError(try failing { throw ExitCode(3) }) { XCTAssertEqual($0 as? ExitCode, ExitCode(3)) }
    }

    func testBackboneNameKey() {
        XCTAssertEqual(Set(["efficientnet_lite0", "EfficientNet-Lite0", "efficientnetlite0"].map(BackboneName.key)), ["efficientnetlite0"])
        XCTAssertNotEqual(BackboneName.key("resnet50"), BackboneName.key("resnet101"))
    }
}
