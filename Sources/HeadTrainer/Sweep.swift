import ArgumentParser
import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchCLI
import WorkbenchSupport

/// `train-head sweep CONFIG.yaml`: many heads over one or more extractions, resumable and shardable.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train a grid or random search of heads; every trial is kept in the store and a re-run resumes.",
        discussion: """
        Features are loaded once per extraction; trials run in parallel (one core each). Each trial is \
        saved as a head of the sweep under a stable key (hash of the extraction settings and the \
        head config), so an interrupted sweep skips its finished trials when run again, and \
        `--shard i/n` (i = 0..n-1) splits the trials between machines (merge the stores with \
        `extract store merge`). Ends with a leaderboard sorted by validation loss.

        Examples:
          train-head sweep configs/scenes-lite0-sweep.yaml --store features.sqlite
          train-head sweep configs/scenes-experiment.yaml --jobs 2 --json
          train-head sweep configs/scenes-lite0-sweep.yaml --shard 0/2   # the other machine: --shard 1/2
        """)

    @Argument(help: "Sweep file (YAML); see configs/scenes-lite0-sweep.yaml.") var config: String
    @Option(help: "Feature store written by `extract` (default: the file's `store:`, else features.sqlite).") var store: String?
    @Option(help: "Trials trained at the same time (default: the number of cores).") var jobs: Int?
    @Option(help: "Run only the trials of shard i of n (0-based, e.g. 0/2), a fixed split of the trial list.") var shard: String?
    @Flag(help: "Print one JSON object: every trial and the best one.") var json = false
    @Option(help: "Leaderboard rows to print (0: all).") var top = 0
    @Flag(help: "List the planned trials and exit without training.") var dryRun = false
    @Flag(help: "No per-trial progress lines on stderr.") var quiet = false

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let shard { _ = try Shard(shard) }
        if top < 0 { throw ValidationError("--top must be 0 (all) or more") }
    }

    func run() throws { try failing { try runSweep() } }

    func note(_ s: String) { if !quiet || s.hasPrefix("warning") { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

    func runSweep() throws {
        let spec = try SweepSpec.load(path: config)
        let storePath = store ?? spec.store ?? "features.sqlite"
        let db = try StoreData.open(storePath)
        let configs = try spec.configurations()

        // Extractions named in the file; a missing backbone is reported and skipped.
        // `a+b` (concatenated features) is missing when any of its backbones is.
        var extractions: [ExtractionSet] = [], missing: [String] = []
        for ref in spec.extractions {
            let e: ExtractionSet
            switch ref {
            case .backbone(let b):
                let absent = try StoreData.split(b).filter { part in
                    try !db.extractions().contains { BackboneName.key($0.settings.backbone) == BackboneName.key(part) }
                }
                if let first = absent.first {
                    missing.append(b)
                    let roots = try db.datasets().map(\.root)
                    let data = roots.count == 1 ? roots[0] : "DATASET_DIR"
                    note("warning: \(storePath) has no features for backbone \(first); run `extract --backbone \(first) --data \(data) "
                         + "--store \(storePath)` and run this sweep again (it resumes). Continuing without \(b).")
                    continue
                }
                e = try StoreData.extractionSet(in: db, ids: nil, backbone: b)
            case .id(let id):
                guard let found = try db.extraction(id: id) else {
                    missing.append("extraction \(id)")
                    note("warning: \(storePath) has no extraction \(id) (see `extract store info \(storePath)`); continuing without it.")
                    continue
                }
                e = ExtractionSet(found)
            }
            if !extractions.contains(where: { $0.settingsKey == e.settingsKey }) { extractions.append(e) }
        }
        guard !extractions.isEmpty else {
            throw StoreData.Failure(description: "none of the extractions of \(config) (\(spec.extractions.map(\.description).joined(separator: ", "))) "
                                    + "is in \(storePath); extract features first (see scripts/extract-all.sh)")
        }

        // The plan: every (extraction, config), in file order; a shard takes every n-th trial.
        var plan: [PlannedTrial] = []
        var skipped = 0
        for e in extractions {
            for c in configs {
                // Fine-tuning (`unfreeze`) trains the blocks of one backbone: not on concatenated features.
                if c.unfreeze > 0 && e.parts.count > 1 { skipped += 1; continue }
                plan.append(PlannedTrial(index: plan.count, features: e, config: c,
                                         key: SweepSpec.trialKey(extractionSettingsKey: e.settingsKey, config: c)))
            }
        }
        if skipped > 0 { note("\(skipped) combination(s) of unfreeze > 0 with concatenated backbones left out: fine-tuning trains one backbone's blocks") }
        let shardSpec = try shard.map(Shard.init)
        let mine = shardSpec.map { s in plan.filter { s.owns(position: $0.index) } } ?? plan

        if dryRun {
            for t in mine { print("\(t.key)  \(t.features.description)  \(SweepSpec.json(t.config))") }
            note("\(mine.count) trials" + (shardSpec != nil ? " in this shard (of \(plan.count))" : ""))
            return
        }

        let sweep = try db.sweep(name: spec.name, config: spec.canonicalJSON)
        if Self.canonical(sweep.config, ignoringTrials: true) != Self.canonical(spec.canonicalJSON, ignoringTrials: true) {
            throw StoreData.Failure(description: "\(storePath) already has a sweep named \"\(spec.name)\" with different settings "
                                    + "(stored: \(sweep.config)). Give this sweep another `name:` in \(config), "
                                    + "or restore the file's earlier settings to resume it.")
        }
        let finished = try db.trialKeys(sweepID: sweep.id)
        let pending = mine.filter { !finished.contains($0.key) }
        let jobCount = max(1, min(jobs ?? ProcessInfo.processInfo.activeProcessorCount, max(pending.count, 1)))
        note("sweep \"\(spec.name)\" (id \(sweep.id)) in \(storePath): \(plan.count) trials (\(extractions.count) extraction(s) x "
             + "\(configs.count) configs)" + (shardSpec.map { ", shard \($0.index)/\($0.count): \(mine.count)" } ?? "")
             + "; \(mine.count - pending.count) already finished, \(pending.count) to train with \(jobCount) job(s)")

        // Features once per extraction that still has work.
        var data: [String: SweepRunner.Features] = [:]
        for e in extractions where pending.contains(where: { $0.features.settingsKey == e.settingsKey }) {
            let mine = pending.filter { $0.features.settingsKey == e.settingsKey }
            let asked = mine.map(\.config.augmented)
            let (train, test) = try StoreData.load(db, e, maxAugIndex: asked.contains(nil) ? nil : asked.compactMap { $0 }.max(),
                                                   testCopies: mine.map(\.config.tta).max() ?? 0)
            let copies = Int(train.augIndex.max() ?? 0)
            let wanted = asked.compactMap { $0 }.max() ?? 0
            if wanted > copies {
                note("warning: extraction \(e.ids) (\(e.backbone)) stores copies 0...\(copies) only; trials asking for "
                     + "augmented: \(wanted) use those. Add copies with `extract --backbone \(e.primary.settings.backbone) --augment \(wanted) ...`.")
            }
            data[e.settingsKey] = SweepRunner.Features(train: train, test: test, unlabeled: try StoreData.unlabeled(db, e))
        }

        let runner = SweepRunner(db: db, sweepID: sweep.id, data: data, quiet: quiet, total: pending.count, keys: spec.columnKeys)
        let failures = runner.run(pending, jobs: jobCount)

        // The leaderboard comes from the store: the same for a resumed and an uninterrupted run.
        let planKeys = Set(plan.map(\.key))
        let results = TrialResult.ranked(try StoredResults.trials(db, sweepID: sweep.id).filter { planKeys.contains($0.id) })
        if json {
            let out = SweepJSON(sweep: spec.name, sweep_id: sweep.id, store: storePath, planned: plan.count,
                                shard_trials: mine.count, ran: pending.count - failures.count,
                                skipped: mine.count - pending.count, missing: missing,
                                failed: failures.map { SweepJSON.FailedTrial(id: $0.key, error: $0.error) },
                                trials: results.map(\.json), best: results.first?.id)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(out), as: UTF8.self))
        } else {
            print("sweep \"\(spec.name)\": \(results.count) of \(plan.count) trials in \(storePath), sorted by validation loss")
            print(Leaderboard.text(results, keys: ["backbone"] + spec.columnKeys, limit: top > 0 ? top : nil), terminator: "")
            if let best = results.first {
                print("best: \(best.id) (head \(best.headID), \(best.backbone)): \(best.summary)")
            }
            if !missing.isEmpty { print("not trained (no features in the store): \(missing.joined(separator: ", "))") }
        }
        if !failures.isEmpty {
            for f in failures { FileHandle.standardError.write(Data("error: trial \(f.key): \(f.error)\n".utf8)) }
            throw ExitCode.failure
        }
    }

    /// Sorted-key JSON. `ignoringTrials` drops a random search's trial count: the sampler draws the
    /// same sequence, so raising `trials` extends a sweep (its first trials are the ones already run).
    static func canonical(_ json: String, ignoringTrials: Bool = false) -> String {
        guard var o = try? CanonicalJSON(parsing: json) else { return json }
        if ignoringTrials, case .object(var m) = o { m["trials"] = nil; o = .object(m) }
        return o.text
    }

    struct SweepJSON: Encodable {
        struct FailedTrial: Encodable { let id: String; let error: String }
        let sweep: String
        let sweep_id: Int64
        let store: String
        let planned: Int
        let shard_trials: Int
        let ran: Int
        let skipped: Int
        let missing: [String]
        let failed: [FailedTrial]
        let trials: [TrialResult.JSON]
        let best: String?
    }
}

/// One trial of the plan.
struct PlannedTrial {
    let index: Int
    let features: ExtractionSet
    let config: HeadConfig
    let key: String
}
