import ArgumentParser
import COpenBLAS
import FeatureStore
import Foundation
import HeadTrainerCore

/// `train-head bench-sweep` (hidden): wall time of a sweep of the experiment's head on a large
/// feature matrix, without touching the store. Used by tools/bench/sweep_bench.sh.
///
/// Trials vary hidden units, dropout, L2 and learning rate; every trial runs exactly `--epochs`
/// epochs (early stopping off) so the work is fixed and comparable with a per-epoch time measured
/// in Keras. Each trial fits on 80% of the rows and scores the other 20% after every epoch.
struct BenchSweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sweep", abstract: "Time a sweep of heads on a large feature matrix (benchmark).",
        shouldDisplay: false)

    @Option(help: "Take features from this store (else random ReLU6-like features, as HeadBenchmark).") var store: String?
    @Option(help: "Backbone whose features to take from --store.") var backbone = "efficientnet_lite0"
    @Option(help: "Rows of the feature matrix (store features are repeated to fill it).") var rows = 11_228
    @Option(help: "Feature width for random features.") var dim = 1280
    @Option(help: "Trials.") var trials = 100
    @Option(help: "Trials at the same time (default: cores).") var jobs: Int?
    @Option(name: .customLong("threads-per-trial"), help: "Threads of each trial.") var threadsPerTrial = 1
    @Option(help: "Epochs per trial (fixed: no early stopping).") var epochs = 10
    @Option(parsing: .upToNextOption, help: "Hidden widths to draw from.") var hidden: [Int] = [128, 256, 512]
    @Flag(help: "Print JSON.") var json = false

    struct Report: Encodable {
        let rows: Int, dim: Int, classes: Int, train_rows: Int, validation_rows: Int, source: String
        let trials: Int, jobs: Int, threads_per_trial: Int, epochs_per_trial: Int
        let wall_seconds: Double
        /// Mean wall time of one trial as it ran (with `jobs` trials sharing the machine).
        let trial_seconds_mean: Double
        let trials_per_minute: Double
        /// Mean seconds per epoch of the trials, by hidden width (as they ran).
        let seconds_per_epoch_by_hidden: [String: Double]
        /// Trials per hidden width.
        let trials_by_hidden: [String: Int]
        /// The trainer's GEMM backend and why (see GEMM.swift in HeadTrainerCore).
        let gemm: GEMMBackend
        let gemm_reason: String
    }

    func run() throws {
        let data = try features()
        var grid: [HeadConfig] = []
        for width in hidden {
            for dropout in [0.1, 0.2, 0.3, 0.5] {
                for l2 in [1e-5, 1e-4, 1e-3] {
                    for lr in [1e-4, 3e-4, 1e-3] {
                        grid.append(HeadConfig { $0.hidden = width; $0.dropout = dropout; $0.l2 = l2; $0.lr = lr; $0.epochs = epochs; $0.patience = 0 })
                    }
                }
            }
        }
        var rng = HeadRNG(seed: 11, stream: 3)
        rng.shuffle(&grid)
        var configs: [HeadConfig] = []
        while configs.count < trials && !grid.isEmpty { configs += grid.prefix(trials - configs.count) }
        // Longest first, so the machine stays busy to the end.
        configs.sort { $0.hidden > $1.hidden }
        let jobCount = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)

        let lock = NSLock()
        var next = 0
        var seconds = [Double](repeating: 0, count: configs.count)
        var failure: String?
        let previous = openblas_get_num_threads()
        openblas_set_num_threads(1)
        let t0 = Date()
        SweepRunner.parallel(jobs: jobCount) {
            while true {
                lock.lock()
                let i = next
                next += 1
                lock.unlock()
                if i >= configs.count { return }
                let start = Date()
                do {
                    _ = try trainHead(config: configs[i], train: data, test: nil, options: TrainingOptions(threads: threadsPerTrial))
                } catch {
                    lock.lock(); failure = "\(error)"; lock.unlock()
                }
                lock.lock(); seconds[i] = Date().timeIntervalSince(start); lock.unlock()
            }
        }
        let wall = Date().timeIntervalSince(t0)
        openblas_set_num_threads(previous)
        if let failure { throw ValidationError("a trial failed: \(failure)") }

        var byHidden: [String: Double] = [:]
        for h in Set(configs.map(\.hidden)) {
            let s = configs.indices.filter { configs[$0].hidden == h }.map { seconds[$0] }
            byHidden["\(h)"] = s.reduce(0, +) / Double(s.count) / Double(epochs)
        }
        let valRows = Int((Double(data.n) * 0.2).rounded())
        let r = Report(rows: data.n, dim: data.dim, classes: data.classCount, train_rows: data.n - valRows, validation_rows: valRows,
                       source: store.map { "\($0) (\(backbone), repeated)" } ?? "random", trials: configs.count, jobs: jobCount,
                       threads_per_trial: threadsPerTrial, epochs_per_trial: epochs, wall_seconds: wall,
                       trial_seconds_mean: seconds.reduce(0, +) / Double(seconds.count),
                       trials_per_minute: Double(configs.count) / wall * 60, seconds_per_epoch_by_hidden: byHidden,
                       trials_by_hidden: Dictionary(grouping: configs, by: { "\($0.hidden)" }).mapValues(\.count),
                       gemm: TrainerGEMM.choice.backend, gemm_reason: TrainerGEMM.choice.reason)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "%d trials x %d epochs on %d x %d features, %d jobs x %d thread(s): %.1f s wall, %.2f s per trial, %.1f trials/min, GEMM on %@",
                         r.trials, epochs, r.rows, r.dim, jobCount, threadsPerTrial, wall, r.trial_seconds_mean, r.trials_per_minute, r.gemm.rawValue))
        }
    }

    /// `rows` rows: store features repeated (each repeat a distinct "image"), or random features.
    func features() throws -> LabeledFeatures {
        if let store {
            let db = try StoreData.open(store)
            let e = try StoreData.extraction(in: db, id: nil, backbone: backbone)
            let (train, _) = try StoreData.load(db, e)
            var values = [Float](), labels = [Int32]()
            values.reserveCapacity(rows * train.dim)
            for i in 0..<rows {
                let r = i % train.n
                values.append(contentsOf: train.values[(r * train.dim)..<((r + 1) * train.dim)])
                labels.append(train.labels[r])
            }
            return LabeledFeatures(dim: train.dim, values: values, labels: labels, classNames: train.classNames)
        }
        var rng = HeadRNG(seed: 7, stream: 99)
        let classes = 6
        let values = (0..<(rows * dim)).map { _ in max(0, rng.nextFloat() * 2 - 0.6) }
        return LabeledFeatures(dim: dim, values: values, labels: (0..<rows).map { Int32($0 % classes) },
                               classNames: (0..<classes).map { "class\($0)" })
    }
}
