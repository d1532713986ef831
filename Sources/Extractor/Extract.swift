import ArgumentParser
import BackboneEngine
import Backbones
import Foundation
import Imaging
import WorkbenchCLI

@main
struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Run frozen ImageNet backbones over images and keep their features.",
        discussion: """
        Each backbone carries its own preprocessing (channel order, scaling, mean and std), so \
        pixels are never yours to normalize: pass images as they are.

        Examples:
          extract --backbone efficientnet_lite0 --data ../shared/datasets/scenes6 --augment 2
          extract store info features.sqlite
          extract classify --backbone efficientnet_lite0 cat.jpg
          extract bench --backbone efficientnet_lite0 --batch 16 --json
        """,
        subcommands: [Run.self, Classify.self, Predict.self, Bench.self, PreviewCommand.self, StoreCommand.self,
                      WeightsCommand.self],
        defaultSubcommand: Run.self)

    /// Sets OpenMP's spin count first (`OpenMPWaiting`), then parses and runs the command.
    static func main() {
        OpenMPWaiting.apply()
        main(nil)
    }
}

/// Options every command that runs a backbone shares.
struct BackboneOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Backbone: \(Backbones.all.map(\.id).joined(separator: ", ")) (spellings like EfficientNet-Lite0 work too)."))
    var backbone: String

    @Option(name: .long, help: "Use this weights file instead of the cached one.")
    var weights: String?

    @Option(name: .long, help: "Worker threads for the backbone (default: all cores).")
    var threads: Int?

    func configureThreads() -> Int { EngineThreads.configure(threads) }

    var weightsURL: URL? { weights.map { URL(fileURLWithPath: $0) } }
}

extension Shard {
    /// A deterministic 1/n of the images, by a hash of each image's path relative to the dataset
    /// root (so every machine agrees without coordination).
    func select(_ items: [DatasetItem], root: URL) -> [DatasetItem] {
        items.filter { owns(key: $0.path.standardizedFileURL.path.dropFirst(root.path.count)) }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}
