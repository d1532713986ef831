import Foundation
import XCTest

/// README's many-machines recipe on a real scheduler: a one-node Slurm cluster started on this machine
/// (tools/slurm/local-cluster.sh; Debian's slurmctld, slurmd and munge, as root), a job array of
/// `extract --shard i/4` into one store per task, `extract store merge`, and the same for
/// `train-head sweep --shard i/2`: row for row and trial for trial equal to the unsharded runs.
///
/// Skipped, with the reason, where Slurm is not installed or the test is not root (scripts/setup
/// installs Slurm when CI=true or with --slurm).
final class SlurmTests: XCTestCase {
    static let script = CLI.repo.appendingPathComponent("tools/slurm/local-cluster.sh")

    /// Runs a shell command with system(3), output to a file. (Foundation's Process.waitUntilExit was
    /// seen to hang here once the command had started daemons, its child a zombie never reaped.)
    private func shell(_ command: String, env: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let log = try CLI.temporaryDirectory().appendingPathComponent("shell.log")
        let exports = env.map { "export \($0.key)='\($0.value)'; " }.joined()
        let status = system("\(exports)( \(command) ) </dev/null >'\(log.path)' 2>&1")
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (status == 0 ? 0 : Int32(max(1, status >> 8)), output)
    }

    func testJobArrayShardsMergeToTheUnshardedExtractionAndSweep() throws {
        guard getuid() == 0 else { throw XCTSkip("Slurm test needs root (slurmd runs the jobs)") }
        for tool in ["slurmctld", "slurmd", "sbatch", "munged"] where try shell("command -v \(tool)").status != 0 {
            throw XCTSkip("Slurm test: \(tool) is not installed (scripts/setup --slurm installs slurmctld, slurmd, slurm-client and munge)")
        }
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory()
        let cluster = dir.appendingPathComponent("cluster")
        let up = try shell("'\(Self.script.path)' start '\(cluster.path)'")
        XCTAssertEqual(up.status, 0, up.output)
        guard up.status == 0 else { return }
        defer { _ = try? shell("'\(Self.script.path)' stop '\(cluster.path)'") }
        let slurm = ["SLURM_CONF": cluster.appendingPathComponent("slurm.conf").path]

        // A small copy of scenes6: 3 classes x (6 train + 1 test).
        let data = dir.appendingPathComponent("data")
        for (split, n) in [("train", 6), ("test", 1)] {
            for c in ["forest", "glacier", "street"] {
                let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)"), dst = data.appendingPathComponent("\(split)/\(c)")
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            }
        }
        let extract = try CLI.binary("extract").path, trainHead = try CLI.binary("train-head").path
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("shards"), withIntermediateDirectories: true)

        // README's job array, as a batch script.
        let job = dir.appendingPathComponent("extract.sbatch")
        try """
            #!/bin/bash
            #SBATCH --array=0-3
            #SBATCH --output=\(dir.path)/extract-%a.log
            '\(extract)' --backbone efficientnet_lite0 --data '\(data.path)' --augment 1 \\
                --shard ${SLURM_ARRAY_TASK_ID}/4 --store '\(dir.path)'/shards/s${SLURM_ARRAY_TASK_ID}.sqlite --quiet
            """.write(to: job, atomically: true, encoding: .utf8)
        let array = try shell("sbatch --wait '\(job.path)'", env: slurm)
        XCTAssertEqual(array.status, 0, array.output + ((try? String(contentsOf: dir.appendingPathComponent("extract-0.log"), encoding: .utf8)) ?? ""))

        let merged = dir.appendingPathComponent("merged.sqlite"), whole = dir.appendingPathComponent("whole.sqlite")
        let shards = (0..<4).map { dir.appendingPathComponent("shards/s\($0).sqlite").path }
        XCTAssertEqual(try CLI.run("extract", ["store", "merge", merged.path] + shards).status, 0)
        XCTAssertEqual(try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.path, "--augment", "1",
                                               "--store", whole.path, "--quiet"]).status, 0)
        func rows(_ store: URL) throws -> [Substring] {
            let out = dir.appendingPathComponent(store.lastPathComponent + ".csv")
            let r = try CLI.run("extract", ["store", "export", "--store", store.path, "--extraction", "1", "--format", "csv", "--out", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try String(contentsOf: out, encoding: .utf8).split(separator: "\n").sorted()
        }
        let wholeRows = try rows(whole)
        XCTAssertEqual(wholeRows.count, 1 + 21 * 2, "header + 21 images x 2 copies")
        XCTAssertEqual(try rows(merged), wholeRows, "the merged shards hold exactly the unsharded extraction")

        // The sweep, split over a 2-task array, each task on its own copy of the store.
        let sweep = dir.appendingPathComponent("sweep.yaml")
        try """
            name: slurm-sweep
            extractions: [efficientnet_lite0]
            defaults: {epochs: 40, patience: 0, batch_size: 8, val_split: 0.25}
            parameters:
              hidden: [8, 16]
              lr: [1e-3, 3.0e-3]
            """.write(to: sweep, atomically: true, encoding: .utf8)
        for i in 0..<2 { try FileManager.default.copyItem(at: whole, to: dir.appendingPathComponent("sweep\(i).sqlite")) }
        let sweepJob = dir.appendingPathComponent("sweep.sbatch")
        try """
            #!/bin/bash
            #SBATCH --array=0-1
            #SBATCH --output=\(dir.path)/sweep-%a.log
            '\(trainHead)' sweep '\(sweep.path)' --store '\(dir.path)'/sweep${SLURM_ARRAY_TASK_ID}.sqlite --shard ${SLURM_ARRAY_TASK_ID}/2 --jobs 1 --quiet
            """.write(to: sweepJob, atomically: true, encoding: .utf8)
        let sweepArray = try shell("sbatch --wait '\(sweepJob.path)'", env: slurm)
        XCTAssertEqual(sweepArray.status, 0, sweepArray.output)
        let sweepMerged = dir.appendingPathComponent("sweep-merged.sqlite")
        XCTAssertEqual(try CLI.run("extract", ["store", "merge", sweepMerged.path] + (0..<2).map { dir.appendingPathComponent("sweep\($0).sqlite").path }).status, 0)

        func leaderboard(_ store: URL) throws -> (ran: Int, trials: [NSDictionary]) {
            let r = try CLI.run("train-head", ["sweep", sweep.path, "--store", store.path, "--jobs", "1", "--json", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let trials = ((json["trials"] as? [[String: Any]]) ?? []).map { t -> NSDictionary in
                var t = t
                t["head_id"] = nil
                return t as NSDictionary
            }
            return ((json["ran"] as? Int) ?? -1, trials)
        }
        let fromShards = try leaderboard(sweepMerged)
        XCTAssertEqual(fromShards.ran, 0, "every trial was trained by the array")
        XCTAssertEqual(fromShards.trials.count, 4)
        XCTAssertEqual(fromShards.trials, try leaderboard(whole).trials, "same trials and metrics as the unsharded sweep")
    }
}
