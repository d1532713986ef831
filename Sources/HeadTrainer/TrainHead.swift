import ArgumentParser
import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchCLI

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
          train-head --backbone efficientnet_lite0+efficientnet_lite2   # per-image concatenated features

        \(HeadOptions.help)

        `train-head train --help` lists the other options of the default command.
        """,
        subcommands: [Train.self, SweepCommand.self, ReportCommand.self, BenchSweepCommand.self, BenchEpochCommand.self, BenchFinetuneCommand.self,
                      TrialKeysCommand.self, HeadSettingsCommand.self, ExportCommand.self],
        defaultSubcommand: Train.self)

    /// Sets OpenMP's spin count first (`OpenMPWaiting`), then parses and runs the command.
    static func main() {
        OpenMPWaiting.apply()
        main(nil)
    }
}

/// The head settings on the command line, one option per entry of `HeadConfig.settings`: `--batch-size 16`
/// or `--batch-size=16` for `batch_size`, and `--batchnorm` / `--no-batchnorm` for yes/no settings.
/// Parsed here rather than by ArgumentParser (which needs one property per option) so the settings
/// list stays the only place naming them; `help` lists them the way ArgumentParser lists options.
enum HeadOptions {
    static func option(_ s: HeadSetting) -> String { "--" + s.key.replacingOccurrences(of: "_", with: "-") }
    static func negated(_ s: HeadSetting) -> String { "--no-" + option(s).dropFirst(2) }

    /// The configuration the arguments ask for (the defaults for settings they do not name).
    static func config(_ arguments: [String]) throws -> HeadConfig {
        var config = HeadConfig()
        var rest = arguments[...]
        while let arg = rest.popFirst() {
            let parts = arg.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if parts.count == 1, let s = HeadConfig.settings.first(where: { $0.kind == .flag && [option($0), negated($0)].contains(arg) }) {
                _ = s.parse(&config, arg == option(s) ? "true" : "false")
                continue
            }
            guard let s = HeadConfig.settings.first(where: { option($0) == parts[0] }) else {
                throw ValidationError("unknown option '\(arg)'; `train-head train --help` lists the options and head settings")
            }
            guard let text = parts.count == 2 ? parts[1] : rest.popFirst() else {
                throw ValidationError("missing value for '\(parts[0])': \(s.expected)")
            }
            if !s.parse(&config, text) { throw ValidationError("the value '\(text)' is invalid for '\(parts[0])': use \(s.expected)") }
        }
        return config
    }

    /// The settings' part of `--help`: each option with its help and default, laid out like ArgumentParser's.
    static let help: String = {
        var out = "HEAD SETTINGS (in sweep files: the same names, with _ for -):\n"
        for s in HeadConfig.settings {
            var text = s.help
            switch s.kind {
            case .flag: text += " (default: \(s.defaultText == "yes" ? option(s) : negated(s)))"
            case .choice(let names): text += " (values: \(names.joined(separator: ", ")); default: \(s.defaultText))"
            case .integer, .number: text += " (default: \(s.defaultText))"
            }
            let label = "  " + (s.kind == .flag ? "\(option(s))/\(negated(s))" : "\(option(s)) <\(s.key.replacingOccurrences(of: "_", with: "-"))>")
            out += label.count < 25 ? label.padding(toLength: 26, withPad: " ", startingAt: 0) : label + "\n" + String(repeating: " ", count: 26)
            out += wrap(text, width: 53).joined(separator: "\n" + String(repeating: " ", count: 26)) + "\n"
        }
        return String(out.dropLast())
    }()

    /// Words of `text` in lines of at most `width` characters.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width { lines.append(line); line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        return lines + [line]
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one head (the default command).",
        usage: "train-head [train] (--backbone <backbone> | --extraction <id>) [<head settings>] [<options>]",
        discussion: HeadOptions.help)

    @Option(help: "Feature store written by `extract`.") var store = "features.sqlite"
    @Option(help: "Train on the features of this backbone (the extraction with the most features); a+b: both, concatenated per image.")
    var backbone: String?
    @Option(help: "Train on this extraction id (see `extract store info`); 1+3: both, concatenated per image.") var extraction: String?
    @Argument(parsing: .allUnrecognized, help: .hidden) var settings: [String] = []
    @Option(help: "Write loss and accuracy curves (SVG) into this folder.") var plot: String?
    @Flag(help: "Print one JSON object with the metrics of train, validation and test.") var json = false
    @Option(name: .customLong("write-validation-ids"), help: .hidden) var validationIDsFile: String?

    func validate() throws {
        if backbone == nil && extraction == nil { throw ValidationError("give --backbone NAME or --extraction ID") }
        try HeadOptions.config(settings).validate()
    }

    struct Report: Encodable {
        let head_id: Int64, extraction_id: Int64, extraction_ids: [Int64], backbone: String, best_epoch: Int, epochs: Int, seconds: Double
        let train: ClassificationMetrics, validation: ClassificationMetrics?, test: ClassificationMetrics?
        /// Temperature fitted on validation, and validation/test metrics of the calibrated probabilities.
        let calibration: SplitCalibration?
        /// Images of the dataset kept out of training and evaluation (label conflicts, `extract --conflicts drop`).
        let excluded_images: Int
        /// `frozen`, or `finetuned` (`--unfreeze`).
        let kind: String
        let fine_tuning: FineTuning?
        /// `--tta K`: validation and test on the mean softmax over copies 0...K.
        let tta: TTAMetrics?
        /// `--pseudo-label` / `--labeled-fraction`: each self-training round.
        let pseudo_label_rounds: [PseudoLabelRound]?
    }

    /// What `--unfreeze` did: the cache it used and the frozen head it started from.
    struct FineTuning: Encodable {
        let unfreeze: Int, cached_blocks: Int, block_lr: Double, bn_mode: String
        let frozen_head: SplitMetrics
        let frozen_best_epoch: Int
    }

    func run() throws {
        try failing {
            let db = try StoreData.open(store)
            let config = try HeadOptions.config(settings)
            let features: ExtractionSet, cache: BlockDefinition?
            if config.unfreeze > 0 {
                let id = try extraction.map { text -> Int64 in
                    guard let id = Int64(text) else { throw StoreData.Failure(description: "--unfreeze fine-tunes the blocks of one extraction: give --extraction ID, not \(text)") }
                    return id
                }
                if backbone?.contains("+") == true {
                    throw StoreData.Failure(description: "--unfreeze fine-tunes the blocks of one backbone, not \(backbone!)")
                }
                let (e, c) = try StoreData.blockCache(db, id: id, backbone: backbone, unfreeze: config.unfreeze)
                (features, cache) = (ExtractionSet(e), c)
            } else {
                (features, cache) = (try StoreData.extractionSet(in: db, ids: extraction, backbone: backbone), nil)
            }
            let e = features.primary
            let excluded = try db.excludedImages(datasetID: e.settings.datasetID).count
            if excluded > 0 && !json {
                FileHandle.standardError.write(Data("\(excluded) image(s) left out: the same bytes under two or more classes (`extract store audit \(store)` lists them)\n".utf8))
            }
            let result: TrainingResult, id: Int64, fineTuning: FineTuning?
            if let cache {
                let options = TrainingOptions(onEpoch: { r in
                    let v = r.validationLoss.map { String(format: ", validation loss %.4f accuracy %.4f", $0, r.validationAccuracy ?? 0) } ?? ""
                    FileHandle.standardError.write(Data(String(format: "fine-tuning epoch %d/%d: loss %.4f accuracy %.4f%@ (%.1f s)\n",
                                                               r.epoch, config.epochs, r.trainLoss, r.trainAccuracy, v, r.seconds).utf8))
                })
                let tuned = try StoreData.fineTune(db, e, cache, config: config, options: options)
                (id, result) = (try db.saveFineTunedHead(tuned.head, blocks: tuned.blocks), tuned.result.training)
                fineTuning = FineTuning(unfreeze: config.unfreeze, cached_blocks: cache.blocks, block_lr: config.effectiveBlockLR,
                                        bn_mode: config.bnMode.rawValue, frozen_head: tuned.result.frozenHead.metrics,
                                        frozen_best_epoch: tuned.result.frozenHead.bestEpoch)
            } else {
                let (train, test) = try StoreData.load(db, features, maxAugIndex: config.augmented, testCopies: config.tta)
                result = try trainHead(config: config, train: train, test: test,
                                       unlabeled: config.pseudoLabel ? try StoreData.unlabeled(db, features) : nil)
                id = try StoreData.save(result, config: config, features: features, in: db)
                fineTuning = nil
            }
            if let validationIDsFile {   // for peers that must score the same held-out images (tools/bench/linear_bench.sh)
                try JSONEncoder().encode(result.validationImageIDs).write(to: URL(fileURLWithPath: validationIDsFile))
            }
            if let plot {
                let dir = URL(fileURLWithPath: plot)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try result.curves.writeSVG(to: dir.appendingPathComponent("head-\(id)-curves.svg"),
                                           title: "\(features.backbone) head \(id)")
            }
            let report = Report(head_id: id, extraction_id: e.id, extraction_ids: features.parts.map(\.id), backbone: features.backbone, best_epoch: result.bestEpoch,
                                epochs: result.epochsRun, seconds: result.trainingSeconds, train: result.metrics.train,
                                validation: result.metrics.validation, test: result.metrics.test,
                                calibration: result.metrics.calibration, excluded_images: excluded,
                                kind: fineTuning == nil ? "frozen" : "finetuned", fine_tuning: fineTuning,
                                tta: result.metrics.tta, pseudo_label_rounds: result.metrics.pseudoLabelRounds)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(report), as: UTF8.self))
            } else {
                print("head \(id) on extraction\(features.parts.count > 1 ? "s" : "") \(features.ids) (\(features.backbone), \(result.head.inputDim)-d): best epoch \(result.bestEpoch) of \(result.epochsRun), "
                      + String(format: "%.2f s", result.trainingSeconds))
                if let f = fineTuning {
                    let before = f.frozen_head.test?.accuracy ?? f.frozen_head.validation?.accuracy
                    let after = result.metrics.test?.accuracy ?? result.metrics.validation?.accuracy
                    let which = f.frozen_head.test != nil ? "test" : "validation"
                    print("fine-tuned the last \(f.unfreeze) of \(f.cached_blocks) cached block(s) (block lr \(String(format: "%g", f.block_lr)), BN \(f.bn_mode))"
                          + (result.bestEpoch == 0 ? "; no epoch beat the frozen head's validation loss, so the frozen head is kept" : "")
                          + (before.flatMap { b in after.map { String(format: "; %@ accuracy %.4f frozen -> %.4f fine-tuned (%+.4f)", which, b, $0, $0 - b) } } ?? ""))
                }
                print(result.metrics.train.table(title: "train"))
                if let v = result.metrics.validation { print(v.table(title: "validation")) }
                if let t = result.metrics.test { print(t.table(title: "test")) }
                if let c = result.metrics.calibration { print(c.line(uncalibrated: result.metrics)) }
                if let tta = result.metrics.tta { print(tta.summary(plain: result.metrics)) }
                for round in result.metrics.pseudoLabelRounds ?? [] { print(round.line) }
            }
        }
    }
}
