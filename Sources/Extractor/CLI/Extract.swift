import ArgumentParser
import BackboneEngine
import Foundation

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
}

/// Options every command that runs a backbone shares.
struct BackboneOptions: ParsableArguments {
    @Option(name: .long, help: "Backbone: efficientnet_lite0, vgg16, resnet50, resnet101, efficientnet_b0 (spellings like EfficientNet-Lite0 work too).")
    var backbone: String

    @Option(name: .long, help: "Use this weights file instead of the cached one.")
    var weights: String?

    @Option(name: .long, help: "Worker threads for the backbone (default: all cores).")
    var threads: Int?

    func configureThreads() -> Int { EngineThreads.configure(threads) }

    var weightsURL: URL? { weights.map { URL(fileURLWithPath: $0) } }
}

/// Prints a clear one-line error and exits non-zero, instead of a stack trace.
func failing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
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
