import ArgumentParser
import FeatureStore
import Foundation
import HeadTrainerCore

@main
struct TrainHead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-head",
        abstract: "Train softmax heads on features cached by `extract`, in seconds, without touching images.",
        discussion: """
        Reads features from the store, trains [BN] -> Dense(hidden, ReLU, L2) -> Dropout -> [BN] -> \
        Dense(classes) -> softmax with Adam and early stopping on validation loss, and keeps the head, its \
        curves and metrics in the store. Defaults are the scene experiment's head.

        Examples:
          train-head --backbone efficientnet_lite0
          train-head --backbone efficientnet_lite0 --hidden 0 --json
          train-head --extraction 1 --augmented 2 --dropout 0.3 --plot curves/
        """,
        subcommands: [Train.self, SweepCommand.self, ReportCommand.self, BenchSweepCommand.self, BenchEpochCommand.self,
                      TrialKeysCommand.self],
        defaultSubcommand: Train.self)
}

/// The head's hyperparameters as command-line options (shared with sweeps' defaults).
struct HeadOptions: ParsableArguments {
    @Option(help: "Hidden units (0: a plain linear softmax layer on the features).") var hidden = 256
    @Option(help: "Dropout rate after the hidden layer.") var dropout = 0.2
    @Option(help: "L2 penalty on kernels (Keras-style: l2 * sum(W^2)).") var l2 = 1e-4
    @Flag(inversion: .prefixedNo, help: "Batch normalization before each dense layer.") var batchnorm = true
    @Option(help: "Adam learning rate.") var lr = 1e-4
    @Option(name: .customLong("batch-size"), help: "Mini-batch size.") var batchSize = 32
    @Option(help: "Maximum epochs.") var epochs = 100
    @Option(help: "Early stopping: epochs without a better validation loss (0: off).") var patience = 5
    @Option(name: .customLong("val-split"), help: "Fraction of training images held out for validation (stratified, by image).")
    var valSplit = 0.2
    @Option(help: "Use augmented copies 0...K of the training images (default: all stored).") var augmented: Int?
    @Option(name: .customLong("class-weights"), help: "none or balanced.") var classWeights: ClassWeighting = .none
    @Option(help: "Seed (initialization, split, shuffling, dropout).") var seed: UInt64 = 42

    var config: HeadConfig {
        HeadConfig(hidden: hidden, dropout: dropout, l2: l2, batchnorm: batchnorm, lr: lr, batchSize: batchSize,
                   epochs: epochs, patience: patience, valSplit: valSplit, augmented: augmented,
                   classWeights: classWeights, seed: seed)
    }
}

extension ClassWeighting: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train one head (the default command).")

    @Option(help: "Feature store written by `extract`.") var store = "features.sqlite"
    @Option(help: "Train on the features of this backbone (the extraction with the most features).") var backbone: String?
    @Option(help: "Train on this extraction id (see `extract store info`).") var extraction: Int64?
    @OptionGroup var head: HeadOptions
    @Option(help: "Write loss and accuracy curves (SVG) into this folder.") var plot: String?
    @Flag(help: "Print one JSON object with the metrics of train, validation and test.") var json = false
    @Option(name: .customLong("write-validation-ids"), help: .hidden) var validationIDsFile: String?

    func validate() throws {
        if backbone == nil && extraction == nil { throw ValidationError("give --backbone NAME or --extraction ID") }
        try head.config.validate()
    }

    struct Report: Encodable {
        let head_id: Int64, extraction_id: Int64, backbone: String, best_epoch: Int, epochs: Int, seconds: Double
        let train: ClassificationMetrics, validation: ClassificationMetrics?, test: ClassificationMetrics?
    }

    func run() throws {
        do {
            let db = try StoreData.open(store)
            let e = try StoreData.extraction(in: db, id: extraction, backbone: backbone)
            let (train, test) = try StoreData.load(db, e)
            let config = head.config
            let result = try trainHead(config: config, train: train, test: test)
            let id = try StoreData.save(result, config: config, extraction: e, in: db)
            if let validationIDsFile {   // for peers that must score the same held-out images (tools/bench/linear_bench.sh)
                try JSONEncoder().encode(result.validationImageIDs).write(to: URL(fileURLWithPath: validationIDsFile))
            }
            if let plot {
                let dir = URL(fileURLWithPath: plot)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try result.curves.writeSVG(to: dir.appendingPathComponent("head-\(id)-curves.svg"),
                                           title: "\(e.settings.backbone) head \(id)")
            }
            let report = Report(head_id: id, extraction_id: e.id, backbone: e.settings.backbone, best_epoch: result.bestEpoch,
                                epochs: result.epochsRun, seconds: result.trainingSeconds, train: result.metrics.train,
                                validation: result.metrics.validation, test: result.metrics.test)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(report), as: UTF8.self))
            } else {
                print("head \(id) on extraction \(e.id) (\(e.settings.backbone), \(train.dim)-d): best epoch \(result.bestEpoch) of \(result.epochsRun), "
                      + String(format: "%.2f s", result.trainingSeconds))
                print(result.metrics.train.table(title: "train"))
                if let v = result.metrics.validation { print(v.table(title: "validation")) }
                if let t = result.metrics.test { print(t.table(title: "test")) }
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
