import COpenBLAS
import ArgumentParser
import BackboneEngine
import FeatureStore
import Foundation
import WorkbenchCLI

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect, merge, export and compact feature stores.",
        subcommands: [Info.self, Audit.self, Merge.self, Export.self, Vacuum.self, StoreBench.self, AuditBench.self])

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

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Byte-identical images under several classes (label conflicts), in train and test (leaks), or twice in a class; with --near, near-duplicates by their features.",
            discussion: """
            Exact duplicates come from the content hashes of every file `extract` scanned. Near-duplicates \
            (--near) are pairs of images whose cached features (plain copy) have a cosine similarity of at \
            least --threshold, across classes or across train/test: a blocked matrix product over the \
            extraction's features. JSON keys: conflicts, leaks, duplicates ({sha256, paths, classes, splits}) \
            and near ({a, b, cosine}).
            """)
        @Argument(help: "Store file.") var file = "features.sqlite"
        @Flag(help: "Also find near-duplicates from the cached features.") var near = false
        @Option(help: "Cosine similarity from which two images count as near-duplicates.") var threshold: Float = 0.97
        @Option(help: "Extraction whose features --near compares (default: the store's first).") var extraction: Int64?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard threshold > 0, threshold <= 1 else { throw ValidationError("--threshold must be in (0, 1]") }
        }

        func run() throws {
            try failing {
                guard FileManager.default.fileExists(atPath: file) else {
                    throw ValidationError("\(file) does not exist; `extract --backbone NAME --data DIR --store \(file)` creates it")
                }
                let db = try FeatureStore(path: file, mode: .readOnly)
                var files: [DatasetAudit.File] = []
                for dataset in try db.datasets() {
                    files += try db.imageFiles(datasetID: dataset.id).map {
                        DatasetAudit.File(path: $0.path, sha256: $0.sha256, className: dataset.classes.indices.contains($0.classIndex) ? dataset.classes[$0.classIndex] : "", split: $0.split.rawValue)
                    }
                }
                var report = DatasetAudit(files)
                var seconds = 0.0
                if near {
                    guard let id = try extraction ?? db.extractions().first?.id else {
                        throw ValidationError("\(file) has no extraction; --near compares cached features (run `extract` first)")
                    }
                    let started = Date()
                    let m = try db.loadFeatures(extractionID: id, maxAugIndex: 0)
                    let pairs = NearDuplicates.find(m.values, rows: m.rows, dim: m.dim, threshold: threshold) { i, j in
                        m.labels[i] != m.labels[j] || m.splits[i] != m.splits[j]
                    }
                    seconds = Date().timeIntervalSince(started)
                    report.near = pairs.map { .init(a: m.paths[$0.i], b: m.paths[$0.j], cosine: Double($0.cosine)) }
                }
                if json {
                    try printJSON(report)
                } else {
                    func show(_ title: String, _ groups: [DatasetAudit.Group]) {
                        print("\(title): \(groups.count)")
                        for g in groups { print("  " + zip(g.paths, zip(g.classes, g.splits)).map { "\($0) [\($1.0), \($1.1)]" }.joined(separator: "  =  ")) }
                    }
                    show("label conflicts (same bytes, several classes)", report.conflicts)
                    show("train/test leaks (same bytes in both splits)", report.leaks)
                    show("duplicates within a class", report.duplicates)
                    if near {
                        print(String(format: "near-duplicates (cosine >= %.3f, across classes or splits): %d (%.2f s)", threshold, report.near.count, seconds))
                        for p in report.near { print(String(format: "  %.4f  %@  ~  %@", p.cosine, p.a, p.b)) }
                    }
                }
            }
        }
    }

    /// `extract store audit-bench`: the near-duplicate pass alone on random features of a given size.
    struct AuditBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit-bench",
            abstract: "Time the near-duplicate pass of `store audit --near` on random features (rows x dim).")
        @Option(help: "Feature rows (images).") var rows = 16_000
        @Option(help: "Feature dimension.") var dim = 1280
        @Option(help: "OpenBLAS threads.") var threads = 2

        func run() throws {
            openblas_set_num_threads(Int32(threads))
            var rng = SystemRandomNumberGenerator()
            let values = (0..<(rows * dim)).map { _ in Float.random(in: -1...1, using: &rng) }
            let started = Date()
            let pairs = NearDuplicates.find(values, rows: rows, dim: dim, threshold: 0.97) { _, _ in true }
            let seconds = Date().timeIntervalSince(started)
            try printJSON(["rows": Double(rows), "dim": Double(dim), "threads": Double(threads), "seconds": seconds,
                           "pairs": Double(pairs.count), "gflop_per_s": Double(rows) * Double(rows) * Double(dim) / seconds / 1e9])
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
        // An int8 extraction's precision text holds its whole calibration (`Int8Calibration`): name it.
        let precision = Int8Calibration(storedPrecision: e.precision).map { "int8 (calibrated on \($0.images) images)" } ?? e.precision
        print("extraction \(e.id): \(e.backbone) \(e.imageSize)px \(precision) \(e.featureDType), \(e.featureDim)-d, "
              + "\(e.features) features of \(e.images) images, \(e.heads) heads\(e.finishedAt == nil ? " (unfinished)" : "")")
        print("  weights \(e.weightsSource) \(e.weightsSHA256.prefix(12))…, preprocessing \(e.preprocessing)")
        if e.blockCacheBytes > 0 {
            print("  block cache (extract --cache-blocks): \(e.blockCacheBytes) bytes (\(String(format: "%.1f", Double(e.blockCacheBytes) / 1e6)) MB)")
        }
    }
    for f in info.failures.prefix(20) { print("failed: \(f.path): \(f.reason)") }
    if info.failureCount > 20 { print("... \(info.failureCount - 20) more failures (--json lists them)") }
}
