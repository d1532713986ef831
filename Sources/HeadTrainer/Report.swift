import ArgumentParser
import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchCLI
import WorkbenchSupport

/// `train-head report`: one self-contained HTML page (and a Markdown summary) of everything in a store.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an HTML report (and a Markdown summary) comparing backbones, heads and sweeps in a store.",
        discussion: """
        For each backbone, its best head by validation loss (train/validation/test accuracy, macro \
        precision, recall, F1 and AUC on the test split) beside the Keras notebook's reference test \
        accuracy; loss and accuracy curves and test confusion matrices of those heads; their calibration \
        (ECE over 15 bins and reliability diagrams, before and after the head's temperature), one-vs-rest \
        ROC and precision-recall curves per class, and their misclassified test images (thumbnails grouped \
        by true and predicted class, most frequent pair first; click a confusion-matrix cell to jump to \
        them); each sweep's leaderboard and validation accuracy against every swept setting. Plots are \
        inline SVG and thumbnails inline JPEG: the page is one file and needs no network.

        Examples:
          train-head report --store features.sqlite --out report/
        """)

    @Option(help: "Feature store with heads (from `train-head` or `train-head sweep`).") var store = "features.sqlite"
    @Option(help: "Folder for report.html and report.md.") var out = "report"
    @Option(help: "Leaderboard rows per sweep in the HTML page (0: all).") var top = 0
    @Option(help: "Misclassified test images shown per head, as thumbnails (0: no gallery).") var gallery = 60

    func run() throws {
        try failing {
            let db = try StoreData.open(store)
            let data = try ReportData.load(db)
            let dir = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let html = dir.appendingPathComponent("report.html"), md = dir.appendingPathComponent("report.md")
            try ReportHTML.page(data, top: top > 0 ? top : nil, gallery: max(gallery, 0)).write(to: html, atomically: true, encoding: .utf8)
            try ReportMarkdown.page(data).write(to: md, atomically: true, encoding: .utf8)
            print("wrote \(html.path) and \(md.path): \(data.backbones.filter { $0.best != nil }.count) backbone(s) with heads, "
                  + "\(data.heads) head(s), \(data.sweeps.count) sweep(s)")
        }
    }
}

/// Everything the report shows, read from the store.
struct ReportData {
    /// One line of the backbone comparison: the best head (if any) and the notebook's number (if any).
    struct BackboneRow {
        let backbone: String
        let best: TrialResult?
        let heads: Int
        /// Test accuracy of this backbone in the experiment's Keras notebook.
        let reference: Double?
        /// Whether the store has features of this backbone.
        let extracted: Bool

        /// Why there is no head to show, and what to run.
        var missingNote: String {
            extracted ? "no head trained yet (train-head --backbone \(backbone))"
                      : "not extracted in this store (extract --backbone \(backbone) ...)"
        }
    }
    struct Sweep {
        let record: SweepRecord
        /// Lowest validation loss first.
        let trials: [TrialResult]
        /// The settings the sweep file varies (plus "backbone" when it has several), in file order.
        let swept: [String]
    }

    let store: String
    let backbones: [BackboneRow]
    let sweeps: [Sweep]
    let heads: Int
    let classNames: [String]
    /// Test predictions of each backbone's best head, by head id; `unscored` says why a head has none.
    let predictions: [Int64: HeadPredictions]
    let unscored: [Int64: String]

    /// The Keras notebook's test accuracies (same dataset, same head, ImageNet backbones in Keras).
    static let references: [(name: String, accuracy: Double)] = [
        ("vgg16", 0.881), ("resnet50", 0.735), ("resnet101", 0.725), ("efficientnet_b0", 0.167),
    ]

    static func load(_ db: FeatureStore) throws -> ReportData {
        let all = try StoredResults.allHeads(db)
        let extracted = try db.extractions().map(\.settings.backbone)
        var rows: [BackboneRow] = []
        var names = references.map(\.name)
        for b in extracted + all.map(\.backbone) where !names.contains(where: { BackboneName.key($0) == BackboneName.key(b) }) {
            names.append(b)
        }
        for name in names {
            let key = BackboneName.key(name)
            let mine = all.filter { BackboneName.key($0.backbone) == key }
            let ref = references.first { BackboneName.key($0.name) == key }?.accuracy
            let label = mine.first?.backbone ?? extracted.first { BackboneName.key($0) == key } ?? name
            // Heads on the pooled features and fine-tuned heads (`--unfreeze`) side by side.
            let frozen = mine.filter { $0.config.unfreeze == 0 }, tuned = mine.filter { $0.config.unfreeze > 0 }
            rows.append(BackboneRow(backbone: label, best: TrialResult.ranked(frozen).first, heads: frozen.count, reference: ref,
                                    extracted: name.split(separator: "+").allSatisfy { part in
                                        extracted.contains { BackboneName.key($0) == BackboneName.key(String(part)) } }))
            if !tuned.isEmpty {
                rows.append(BackboneRow(backbone: "\(label), fine-tuned", best: TrialResult.ranked(tuned).first, heads: tuned.count,
                                        reference: nil, extracted: true))
            }
        }
        var sweeps: [Sweep] = []
        for s in try db.sweeps() {
            let trials = TrialResult.ranked(try StoredResults.trials(db, sweepID: s.id))
            if trials.isEmpty { continue }
            var swept: [String] = []
            if let o = try? JSONSerialization.jsonObject(with: Data(s.config.utf8)) as? [String: Any] {
                let sets = (o["parameters"] as? [[String: Any]]) ?? [(o["parameters"] as? [String: Any]) ?? [:]]
                swept = SweepSpec.headKeys.filter { k in sets.contains { $0[k] != nil } }
                if let r = o["repeats"] as? Int, r > 1, !swept.contains("seed") { swept.append("seed") }
            }
            if Set(trials.map(\.backbone)).count > 1 { swept.insert("backbone", at: 0) }
            if swept.isEmpty { swept = Leaderboard.varyingKeys(trials) }
            sweeps.append(Sweep(record: s, trials: trials, swept: swept))
        }
        var predictions: [Int64: HeadPredictions] = [:], unscored: [Int64: String] = [:]
        for best in rows.compactMap(\.best) {
            do {
                if let p = try HeadPredictions.load(db, headID: best.headID, extractionID: best.extractionID) { predictions[best.headID] = p }
                else { unscored[best.headID] = "its extraction has no test images" }
            } catch {
                unscored[best.headID] = "\(error)"
            }
        }
        return ReportData(store: db.path, backbones: rows, sweeps: sweeps, heads: all.count,
                          classNames: all.first?.metrics.train.perClass.map(\.className) ?? [],
                          predictions: predictions, unscored: unscored)
    }
}

/// The Markdown summary: the comparison table and each sweep's top trials.
enum ReportMarkdown {
    static func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }

    static func page(_ d: ReportData) -> String {
        var s = "# Transfer-learning report\n\nStore: `\(d.store)` — \(d.heads) head(s), \(d.sweeps.count) sweep(s).\n\n"
        s += "## Backbones (best head of each by validation loss)\n\n"
        s += "Precision, recall, F1 and AUC are macro averages on the test split. \"Keras notebook\" is the experiment's reference test accuracy.\n\n"
        s += "| Backbone | Head | Train acc | Val acc | Test acc | Precision | Recall | F1 | AUC | Keras notebook | Head settings |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in d.backbones {
            let ref = r.reference.map { String(format: "%.3f", $0) } ?? "—"
            guard let b = r.best else {
                s += "| \(r.backbone) | \(r.missingNote) | | | | | | | | \(ref) | |\n"
                continue
            }
            let t = b.metrics.test
            s += "| \(r.backbone) | \(b.headID) | \(f(b.metrics.train.accuracy)) | \(f(b.metrics.validation?.accuracy)) | "
                + "\(f(t?.accuracy)) | \(f(t?.macroPrecision)) | \(f(t?.macroRecall)) | \(f(t?.macroF1)) | \(f(t?.macroAUC)) | "
                + "\(ref) | \(b.summary) |\n"
        }
        let scored = d.backbones.compactMap { r in r.best.flatMap { b in d.predictions[b.headID].map { (r.backbone, b, $0) } } }
        if !scored.isEmpty {
            s += "\n## Calibration and ranking (test split, best heads)\n\n"
            s += "ECE over 15 confidence bins before and after the head's temperature (fitted on validation); mean one-vs-rest average precision.\n\n"
            s += "| Backbone | Head | Temperature | ECE | ECE calibrated | Mean AP |\n|---|---|---|---|---|---|\n"
            for (name, b, p) in scored {
                let aps = p.curves.compactMap { $0?.averagePrecision }
                s += "| \(name) | \(b.headID) | \(p.temperature.map { String(format: "%.4f", $0) } ?? "none") | "
                    + "\(f(p.reliability(calibrated: false).ece)) | \(f(p.reliability(calibrated: true).ece)) | "
                    + "\(f(aps.isEmpty ? nil : aps.reduce(0, +) / Double(aps.count))) |\n"
            }
        }
        for sw in d.sweeps {
            s += "\n## Sweep \"\(sw.record.name)\" (\(sw.trials.count) trials, top 10 by validation loss)\n\n"
            let keys = sw.swept
            s += "| # | Trial | Head | " + keys.joined(separator: " | ") + " | Best epoch | Val loss | Val acc | Test acc | Test F1 |\n"
            s += "|" + String(repeating: "---|", count: 8 + keys.count) + "\n"
            for (i, t) in sw.trials.prefix(10).enumerated() {
                s += "| \(i + 1) | \(t.id) | \(t.headID) | " + keys.map { t.setting($0) }.joined(separator: " | ")
                    + " | \(t.curves.bestEpoch) | \(f(t.metrics.validation?.logLoss)) | \(f(t.metrics.validation?.accuracy)) | "
                    + "\(f(t.metrics.test?.accuracy)) | \(f(t.metrics.test?.macroF1)) |\n"
            }
            if let best = sw.trials.first { s += "\nBest: \(best.id) (head \(best.headID), \(best.backbone)): \(best.summary).\n" }
        }
        return s
    }
}
