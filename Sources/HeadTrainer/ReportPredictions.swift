import FeatureStore
import FineTuneCore
import Foundation
import HeadTrainerCore
import Imaging
import StoredFineTune

/// Per-image test predictions of one stored head, computed at report time from its weights and the
/// store's test features (copy 0), with the images' paths: what the calibration, ROC/PR and error
/// sections of the report are drawn from.
struct HeadPredictions {
    let headID: Int64
    let classNames: [String]
    let labels: [Int32]
    /// Rows x classes: the head's probabilities, and the same after its temperature (equal without one).
    let probabilities: [Float]
    let calibrated: [Float]
    let temperature: Double?
    /// Absolute path of each row's image (dataset root + stored path).
    let paths: [String]

    var classCount: Int { classNames.count }
    var rows: Int { labels.count }

    /// nil when the head's extraction has no test images; throws when the head cannot be scored.
    static func load(_ db: FeatureStore, headID: Int64, extractionID: Int64) throws -> HeadPredictions? {
        let record = try db.head(id: headID)
        let head = try TrainedHead(encoded: record.weights, source: "head \(headID) in \(db.path)")
        // A head on concatenated backbones reads each test image's features of all of them, in order.
        let test = try FeatureMatrix.concatenating(try db.extractions(of: record).map {
            try db.loadFeatures(extractionID: $0.id, split: .test, maxAugIndex: 0)
        })
        guard test.rows > 0 else { return nil }
        let tuned = try db.fineTunedBlocks(headID: headID) != nil
        guard test.dim == head.inputDim || tuned else {
            throw StoreData.Failure(description: "head \(headID) takes \(head.inputDim) features, its extraction(s) give \(test.dim)")
        }
        guard test.classNames == head.classNames else {
            throw StoreData.Failure(description: "head \(headID) was trained on classes \(head.classNames), but extraction \(extractionID) has \(test.classNames)")
        }
        let probs = try head.predict(features: try headFeatures(db, headID: headID, extractionID: extractionID, test: test))
        var root = ""
        if let e = try db.extraction(id: extractionID), let d = try db.dataset(id: e.settings.datasetID) { root = d.root }
        let paths = test.paths.map { $0.hasPrefix("/") || root.isEmpty ? $0 : URL(fileURLWithPath: root).appendingPathComponent($0).path }
        return HeadPredictions(headID: headID, classNames: head.classNames, labels: test.labels.map(Int32.init),
                               probabilities: probs, calibrated: head.calibrated(probs), temperature: head.temperature, paths: paths)
    }

    /// What the head reads for `test`'s rows: their pooled features, or for a fine-tuned head
    /// (`train-head --unfreeze`) its blocks run over the rows' cached block inputs, as `extract
    /// predict` runs them.
    static func headFeatures(_ db: FeatureStore, headID: Int64, extractionID: Int64, test: FeatureMatrix) throws -> [Float] {
        guard let stored = try db.storedFineTunedBlocks(headID: headID, extractionID: extractionID) else { return test.values }
        let blocks = try stored.path.inference()
        // Streamed: only the test rows' inputs are kept (the cache also holds every training copy).
        let n = stored.inputCount
        var row: [FeatureKey: Int] = [:]
        for r in 0..<test.rows { row[FeatureKey(imageID: test.imageIDs[r], augIndex: test.augIndex[r])] = r }
        var inputs = [Float](repeating: 0, count: test.rows * n)
        var found = [Bool](repeating: false, count: test.rows)
        try db.forEachBlockInput(extractionID: extractionID, blocks: stored.cachedBlocks) { key, input in
            guard let r = row[key] else { return }
            for j in 0..<n { inputs[r * n + j] = input[j] }
            found[r] = true
        }
        if let r = found.firstIndex(of: false) {
            throw StoreData.Failure(description: "fine-tuned head \(headID): test image \(test.paths[r]) has no cached block input in extraction \(extractionID)")
        }
        return try blocks.features(inputs)
    }

    func reliability(calibrated: Bool) -> Calibration.Reliability {
        Calibration.Reliability(probabilities: calibrated ? self.calibrated : probabilities, labels: labels, classes: classCount)
    }

    /// One-vs-rest curves of each class (nil for a class without positives or negatives in the split),
    /// from the head's own probabilities: their AUCs are the stored metrics' per-class AUCs.
    var curves: [RankingCurves?] {
        (0..<classCount).map { RankingCurves(probabilities: probabilities, labels: labels, classes: classCount, classIndex: $0) }
    }

    /// A misclassified row: its two most probable classes (calibrated probabilities).
    struct Error {
        let row: Int
        let truth: Int
        let predicted: Int
        let top: [(index: Int, probability: Float)]
        var confidence: Float { top[0].probability }
    }

    /// Misclassified rows grouped by (true, predicted), the most frequent pair first (ties: by class
    /// indices); within a pair, highest confidence first (ties: by row).
    var errorGroups: [(truth: Int, predicted: Int, errors: [Error])] {
        var groups: [Int: [Error]] = [:]
        let k = classCount
        for i in 0..<rows {
            let p = calibrated[(i * k)..<(i * k + k)]
            let ranked = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }.prefix(2).map { (index: $0 - i * k, probability: p[$0]) }
            let y = Int(labels[i])
            guard ranked[0].index != y else { continue }
            groups[y * k + ranked[0].index, default: []].append(Error(row: i, truth: y, predicted: ranked[0].index, top: ranked))
        }
        return groups.map { (truth: $0.key / k, predicted: $0.key % k,
                             errors: $0.value.sorted { ($1.confidence, $0.row) < ($0.confidence, $1.row) }) }
            .sorted { ($1.errors.count, $0.truth, $0.predicted) < ($0.errors.count, $1.truth, $1.predicted) }
    }

    /// Which errors get a thumbnail when at most `limit` are shown: round-robin over the pairs in
    /// their order, so each pair shows its worst errors first and no pair is left out while another
    /// shows a second image.
    static func shown(_ groups: [(truth: Int, predicted: Int, errors: [Error])], limit: Int) -> [[Error]] {
        var out = groups.map { _ in [Error]() }
        var taken = 0, rank = 0
        while taken < limit {
            var any = false
            for (g, group) in groups.enumerated() where rank < group.errors.count && taken < limit {
                out[g].append(group.errors[rank]); taken += 1; any = true
            }
            if !any { break }
            rank += 1
        }
        return out
    }
}

/// Thumbnails of the report: JPEG data: URIs, or why there is none.
enum Thumbnails {
    static let side = 96

    /// A `data:image/jpeg;base64,...` URI of the image at `path` shrunk to `side` px, or the reason
    /// it cannot be shown (missing file, undecodable bytes).
    static func dataURI(path: String, side: Int = side) -> Result<String, ThumbnailFailure> {
        guard FileManager.default.fileExists(atPath: path) else { return .failure(ThumbnailFailure(reason: "no longer on disk")) }
        do {
            let image = try ImageCodec.decode(file: URL(fileURLWithPath: path))
            let jpeg = try ImageCodec.encodeJPEG(try ImageCodec.thumbnail(image, maxSide: side), quality: 80)
            return .success("data:image/jpeg;base64," + jpeg.base64EncodedString())
        } catch {
            return .failure(ThumbnailFailure(reason: "\(error)"))
        }
    }

    struct ThumbnailFailure: Swift.Error { let reason: String }
}
