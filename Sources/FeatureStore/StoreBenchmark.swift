import Foundation
import WorkbenchSupport

/// Result of `StoreBenchmark.run`; JSON keys are snake_case.
public struct StoreBenchmarkResult: Codable, Sendable {
    public var storePath: String
    public var dim: Int
    public var dtype: String
    public var batchSize: Int
    public var insertedRows: Int
    public var insertSeconds: Double
    public var insertRowsPerSecond: Double
    /// Loading `loadRows` rows (the train split) with a freshly opened read-only store.
    public var loadRows: Int
    public var loadSeconds: Double
    public var loadMegabytesPerSecond: Double
    /// A second load on the same connection (page cache warm).
    public var reloadSeconds: Double
    /// Re-inserting every row (all skipped as already stored), as a resumed run does.
    public var reinsertSeconds: Double
    public var fileBytes: Int64

    enum CodingKeys: String, CodingKey {
        case storePath = "store_path", dim, dtype, batchSize = "batch_size", insertedRows = "inserted_rows"
        case insertSeconds = "insert_seconds", insertRowsPerSecond = "insert_rows_per_second"
        case loadRows = "load_rows", loadSeconds = "load_seconds", loadMegabytesPerSecond = "load_megabytes_per_second"
        case reloadSeconds = "reload_seconds", reinsertSeconds = "reinsert_seconds", fileBytes = "file_bytes"
    }

    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// The store's throughput benchmark, for the tools to expose as a command (not a unit test:
/// timings depend on the machine). Targets: insert >= 20,000 rows/s of 2048-d f32, and load
/// 17,000 x 2048 of one extraction in <= 0.5 s.
public enum StoreBenchmark {
    /// Builds a fresh store in `directory` with `rows` synthetic images (the first `loadRows` in
    /// the train split, the rest test), inserts one vector per image in batches, then loads the
    /// train split back. The store file is deleted afterwards unless `keep` is true.
    public static func run(directory: URL, rows: Int = 20_000, loadRows: Int = 17_000, dim: Int = 2048,
                           dtype: FeatureDType = .f32, batchSize: Int = 1000, keep: Bool = false) throws -> StoreBenchmarkResult {
        let path = directory.appendingPathComponent("store-benchmark-\(ProcessInfo.processInfo.processIdentifier).sqlite").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        defer {
            if !keep { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        }
        let store = try FeatureStore(path: path, mode: .create)
        let dataset = try store.dataset(root: "/benchmark", classes: (0..<10).map { "class\($0)" })
        let images = (0..<rows).map { i in
            ImageRecord(datasetID: dataset.id, sha256: SHA256Digest.hex("image \(i)"), path: "img\(i).jpg",
                        classIndex: i % 10, split: i < loadRows ? .train : .test, width: 224, height: 224)
        }
        var imageIDs: [Int64] = []
        for start in stride(from: 0, to: rows, by: 5000) {
            imageIDs += try store.upsertImages(Array(images[start..<min(rows, start + 5000)]))
        }
        let extraction = try store.extraction(for: ExtractionSettings(
            datasetID: dataset.id, backbone: "benchmark", weightsSHA256: String(repeating: "0", count: 64),
            weightsSource: "synthetic", preprocessing: "none", augmentationPolicy: "null", imageSize: 224,
            fit: "center-crop", precision: "f32", featureDType: dtype, featureDim: dim, toolVersion: "benchmark", seed: 0))

        // Rows are generated before timing so only the store is measured.
        var generator = SplitMix64(seed: 42)
        let batches: [[FeatureRow]] = stride(from: 0, to: rows, by: batchSize).map { start in
            (start..<min(rows, start + batchSize)).map { i in
                FeatureRow(imageID: imageIDs[i], augIndex: 0, values: (0..<dim).map { _ in generator.nextFloat() })
            }
        }
        let insertStart = Date()
        for batch in batches { try store.insertFeatures(extractionID: extraction.id, rows: batch) }
        let insertSeconds = Date().timeIntervalSince(insertStart)
        let reinsertStart = Date()
        for batch in batches { try store.insertFeatures(extractionID: extraction.id, rows: batch) }
        let reinsertSeconds = Date().timeIntervalSince(reinsertStart)
        store.close()

        let reader = try FeatureStore(path: path, mode: .readOnly)
        let loadStart = Date()
        let matrix = try reader.loadFeatures(extractionID: extraction.id, split: .train)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let reloadStart = Date()
        _ = try reader.loadFeatures(extractionID: extraction.id, split: .train)
        let reloadSeconds = Date().timeIntervalSince(reloadStart)
        reader.close()

        let bytes = Double(matrix.rows * dim * dtype.bytesPerValue)
        return StoreBenchmarkResult(
            storePath: path, dim: dim, dtype: dtype.rawValue, batchSize: batchSize, insertedRows: rows,
            insertSeconds: insertSeconds, insertRowsPerSecond: Double(rows) / insertSeconds,
            loadRows: matrix.rows, loadSeconds: loadSeconds, loadMegabytesPerSecond: bytes / loadSeconds / 1e6,
            reloadSeconds: reloadSeconds, reinsertSeconds: reinsertSeconds,
            fileBytes: StoreFile.fileSize(path) ?? 0)
    }
}

