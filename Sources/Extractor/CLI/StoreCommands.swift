import ArgumentParser
import FeatureStore
import Foundation
import WorkbenchCLI

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect, merge, export and compact feature stores.",
        subcommands: [Info.self, Merge.self, Export.self, Vacuum.self, StoreBench.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Datasets, extractions, counts, failures and size of a store.")
        @Argument(help: "Store file.") var file = "features.sqlite"
        @Flag(help: "Print JSON: {\"images\": N, \"extractions\": [...], \"failures\": [...]}.") var json = false

        func run() throws {
            try failing {
                guard FileManager.default.fileExists(atPath: file) else {
                    throw ValidationError("\(file) does not exist; `extract --backbone NAME --data DIR --store \(file)` creates it")
                }
                let info = try FeatureStore(path: file, mode: .readOnly).info()
                if json {
                    print(try info.jsonString(pretty: true))
                } else {
                    printSummary(info)
                }
            }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Combine shard stores into one, refusing stores whose extraction settings differ.")
        @Argument(help: "Output store (created or extended).") var output: String
        @Argument(help: "Input stores.") var inputs: [String]

        func run() throws {
            try failing {
                let report = try FeatureStore.merge(into: output, from: inputs)
                try printJSON(report)
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one extraction's features and labels as NumPy .npy files or CSV, for use from Python.")
        @Option(help: "Store file.") var store = "features.sqlite"
        @Option(help: "Extraction id (see `extract store info`).") var extraction: Int64
        @Option(help: "npy or csv.") var format = "npy"
        @Option(help: "Output folder (npy) or file (csv).") var out = "export"

        func validate() throws {
            guard ["npy", "csv"].contains(format) else { throw ValidationError("--format must be npy or csv") }
        }

        func run() throws {
            try failing {
                let db = try FeatureStore(path: store, mode: .readOnly)
                let report = format == "npy"
                    ? try db.exportNPY(extractionID: extraction, to: URL(fileURLWithPath: out))
                    : try db.exportCSV(extractionID: extraction, to: URL(fileURLWithPath: out))
                try printJSON(report)
            }
        }
    }

    struct Vacuum: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compact a store file (after deletes or merges).")
        @Argument(help: "Store file.") var file = "features.sqlite"
        func run() throws { try failing { try FeatureStore(path: file).vacuum() } }
    }

    struct StoreBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Bulk insert and full-load speed of the store (2048-d features) in a scratch folder.")
        @Option(help: "Scratch folder.") var dir = FileManager.default.temporaryDirectory.path
        @Option(help: "Rows to insert.") var rows = 20_000
        @Option(help: "Rows to load back.") var load = 17_000
        func run() throws {
            try failing {
                print(try StoreBenchmark.run(directory: URL(fileURLWithPath: dir), rows: rows, loadRows: load).jsonString())
            }
        }
    }
}

private func printSummary(_ info: StoreInfo) {
    print("\(info.path)  (schema v\(info.schemaVersion))")
    print("images: \(info.images)   heads: \(info.heads)   sweeps: \(info.sweeps)   failures: \(info.failureCount)")
    for d in info.datasets {
        print("dataset \(d.id) \(d.name): \(d.images) images (\(d.trainImages) train, \(d.testImages) test), classes \(d.classes.joined(separator: ", "))")
    }
    for e in info.extractions {
        print("extraction \(e.id): \(e.backbone) \(e.imageSize)px \(e.precision) \(e.featureDType), \(e.featureDim)-d, "
              + "\(e.features) features of \(e.images) images, \(e.heads) heads\(e.finishedAt == nil ? " (unfinished)" : "")")
        print("  weights \(e.weightsSource) \(e.weightsSHA256.prefix(12))…, preprocessing \(e.preprocessing)")
    }
    for f in info.failures.prefix(20) { print("failed: \(f.path): \(f.reason)") }
    if info.failureCount > 20 { print("... \(info.failureCount - 20) more failures (--json lists them)") }
}
