import ArgumentParser
import FeatureStore
import FineTuneCore
import Foundation
import WorkbenchSupport

/// `train-head bench-finetune` (hidden): seconds per epoch of fine-tuning the last `--unfreeze`
/// blocks + head conv of a backbone, with the block definition and weights of the store's block
/// cache (`extract --cache-blocks N`) and a softmax head (-> 10 classes), on `--rows` random inputs
/// of the cached input shape: `FineTuneBenchmark.run(network:...)`, one warm-up epoch then
/// `--epochs` timed epochs.
struct BenchFinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-finetune", abstract: "Time fine-tuning epochs on a store's block cache (benchmark).",
        shouldDisplay: false)

    @Option(help: "The feature store.") var store: String
    @Option(help: "Backbone whose block cache to use.") var backbone = "efficientnet_lite0"
    @Option(help: "Last blocks to train (a cache of N >= this many blocks; the first N - M stay frozen and are dropped).")
    var unfreeze = 1
    @Option(help: "Random inputs per epoch.") var rows = 11_228
    @Option(help: "Batch size.") var batch = 64
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Timed epochs after one warm-up epoch.") var epochs = 2
    @Option(help: "Batch norm: frozen or train.") var bnMode: BatchNormMode = .frozen
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable {
        let store: String, backbone: String, extraction_id: Int64, cached_blocks: Int, unfreeze: Int
        let rows: Int, batch: Int, threads: Int, epochs: Int, bn_mode: String, gemm: String
        let seconds_per_epoch: Double, fastest_epoch_seconds: Double, gflops: Double
        let convolution_gflop_per_epoch: Double, final_loss: Float
    }

    func validate() throws {
        guard unfreeze >= 1, rows >= 1, batch >= 1, threads >= 1, epochs >= 1 else {
            throw ValidationError("--unfreeze, --rows, --batch, --threads and --epochs must be >= 1")
        }
    }

    func run() throws {
        let db = try StoreData.open(store)
        let (extraction, definition) = try StoreData.blockCache(db, backbone: backbone, unfreeze: unfreeze)
        var network = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(definition.definitionJSON.utf8))
        // The stored network is the cached blocks and the head conv; keep the last `unfreeze` blocks.
        network = try network.droppingFirstBlocks(definition.blocks - unfreeze)
        let r = try FineTuneBenchmark.run(network: network, tensors: definition.tensors, rows: rows, batch: batch,
                                          threads: threads, batchNorm: bnMode, epochs: epochs)
        if json {
            let out = Output(store: store, backbone: extraction.settings.backbone, extraction_id: extraction.id,
                             cached_blocks: definition.blocks, unfreeze: unfreeze, rows: r.rows, batch: r.batch,
                             threads: r.threads, epochs: epochs, bn_mode: r.batchNorm.rawValue, gemm: r.gemm.rawValue,
                             seconds_per_epoch: r.secondsPerEpoch, fastest_epoch_seconds: r.fastestEpochSeconds,
                             gflops: r.gflops, convolution_gflop_per_epoch: r.convolutionFLOPsPerEpoch / 1e9,
                             final_loss: r.finalLoss)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(out), as: UTF8.self))
        } else {
            print("extraction \(extraction.id), cache of \(definition.blocks) block(s): \(r)")
        }
    }
}

extension BatchNormMode: ExpressibleByArgument {}
