import COpenBLAS
import FeatureStore
import Foundation
import FineTuneCore
import HeadTrainerCore

/// Trains sweep trials on `jobs` threads, one trial per thread at a time, each single-threaded.
///
/// Small heads do not scale across cores within one trial (a 32-row step is ~100 us of work), but
/// independent trials do: N trials on N cores is ~N times the throughput. Every finished trial is
/// saved in its own transaction right away, so a killed sweep loses only the trials in flight.
final class SweepRunner {
    struct Features {
        let train: LabeledFeatures
        let test: LabeledFeatures?
        /// Images stored without a class, for `pseudo_label`.
        var unlabeled: LabeledFeatures? = nil
    }
    struct Failure { let key: String; let error: String }

    let db: FeatureStore
    let sweepID: Int64
    let data: [String: Features]
    let quiet: Bool
    let total: Int
    /// Settings named in progress lines (those the sweep varies).
    let keys: [String]

    /// Guards the queue position, the store (one SQLite connection) and stderr.
    private let lock = NSLock()
    private var next = 0
    private var done = 0
    private var failures: [Failure] = []
    private var stop = false
    /// Block inputs per (extraction, cached blocks), read once and shared by the fine-tuning trials
    /// (the trials only read them, each from its own thread: `RowFile` reads with pread). Its own lock: a read takes seconds.
    private var blockInputs: [String: (train: BlockInputs, test: BlockInputs?)] = [:]
    private let blockInputsLock = NSLock()

    init(db: FeatureStore, sweepID: Int64, data: [String: Features], quiet: Bool, total: Int, keys: [String]) {
        self.db = db; self.sweepID = sweepID; self.data = data; self.quiet = quiet; self.total = total; self.keys = keys
    }

    /// Runs `trials` (longest first, so the last trials finishing together are short) and returns
    /// the trials that failed. A failure to save stops the sweep (the store is unusable); a failure
    /// to train one trial is reported and the others go on.
    func run(_ trials: [PlannedTrial], jobs: Int) -> [Failure] {
        guard !trials.isEmpty else { return [] }
        let queue = trials.sorted { (Self.cost($0), $1.index) > (Self.cost($1), $0.index) }
        // OpenBLAS's thread count is process-wide and each trainHead call saves and restores it: set 1
        // once for the whole sweep, so concurrent trials never restore a multi-threaded setting.
        let previous = openblas_get_num_threads()
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(previous) }
        SweepRunner.parallel(jobs: jobs) { self.work(queue) }
        return failures
    }

    /// Runs `body` on `jobs` threads at once and waits for all of them. Threads (not
    /// `concurrentPerform`) so that `--jobs` above the core count really runs that many.
    static func parallel(jobs: Int, _ body: @escaping () -> Void) {
        let group = DispatchGroup()
        for _ in 0..<max(1, jobs) {
            group.enter()
            let thread = Thread {
                body()
                group.leave()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        group.wait()
    }

    /// Relative training cost, for scheduling only: rows x width (linear L-BFGS heads are cheap).
    static func cost(_ t: PlannedTrial) -> Double {
        let c = t.config
        let copies = Double((c.augmented ?? 2) + 1)
        let width = c.effectiveSolver == .lbfgs ? 8.0 : Double(c.hidden + 32)
        return copies * width * (c.lr < 3e-4 ? 2 : 1) * (c.hidden > 0 ? 32 / Double(c.batchSize) : 1) * (c.unfreeze > 0 ? 1000 : 1)
    }

    private func work(_ queue: [PlannedTrial]) {
        while true {
            lock.lock()
            if stop || next >= queue.count { lock.unlock(); return }
            let t = queue[next]
            next += 1
            lock.unlock()
            guard let d = data[t.features.settingsKey] else { continue }
            let start = Date()
            do {
                // A trial with `unfreeze` fine-tunes blocks on the extraction's block cache (read once per sweep).
                var tuned: (result: FineTuneResult, head: HeadRecord, blocks: FineTunedBlocks)? = nil
                if t.config.unfreeze > 0 {
                    guard t.features.parts.count == 1 else {
                        throw StoreData.Failure(description: "unfreeze fine-tunes the blocks of one backbone, not \(t.features.backbone)")
                    }
                    let (e, cache) = try StoreData.blockCache(db, id: t.features.primary.id, backbone: nil, unfreeze: t.config.unfreeze)
                    tuned = try StoreData.fineTune(db, e, cache, config: t.config, options: TrainingOptions(threads: 1),
                                                   sweepID: sweepID, trialKey: t.key, inputs: try sharedBlockInputs(e, cache))
                }
                let result = try tuned?.result.training
                    ?? trainHead(config: t.config, train: d.train, test: d.test, unlabeled: d.unlabeled, options: TrainingOptions(threads: 1))
                lock.lock()
                defer { lock.unlock() }
                do {
                    let id = try tuned.map { try db.saveFineTunedHead($0.head, blocks: $0.blocks) }
                        ?? StoreData.save(result, config: t.config, features: t.features, in: db, sweepID: sweepID, trialKey: t.key)
                    done += 1
                    if !quiet { progress(t, result, head: id, seconds: Date().timeIntervalSince(start)) }
                } catch {
                    failures.append(Failure(key: t.key, error: "could not save the trial in \(db.path): \(error)"))
                    stop = true
                }
            } catch {
                lock.lock()
                failures.append(Failure(key: t.key, error: "\(error)"))
                lock.unlock()
            }
        }
    }

    /// The block inputs of extraction `e`'s cache `definition`, read on first use.
    private func sharedBlockInputs(_ e: ExtractionRecord, _ definition: BlockDefinition) throws -> (train: BlockInputs, test: BlockInputs?) {
        blockInputsLock.lock()
        defer { blockInputsLock.unlock() }
        let key = "\(e.id)/\(definition.blocks)"
        if let cached = blockInputs[key] { return cached }
        let read = try StoreData.loadBlockInputs(db, e, definition)
        blockInputs[key] = read
        return read
    }

    private func progress(_ t: PlannedTrial, _ r: TrainingResult, head: Int64, seconds: Double) {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        let settings = keys.compactMap { k in
            HeadConfig.setting(k).flatMap { $0.relevant(t.config) ? " \(k) \($0.show(t.config))" : nil }
        }.joined()
        let line = "[\(done)/\(total)] \(t.key) \(t.features.backbone)\(settings): val loss \(f(r.metrics.validation?.logLoss)) "
            + "val acc \(f(r.metrics.validation?.accuracy)) test acc \(f(r.metrics.test?.accuracy)), "
            + "epoch \(r.bestEpoch)/\(r.epochsRun), \(String(format: "%.1f", seconds)) s (head \(head))\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
