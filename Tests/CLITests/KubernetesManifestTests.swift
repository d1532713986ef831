import Foundation
import XCTest
import Yams

/// deploy/kubernetes/extract-indexed-job.yaml: an Indexed Job whose pods take shards 0..N-1 of N, each
/// into its own store, as README's recipe and `extract --shard` expect.
final class KubernetesManifestTests: XCTestCase {
    func testIndexedJobShardArithmetic() throws {
        let url = CLI.repo.appendingPathComponent("deploy/kubernetes/extract-indexed-job.yaml")
        let job = try XCTUnwrap(try Yams.load(yaml: String(contentsOf: url, encoding: .utf8)) as? [String: Any])
        XCTAssertEqual(job["kind"] as? String, "Job")
        let spec = try XCTUnwrap(job["spec"] as? [String: Any])
        XCTAssertEqual(spec["completionMode"] as? String, "Indexed")
        let completions = try XCTUnwrap(spec["completions"] as? Int)
        XCTAssertEqual(spec["parallelism"] as? Int, completions, "every shard runs at once")
        let pod = try XCTUnwrap((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
        let command = try XCTUnwrap(container["command"] as? [String]).joined(separator: " ")
        XCTAssertTrue(command.contains("--shard ${JOB_COMPLETION_INDEX}/\(completions) "), "shard count must equal completions: \(command)")
        XCTAssertTrue(command.contains("--store /out/s${JOB_COMPLETION_INDEX}.sqlite"), "one store per index: \(command)")
        // The shards the indexes produce are exactly 0/N ... (N-1)/N, each accepted by `extract`.
        for index in 0..<completions {
            let shard = command.replacingOccurrences(of: "${JOB_COMPLETION_INDEX}", with: "\(index)")
            XCTAssertTrue(shard.contains("--shard \(index)/\(completions) "))
            let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", "/nonexistent-\(index)",
                                            "--shard", "\(index)/\(completions)"])
            XCTAssertFalse(r.stderr.contains("--shard"), "extract accepts --shard \(index)/\(completions): \(r.stderr)")
        }
    }
}
