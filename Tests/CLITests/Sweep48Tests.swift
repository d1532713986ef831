import Foundation
import XCTest

/// The resume check at full size: 48 configurations on EfficientNet-Lite0 features of all
/// of scenes6 (1,800 training and 600 test images), killed halfway with SIGKILL and resumed.
final class Sweep48Tests: XCTestCase {
    /// 3 hidden x 2 dropout x 2 L2 x 4 lr = 48 trials, 12 epochs each with early stopping on.
    static let sweepYAML = """
        name: resume-48
        extractions: [efficientnet_lite0]
        defaults: {epochs: 12, patience: 3, batch_size: 32, val_split: 0.2, seed: 7}
        parameters:
          hidden: [32, 64, 128]
          dropout: [0.2, 0.5]
          l2: [1.0e-5, 1.0e-4]
          lr: [3.0e-4, 1.0e-3, 2.0e-3, 3.0e-3]
        """

    func testFortyEightTrialsOnScenes6ResumeAfterAKillHalfwayWithTheSameLeaderboard() throws {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory()
        let whole = dir.appendingPathComponent("whole.sqlite"), killed = dir.appendingPathComponent("killed.sqlite")
        let x = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", CLI.scenes6.path, "--store", whole.path, "--quiet"])
        if x.status != 0 && x.stderr.contains("weights") { throw XCTSkip("Lite0 weights not installed (run scripts/setup): \(x.stderr)") }
        XCTAssertEqual(x.status, 0, x.stderr)
        try FileManager.default.copyItem(at: whole, to: killed)
        let file = dir.appendingPathComponent("sweep.yaml")
        try Self.sweepYAML.write(to: file, atomically: true, encoding: .utf8)

        func sweep(_ store: URL) throws -> [String: Any] {
            let r = try CLI.run("train-head", ["sweep", file.path, "--store", store.path, "--json", "--quiet", "--jobs", "2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        }
        func leaderboard(_ json: [String: Any]) -> [NSDictionary] {
            ((json["trials"] as? [[String: Any]]) ?? []).map { t in
                var t = t
                t["head_id"] = nil   // store-specific
                return t as NSDictionary
            }
        }
        let reference = try sweep(whole)
        XCTAssertEqual(reference["ran"] as? Int, 48)

        // Kill with SIGKILL once 24 trials are saved (progress lines "[k/48]" follow each save).
        let run = try CLI.runAndKill("train-head", ["sweep", file.path, "--store", killed.path, "--jobs", "2"], when: "[24/48]")
        XCTAssertTrue(run.stderr.contains("[24/48]"), run.stderr)
        XCTAssertTrue(run.killed, "the sweep was killed before it finished")

        let resumed = try sweep(killed)
        let skipped = try XCTUnwrap(resumed["skipped"] as? Int)
        XCTAssertGreaterThanOrEqual(skipped, 24, "every trial saved before the kill is kept")
        XCTAssertLessThan(skipped, 48)
        XCTAssertEqual(resumed["ran"] as? Int, 48 - skipped, "finished trials are not trained again")
        XCTAssertEqual(leaderboard(resumed).count, 48)
        XCTAssertEqual(leaderboard(resumed), leaderboard(reference), "same trials, configs and metrics as the uninterrupted run")
        XCTAssertEqual(resumed["best"] as? String, reference["best"] as? String)
    }
}
