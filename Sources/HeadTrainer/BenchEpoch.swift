import ArgumentParser
import Foundation
import HeadTrainerCore

/// `train-head bench-epoch` (hidden): seconds per training epoch of one head on a rows x dim matrix
/// of ReLU6-like random features, training steps only (no validation pass), averaged over
/// `--epochs` after one warm-up epoch: the same measurement `tools/bench/peer_heads.py` makes in
/// Keras and PyTorch, on the same distribution of data. Used by tools/bench/head_bench.sh.
struct BenchEpochCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-epoch", abstract: "Time training epochs of one head (benchmark).", shouldDisplay: false)

    @Option(help: "Rows of the feature matrix.") var rows = 11_228
    @Option(help: "Feature width.") var dim = 1280
    @Option(help: "Classes (balanced labels).") var classes = 6
    @Option(help: "Timed epochs after one warm-up epoch.") var epochs = 3
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Option(help: "Hidden units (the rest is the experiment's head: BN, dropout 0.2, L2 1e-4, BN, Adam 1e-4).")
    var hidden = 256
    @Option(help: "Batch size.") var batch = 32
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard rows >= 32, dim >= 1, classes >= 2, epochs >= 1, batch >= 1 else {
            throw ValidationError("--rows >= 32, --dim >= 1, --classes >= 2, --epochs >= 1 and --batch >= 1")
        }
    }

    func run() throws {
        let config = HeadConfig {
            $0.hidden = hidden
            $0.batchSize = batch
        }
        let r = HeadBenchmark.detailed(rows: rows, dim: dim, classes: classes, epochs: epochs, config: config, threads: threads)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "%d x %d, hidden %d, batch %d, %d threads: %.4f s per epoch (%d steps, %.0f us per step), GEMM on %@ (%@)",
                         r.rows, r.dim, config.hidden, batch, r.threads, r.secondsPerEpoch, r.stepsPerEpoch, r.microsecondsPerStep,
                         r.gemm.rawValue, r.gemmReason))
        }
    }
}
