import FeatureStore
import Foundation
import HeadTrainerCore

/// A stored head read back for comparison: its config, metrics and curves (weights are not needed).
struct TrialResult {
    /// The sweep trial key, or "head-ID" for a head trained outside a sweep.
    let id: String
    let headID: Int64
    let sweepID: Int64?
    let extractionID: Int64
    /// Every extraction the head was trained on, in feature order (one unless concatenated).
    let extractionIDs: [Int64]
    /// The backbone, or the concatenated ones joined with "+".
    let backbone: String
    let config: HeadConfig
    let metrics: SplitMetrics
    let curves: TrainingCurves

    /// What heads are ranked by: the validation cross-entropy (no L2 term, so heads with different
    /// penalties compare fairly); heads without a validation split rank last.
    var validationLoss: Double { metrics.validation?.logLoss ?? .infinity }

    init(_ record: HeadRecord, backbone: String, extractionIDs: [Int64]) throws {
        let dec = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
            do { return try dec.decode(type, from: Data(text.utf8)) } catch {
                throw StoreData.Failure(description: "head \(record.id ?? -1): its \(what) JSON cannot be read (\(error)); "
                                        + "it was written by another version of train-head; retrain it or delete it")
            }
        }
        id = record.trialKey ?? "head-\(record.id ?? -1)"
        headID = record.id ?? -1
        sweepID = record.sweepID
        extractionID = record.extractionID
        self.extractionIDs = extractionIDs
        self.backbone = backbone
        config = try decode(HeadConfig.self, record.config, "config")
        var metrics = try decode(SplitMetrics.self, record.metrics, "metrics")
        // A trial with `tta` K predicts by the mean over copies 0...K: it is ranked and shown by those
        // predictions' validation and test metrics (the single-copy ones stay in the stored metrics).
        if let tta = metrics.tta {
            metrics.validation = tta.validation ?? metrics.validation
            metrics.test = tta.test ?? metrics.test
        }
        self.metrics = metrics
        curves = try decode(TrainingCurves.self, record.curves, "curves")
    }

    /// Lowest validation loss first; the trial id breaks ties so the order is stable.
    static func ranked(_ trials: [TrialResult]) -> [TrialResult] {
        trials.sorted { ($0.validationLoss, $0.id) < ($1.validationLoss, $1.id) }
    }

    /// The value of a head setting as shown in tables ("-" when the trainer ignores it).
    func setting(_ key: String) -> String {
        if key == "backbone" { return backbone }
        guard let s = HeadConfig.setting(key) else { return "?" }
        return s.relevant(config) ? s.show(config) : "-"
    }

    /// A numeric value of a setting for plots (nil for non-numeric settings).
    func numeric(_ key: String) -> Double? {
        switch HeadConfig.setting(key)?.value(config) {
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        default: return nil
        }
    }

    /// A compact description of the head: "BN + Dense 256 + dropout 0.2, L2 1e-4, Adam 1e-4, batch 32".
    var summary: String {
        let c = config
        var parts: [String] = []
        parts.append((c.batchnorm ? "BN + " : "") + (c.hidden > 0 ? "Dense \(c.hidden) + dropout \(String(format: "%g", c.dropout))" : "linear"))
        parts.append("L2 \(String(format: "%g", c.l2))")
        parts.append(c.effectiveSolver == .lbfgs ? "L-BFGS" : "Adam \(String(format: "%g", c.lr)), batch \(c.batchSize)")
        parts.append(c.augmented.map { $0 == 0 ? "original images only" : "copies 0..\($0)" } ?? "all copies")
        if c.classWeights != .none { parts.append("\(c.classWeights.rawValue) class weights") }
        if c.unfreeze > 0 {
            parts.append("last \(c.unfreeze) block(s) fine-tuned (block lr \(String(format: "%g", c.effectiveBlockLR)), BN \(c.bnMode.rawValue))")
        }
        parts.append("seed \(c.seed)")
        return parts.joined(separator: ", ")
    }

    /// The JSON form of one trial (`sweep --json`): metric objects as in `train-head --json`.
    struct JSON: Encodable {
        let id: String
        let head_id: Int64
        let backbone: String
        let extraction_id: Int64
        let extraction_ids: [Int64]
        let config: HeadConfig
        let best_epoch: Int
        let epochs_run: Int
        let validation_loss: Double?
        let train: ClassificationMetrics
        let validation: ClassificationMetrics?
        let test: ClassificationMetrics?
    }

    var json: JSON {
        JSON(id: id, head_id: headID, backbone: backbone, extraction_id: extractionID, extraction_ids: extractionIDs, config: config,
             best_epoch: curves.bestEpoch, epochs_run: curves.epochs.count,
             validation_loss: metrics.validation?.logLoss, train: metrics.train,
             validation: metrics.validation, test: metrics.test)
    }
}

/// Reads heads and the backbones they were trained on.
enum StoredResults {
    static func trials(_ db: FeatureStore, sweepID: Int64) throws -> [TrialResult] {
        let resolve = try resolver(db)
        return try db.heads(sweepID: sweepID).map(resolve)
    }

    static func allHeads(_ db: FeatureStore) throws -> [TrialResult] {
        let resolve = try resolver(db)
        var out: [TrialResult] = []
        for e in try db.extractions() { out += try db.heads(extractionID: e.id).map(resolve) }
        return out
    }

    /// Reads a head with its backbone name and extraction ids (all of them for concatenated features;
    /// "?" and no id for an extraction the store no longer has), from one read of the extractions.
    static func resolver(_ db: FeatureStore) throws -> (HeadRecord) throws -> TrialResult {
        let all = try db.extractions()
        let byID = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
        return { record in
            let primary = byID[record.extractionID]
            guard let inputs = record.inputs else {
                return try TrialResult(record, backbone: primary?.settings.backbone ?? "?", extractionIDs: [record.extractionID])
            }
            let ids = inputs.compactMap { input in
                all.first { $0.settingsKey == input.settingsKey && $0.settings.datasetID == primary?.settings.datasetID }?.id
            }
            return try TrialResult(record, backbone: inputs.map(\.backbone).joined(separator: "+"), extractionIDs: ids)
        }
    }
}

/// The text leaderboard printed at the end of a sweep.
enum Leaderboard {
    /// Columns: rank, trial, the settings that vary, then best epoch and metrics.
    static func text(_ ranked: [TrialResult], keys: [String], limit: Int? = nil) -> String {
        let header = ["#", "trial"] + keys + ["best ep", "val loss", "val acc", "test acc", "test F1"]
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        var rows: [[String]] = []
        for (i, t) in ranked.enumerated() where limit.map({ i < $0 }) ?? true {
            rows.append(["\(i + 1)", t.id] + keys.map { t.setting($0) }
                        + ["\(t.curves.bestEpoch)", f(t.metrics.validation?.logLoss), f(t.metrics.validation?.accuracy),
                           f(t.metrics.test?.accuracy), f(t.metrics.test?.macroF1)])
        }
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { c, s in
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return c == 1 || (c >= 2 && c < 2 + keys.count && keys[c - 2] == "backbone") ? s + pad : pad + s
            }.joined(separator: "  ")
        }
        var out = line(header) + "\n"
        for r in rows { out += line(r) + "\n" }
        if let limit, ranked.count > limit { out += "... \(ranked.count - limit) more (use --top 0 to list all)\n" }
        return out
    }

    /// The settings worth a column: those that differ between trials (backbone first).
    static func varyingKeys(_ trials: [TrialResult]) -> [String] {
        let keys = ["backbone"] + SweepSpec.headKeys
        return keys.filter { k in Set(trials.map { $0.setting(k) }).count > 1 }
    }
}
