// A child process for FeatureStoreTests' crash test: it appends batches to a store forever (or
// for `maxBatches`), printing "batch <k>" after each commit, until the test kills it with SIGKILL.
//
// usage: FeatureStoreStress <store path> <batch size> <dim> [max batches] [pause ms]
// (`pause ms` between batches keeps a short run going long enough for a concurrent reader to see it grow)
// Batch k holds images "img-k-j" (j < batch size) with one vector each, whose value at position d
// is StressPattern.value(k, j, d), so the test can check every surviving row.
import FeatureStore
import Foundation
import WorkbenchSupport

setvbuf(stdout, nil, _IOLBF, 0)
let args = CommandLine.arguments
guard args.count >= 4, let batchSize = Int(args[2]), let dim = Int(args[3]) else {
    FileHandle.standardError.write(Data("usage: FeatureStoreStress <store> <batch size> <dim> [max batches] [pause ms]\n".utf8))
    exit(2)
}
let maxBatches = args.count > 4 ? Int(args[4]) ?? Int.max : Int.max
let pauseMicroseconds = args.count > 5 ? UInt32(max(0, Int(args[5]) ?? 0) * 1000) : 0

do {
    let store = try FeatureStore(path: args[1], mode: .create)
    let dataset = try store.dataset(root: "/stress", classes: ["even", "odd"])
    let extraction = try store.extraction(for: ExtractionSettings(
        datasetID: dataset.id, backbone: "stress", weightsSHA256: String(repeating: "a", count: 64),
        weightsSource: "none", preprocessing: "none", augmentationPolicy: "null", imageSize: 32, fit: "resize",
        precision: "f32", featureDType: .f32, featureDim: dim, toolVersion: "stress", seed: 1))
    // Resume after the last whole batch (a killed run leaves only whole batches).
    var k = try store.featureCount(extractionID: extraction.id) / batchSize
    print("start \(k)")
    while k < maxBatches {
        let images = (0..<batchSize).map { j in
            ImageRecord(datasetID: dataset.id, sha256: SHA256Digest.hex("img-\(k)-\(j)"), path: "img-\(k)-\(j).png",
                        classIndex: (k + j) % 2, split: .train, width: 32, height: 32)
        }
        let ids = try store.upsertImages(images)
        let rows = ids.enumerated().map { j, id in
            FeatureRow(imageID: id, augIndex: 0, values: (0..<dim).map { d in Float(k * 1000 + j) + Float(d) / Float(dim) })
        }
        try store.insertFeatures(extractionID: extraction.id, rows: rows)
        print("batch \(k)")
        k += 1
        if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
    }
} catch {
    FileHandle.standardError.write(Data("FeatureStoreStress: \(error)\n".utf8))
    exit(1)
}
