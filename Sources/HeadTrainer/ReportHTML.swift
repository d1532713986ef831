import Foundation
import HeadTrainerCore

/// The HTML page of `train-head report`: inline CSS, SVG, JPEG data: URIs and a few lines of inline
/// script (confusion-matrix cells jump to their misclassified images); opens offline, prints well.
///
/// Every metric cell carries its exact stored value in `data-head`/`data-split`/`data-metric`/
/// `data-value` attributes (the text shows 4 decimals), so tests and scripts can read the numbers back.
enum ReportHTML {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A metric cell: 4 decimals shown, the exact value in attributes.
    static func cell(_ head: Int64, _ split: String, _ metric: String, _ value: Double?, best: Bool = false) -> String {
        guard let value else { return "<td class=\"num na\">n/a</td>" }
        return "<td class=\"num\(best ? " best" : "")\" data-head=\"\(head)\" data-split=\"\(split)\" data-metric=\"\(metric)\" "
            + "data-value=\"\(value)\">\(String(format: "%.4f", value))</td>"
    }

    static let style = """
    body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px; color: #222; padding: 0 16px; }
    h1 { font-size: 26px; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
    h3 { margin-top: 22px; } .meta { color: #666; margin-top: 0; }
    table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13px; }
    th, td { border: 1px solid #d5d5d5; padding: 4px 8px; } th { background: #f2f4f7; text-align: center; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; } td.na { color: #aaa; text-align: center; }
    td.ref { text-align: right; background: #fff8e6; } td.best { font-weight: bold; background: #e9f6e9; }
    tr.missing td { color: #999; } td.settings { font-size: 12px; color: #444; }
    .plots { display: flex; flex-wrap: wrap; gap: 12px; } .plots svg { border: 1px solid #eee; }
    .curve { width: 570px; } .curve svg { width: 100%; height: auto; }
    .cm td { text-align: right; min-width: 42px; } .cm th.row { text-align: left; }
    .note { color: #555; font-size: 13px; } code { background: #f4f4f4; padding: 1px 4px; }
    .cm td[data-target] { cursor: pointer; } .cm td a { color: inherit; }
    .pair { margin: 8px 0 16px; padding: 4px 8px; border-left: 3px solid #d62728; transition: background 0.4s; }
    .pair.flash { background: #fff3c4; } .pair h4 { margin: 6px 0; font-size: 14px; }
    .thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
    figure.thumb { margin: 0; width: 150px; font-size: 11px; } figure.thumb img { display: block; margin-bottom: 3px; }
    figure.thumb code { font-size: 10px; word-break: break-all; padding: 0; }
    .placeholder { width: 96px; height: 72px; background: #eee; color: #888; display: flex; align-items: center;
      justify-content: center; text-align: center; font-size: 10px; border: 1px dashed #bbb; margin-bottom: 3px; }
    """

    static func page(_ d: ReportData, top: Int?, gallery: Int) -> String {
        var s = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Transfer-learning report</title>
        <style>\(style)</style></head><body>
        <h1>Transfer-learning report</h1>
        <p class="meta">Store <code>\(esc(d.store))</code> &middot; \(d.heads) head(s) &middot; \(d.sweeps.count) sweep(s)
        &middot; classes: \(esc(d.classNames.joined(separator: ", ")))</p>

        """
        s += backboneTable(d)
        let trained = d.backbones.compactMap { r in r.best.map { (r.backbone, $0) } }
        if !trained.isEmpty {
            s += "<h2>Training curves</h2>\n<p class=\"note\">Best head of each backbone; the dashed line marks the epoch whose weights were kept.</p>\n<div class=\"plots\">\n"
            for (name, t) in trained {
                // Drawn at the default width (its legend needs it) and scaled down by CSS.
                s += "<div class=\"curve\">" + stripXML(t.curves.svg(title: "\(name): head \(t.headID)")) + "</div>\n"
            }
            s += "</div>\n<h2>Confusion matrices (test split)</h2>\n<div class=\"plots\">\n"
            for (name, t) in trained {
                // Cells link to the gallery's sections; only to those it has (the stored metrics and the
                // report's own predictions could disagree on an image at a near tie).
                let sections = gallery > 0 ? d.predictions[t.headID].map { p in Set(p.errorGroups.map { pairID(t.headID, $0.truth, $0.predicted) }) } : nil
                if let m = t.metrics.test { s += confusion(m, title: "\(name): head \(t.headID)", galleryHead: t.headID, sections: sections ?? []) }
            }
            s += "</div>\n"
            let scored = trained.compactMap { (name, t) in d.predictions[t.headID].map { (name, $0) } }
            for (name, t) in trained {
                guard let why = d.unscored[t.headID] else { continue }
                s += "<p class=\"note\">\(esc(name)) head \(t.headID): no calibration, curves or error gallery: \(esc(why))</p>\n"
            }
            if !scored.isEmpty {
                s += calibrationSection(scored) + rankingSection(scored)
                if gallery > 0 { s += scored.map { errorGallery($0.1, backbone: $0.0, limit: gallery) }.joined() }
            }
        }
        for sw in d.sweeps { s += sweepSection(sw, top: top) }
        s += script + "</body></html>\n"
        return s
    }

    /// Clicking a confusion-matrix cell scrolls to its pair's images and flashes them.
    static let script = """
    <script>
    document.querySelectorAll('td[data-target]').forEach(function (cell) {
      cell.addEventListener('click', function (event) {
        var target = document.getElementById(cell.getAttribute('data-target'));
        if (!target) return;
        event.preventDefault();
        target.scrollIntoView({behavior: 'smooth', block: 'start'});
        target.classList.add('flash');
        setTimeout(function () { target.classList.remove('flash'); }, 1600);
      });
    });
    </script>

    """

    static func calibrationSection(_ scored: [(String, HeadPredictions)]) -> String {
        var s = "<h2>Calibration (test split)</h2>\n<p class=\"note\">Expected calibration error over 15 equal-width confidence bins: "
            + "the row-weighted gap between accuracy (blue bars) and mean confidence per bin (red: the gap). \"Calibrated\": the probabilities "
            + "divided in log space by the head's temperature, fitted on the validation split's NLL (<code>extract predict</code> applies it "
            + "unless <code>--no-calibration</code>). Accuracy is the same either way.</p>\n"
        s += "<table id=\"calibration\"><tr><th>Backbone</th><th>Head</th><th>Temperature</th><th>Test ECE</th><th>Test ECE calibrated</th></tr>\n"
        for (name, p) in scored {
            let before = p.reliability(calibrated: false).ece, after = p.reliability(calibrated: true).ece
            s += "<tr data-calibration-head=\"\(p.headID)\"><td>\(esc(name))</td><td class=\"num\">\(p.headID)</td>"
                + "<td class=\"num\">\(p.temperature.map { String(format: "%.4f", $0) } ?? "none")</td>"
                + "<td class=\"num\" data-ece=\"\(before)\">\(String(format: "%.4f", before))</td>"
                + "<td class=\"num\" data-ece-calibrated=\"\(after)\">\(String(format: "%.4f", after))</td></tr>\n"
        }
        s += "</table>\n<div class=\"plots\">\n"
        for (name, p) in scored {
            s += ReportCharts.reliability(p.reliability(calibrated: false), headID: p.headID, title: "\(name) head \(p.headID)", calibrated: false)
            if p.temperature != nil {
                s += ReportCharts.reliability(p.reliability(calibrated: true), headID: p.headID,
                                              title: "calibrated (T \(String(format: "%.3f", p.temperature!)))", calibrated: true)
            }
        }
        return s + "</div>\n"
    }

    static func rankingSection(_ scored: [(String, HeadPredictions)]) -> String {
        var s = "<h2>ROC and precision-recall curves (test split)</h2>\n<p class=\"note\">One class against the rest, from the "
            + "head's probabilities before calibration (as the metrics tables). AUC: area under the ROC curve; AP: average precision (scikit-learn's <code>average_precision_score</code>).</p>\n"
        for (name, p) in scored {
            let curves = p.curves
            s += "<h3>\(esc(name)): head \(p.headID)</h3>\n<div class=\"plots\">\n"
            s += ReportCharts.curves(curves, classNames: p.classNames, headID: p.headID, title: "ROC", kind: .roc)
            s += ReportCharts.curves(curves, classNames: p.classNames, headID: p.headID, title: "precision-recall", kind: .precisionRecall)
            s += "</div>\n"
        }
        return s
    }

    static func pairID(_ head: Int64, _ truth: Int, _ predicted: Int) -> String { "errors-\(head)-\(truth)-\(predicted)" }

    /// Misclassified test images of one head, grouped by (true, predicted), at most `limit` thumbnails.
    static func errorGallery(_ p: HeadPredictions, backbone: String, limit: Int) -> String {
        let groups = p.errorGroups
        let shown = HeadPredictions.shown(groups, limit: limit)
        let total = groups.reduce(0) { $0 + $1.errors.count }
        func name(_ c: Int) -> String { esc(c < p.classNames.count ? p.classNames[c] : "\(c)") }
        var s = "<h2 id=\"errors-\(p.headID)\">Misclassified test images: \(esc(backbone)), head \(p.headID)</h2>\n"
            + "<p class=\"note\">\(total) of \(p.rows) test images misclassified; \(shown.reduce(0) { $0 + $1.count }) shown "
            + "(<code>--gallery N</code>), the most frequent (true, predicted) pair first and the most confident errors first. "
            + "Probabilities are calibrated.</p>\n"
        for (g, group) in groups.enumerated() {
            s += "<div class=\"pair\" id=\"\(pairID(p.headID, group.truth, group.predicted))\" data-count=\"\(group.errors.count)\">"
                + "<h4>true \(name(group.truth)) &rarr; predicted \(name(group.predicted)): \(group.errors.count) image(s)"
                + (shown[g].count < group.errors.count ? ", \(shown[g].count) shown" : "") + "</h4>\n<div class=\"thumbs\">\n"
            for e in shown[g] {
                let path = p.paths[e.row]
                let picture: String
                switch Thumbnails.dataURI(path: path) {
                case .success(let uri): picture = "<img src=\"\(uri)\" alt=\"\(esc((path as NSString).lastPathComponent))\">"
                case .failure(let why): picture = "<div class=\"placeholder\" title=\"\(esc(why.reason))\">image \(esc(why.reason))</div>"
                }
                s += "<figure class=\"thumb\" data-row=\"\(e.row)\">\(picture)<figcaption><code>\(esc(path))</code><br>"
                    + "true <b>\(name(e.truth))</b>, predicted <b>\(name(e.predicted))</b><br>"
                    + e.top.map { "\(name($0.index)) \(String(format: "%.3f", $0.probability))" }.joined(separator: " &middot; ")
                    + "</figcaption></figure>\n"
            }
            s += "</div></div>\n"
        }
        return s
    }

    static func stripXML(_ svg: String) -> String {
        svg.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("<?xml") }.joined(separator: "\n")
    }

    static func backboneTable(_ d: ReportData) -> String {
        var s = """
        <h2>Backbones</h2>
        <p class="note">For each backbone, its best head by validation loss. Precision, recall, F1 and AUC are macro averages
        on the test split. <b>Keras notebook</b>: the experiment's reference test accuracy for the same dataset and head.</p>
        <table id="backbones"><tr><th>Backbone</th><th>Head</th><th>Train acc</th><th>Val acc</th><th>Test acc</th>
        <th>Precision</th><th>Recall</th><th>F1</th><th>AUC</th><th>Keras notebook</th><th>Heads</th><th>Head settings</th></tr>

        """
        for r in d.backbones {
            let ref = r.reference.map { "<td class=\"ref\" data-reference=\"\(esc(r.backbone))\" data-value=\"\($0)\">\(String(format: "%.3f", $0))</td>" }
                ?? "<td class=\"na\">&mdash;</td>"
            guard let b = r.best else {
                s += "<tr class=\"missing\"><td>\(esc(r.backbone))</td><td colspan=\"8\">\(esc(r.missingNote))</td>"
                    + "\(ref)<td class=\"num\">0</td><td></td></tr>\n"
                continue
            }
            let t = b.metrics.test, h = b.headID
            s += "<tr data-backbone=\"\(esc(r.backbone))\"><td>\(esc(r.backbone))</td><td class=\"num\">\(h)</td>"
                + cell(h, "train", "accuracy", b.metrics.train.accuracy) + cell(h, "validation", "accuracy", b.metrics.validation?.accuracy)
                + cell(h, "test", "accuracy", t?.accuracy, best: true) + cell(h, "test", "macro_precision", t?.macroPrecision)
                + cell(h, "test", "macro_recall", t?.macroRecall) + cell(h, "test", "macro_f1", t?.macroF1)
                + cell(h, "test", "macro_auc", t?.macroAUC) + ref + "<td class=\"num\">\(r.heads)</td>"
                + "<td class=\"settings\">\(esc(b.summary))</td></tr>\n"
        }
        return s + "</table>\n"
    }

    /// Counts with cells shaded by the row's share (recall per class on the diagonal).
    /// With `galleryHead`, off-diagonal cells whose pair is in `sections` link to its images in the error gallery.
    static func confusion(_ m: ClassificationMetrics, title: String, galleryHead: Int64? = nil, sections: Set<String> = []) -> String {
        let names = m.perClass.map(\.className)
        var s = "<div><h3>\(esc(title))</h3><table class=\"cm\"><tr><th>true \\ predicted</th>"
        s += names.map { "<th>\(esc($0))</th>" }.joined() + "</tr>\n"
        for (i, row) in m.confusion.enumerated() {
            let total = max(1, row.reduce(0, +))
            s += "<tr><th class=\"row\">\(esc(i < names.count ? names[i] : "\(i)"))</th>"
            for (j, n) in row.enumerated() {
                let a = Double(n) / Double(total)
                let bg = i == j ? "rgba(44,160,44,\(String(format: "%.2f", a)))" : "rgba(214,39,40,\(String(format: "%.2f", min(1, a * 2))))"
                let style = "style=\"background:\(bg);color:\(a > 0.55 ? "white" : "#222")\""
                if let h = galleryHead, i != j, n > 0, sections.contains(pairID(h, i, j)) {
                    let id = pairID(h, i, j)
                    s += "<td \(style) data-target=\"\(id)\"><a href=\"#\(id)\">\(n)</a></td>"
                } else {
                    s += "<td \(style)>\(n)</td>"
                }
            }
            s += "</tr>\n"
        }
        return s + "</table><p class=\"note\">test accuracy \(String(format: "%.4f", m.accuracy)) on \(m.count) images</p></div>\n"
    }

    static func sweepSection(_ sw: ReportData.Sweep, top: Int?) -> String {
        let keys = sw.swept
        var s = "<h2>Sweep &ldquo;\(esc(sw.record.name))&rdquo;</h2>\n<p class=\"note\">\(sw.trials.count) trials, sorted by validation loss "
            + "(cross-entropy on the held-out training images, without the L2 term); &ldquo;-&rdquo; marks a setting the head ignores.</p>\n"
        s += "<table class=\"leaderboard\" data-sweep=\"\(esc(sw.record.name))\"><tr><th>#</th><th>Trial</th><th>Head</th>"
            + keys.map { "<th>\(esc($0))</th>" }.joined()
            + "<th>Best epoch</th><th>Val loss</th><th>Val acc</th><th>Test acc</th><th>Test F1</th><th>Test AUC</th></tr>\n"
        for (i, t) in sw.trials.enumerated() where top.map({ i < $0 }) ?? true {
            let h = t.headID
            s += "<tr data-trial=\"\(esc(t.id))\"><td class=\"num\">\(i + 1)</td><td><code>\(esc(t.id))</code></td><td class=\"num\">\(h)</td>"
                + keys.map { "<td class=\"num\">\(esc(t.setting($0)))</td>" }.joined()
                + "<td class=\"num\">\(t.curves.bestEpoch)</td>"
                + cell(h, "validation", "log_loss", t.metrics.validation?.logLoss, best: i == 0)
                + cell(h, "validation", "accuracy", t.metrics.validation?.accuracy)
                + cell(h, "test", "accuracy", t.metrics.test?.accuracy) + cell(h, "test", "macro_f1", t.metrics.test?.macroF1)
                + cell(h, "test", "macro_auc", t.metrics.test?.macroAUC) + "</tr>\n"
        }
        s += "</table>\n"
        if let top, sw.trials.count > top { s += "<p class=\"note\">\(sw.trials.count - top) more trials not shown.</p>\n" }
        if let best = sw.trials.first {
            s += "<p>Best trial <code>\(esc(best.id))</code> (head \(best.headID), \(esc(best.backbone))): \(esc(best.summary)).</p>\n"
        }
        let plotted = keys.filter { k in Set(sw.trials.map { $0.setting(k) }).count > 1 }
        if !plotted.isEmpty {
            s += "<h3>Validation accuracy against each swept setting</h3>\n<div class=\"plots\">\n"
            for k in plotted { s += Scatter.svg(key: k, trials: sw.trials) }
            s += "</div>\n"
        }
        return s
    }
}

/// Validation accuracy against one setting, one point per trial; the best trial (lowest
/// validation loss) in red. Few distinct values are drawn as categories with a fixed jitter.
enum Scatter {
    static func svg(key: String, trials: [TrialResult], width: Double = 360, height: Double = 260) -> String {
        let m = (l: 56.0, r: 14.0, t: 42.0, b: 44.0)
        let pw = width - m.l - m.r, ph = height - m.t - m.b
        let pts = trials.compactMap { t in t.metrics.validation.map { (t, $0.accuracy) } }
        guard !pts.isEmpty else { return "" }
        let numbers = pts.map { $0.0.numeric(key) }
        let distinct = Set(pts.map { $0.0.setting(key) })
        let numeric = !numbers.contains(where: { $0 == nil }) && distinct.count > 6 && !distinct.contains("-")
        let values = numbers.compactMap { $0 }
        let log = numeric && (values.min() ?? 0) > 0 && (values.max() ?? 1) / (values.min() ?? 1) >= 20
        var categories: [String] = []
        if !numeric {
            categories = distinct.sorted { a, b in
                switch (Double(a), Double(b)) {
                case let (x?, y?): return x < y
                case (nil, _?): return true
                case (_?, nil): return false
                default: return a < b
                }
            }
        }
        let ys = pts.map(\.1)
        var lo = ys.min()!, hi = ys.max()!
        if hi - lo < 0.01 { lo -= 0.005; hi += 0.005 }
        let pad = (hi - lo) * 0.08; lo -= pad; hi = min(1.0 + pad, hi + pad)
        func py(_ y: Double) -> Double { m.t + ph - (y - lo) / (hi - lo) * ph }
        func tx(_ x: Double) -> Double { log ? Foundation.log10(x) : x }
        let xlo = values.map(tx).min() ?? 0, xhi = max((values.map(tx).max() ?? 1), xlo + 1e-9)
        func px(_ t: TrialResult) -> Double {
            if numeric, let v = t.numeric(key) { return m.l + 8 + (tx(v) - xlo) / (xhi - xlo) * (pw - 16) }
            let i = Double(categories.firstIndex(of: t.setting(key)) ?? 0)
            let slot = pw / Double(max(categories.count, 1))
            let jitter = (Double(stableHash(t.id) % 1000) / 1000 - 0.5) * slot * 0.5
            return m.l + slot * (i + 0.5) + jitter
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" "
            + "data-scatter=\"\(ReportHTML.esc(key))\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">validation accuracy vs \(ReportHTML.esc(key))</text>\n"
        s += "<rect x=\"\(f(m.l))\" y=\"\(f(m.t))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        for t in ticks(lo, hi) {
            s += "<line x1=\"\(f(m.l - 4))\" y1=\"\(f(py(t)))\" x2=\"\(f(m.l + pw))\" y2=\"\(f(py(t)))\" stroke=\"#e3e3e3\"/>"
            s += "<text x=\"\(f(m.l - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", t))</text>\n"
        }
        if numeric {
            let tickValues: [Double] = log ? stride(from: Foundation.floor(xlo), through: Foundation.ceil(xhi), by: 1).map { $0 }
                                           : ticks(xlo, xhi)
            for t in tickValues where t >= xlo - 1e-9 && t <= xhi + 1e-9 {
                let x = m.l + 8 + (t - xlo) / (xhi - xlo) * (pw - 16)
                s += "<line x1=\"\(f(x))\" y1=\"\(f(m.t + ph))\" x2=\"\(f(x))\" y2=\"\(f(m.t + ph + 4))\" stroke=\"#333\"/>"
                s += "<text x=\"\(f(x))\" y=\"\(f(m.t + ph + 16))\" text-anchor=\"middle\">\(log ? String(format: "%g", Foundation.pow(10, t)) : String(format: "%g", t))</text>\n"
            }
        } else {
            let slot = pw / Double(max(categories.count, 1))
            for (i, c) in categories.enumerated() {
                s += "<text x=\"\(f(m.l + slot * (Double(i) + 0.5)))\" y=\"\(f(m.t + ph + 16))\" text-anchor=\"middle\">\(ReportHTML.esc(c))</text>\n"
            }
        }
        s += "<text x=\"\(f(m.l + pw / 2))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(ReportHTML.esc(key))\(log ? " (log scale)" : "")</text>\n"
        s += "<text transform=\"translate(14,\(f(m.t + ph / 2))) rotate(-90)\" text-anchor=\"middle\">val accuracy</text>\n"
        s += "<circle cx=\"\(f(m.l + pw - 124))\" cy=\"\(f(m.t - 11))\" r=\"4\" fill=\"#d62728\" stroke=\"black\"/>"
            + "<text x=\"\(f(m.l + pw))\" y=\"\(f(m.t - 7))\" text-anchor=\"end\" fill=\"#555\">best by validation loss</text>\n"
        let best = TrialResult.ranked(pts.map(\.0)).first?.id
        for (t, y) in pts.sorted(by: { ($0.0.id == best ? 1 : 0) < ($1.0.id == best ? 1 : 0) }) {
            let isBest = t.id == best
            s += "<circle cx=\"\(f(px(t)))\" cy=\"\(f(py(y)))\" r=\"\(isBest ? 6 : 4)\" fill=\"\(isBest ? "#d62728" : "#1f77b4")\" "
                + "fill-opacity=\"\(isBest ? "1" : "0.6")\" stroke=\"\(isBest ? "black" : "none")\">"
                + "<title>\(ReportHTML.esc(t.id)): \(key) \(ReportHTML.esc(t.setting(key))), val acc \(String(format: "%.4f", y))</title></circle>\n"
        }
        return s + "</svg>\n"
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    /// FNV-1a: a jitter that is the same on every run (Swift's Hasher is seeded per process).
    static func stableHash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// About five round tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = max((hi - lo) / 5, 1e-12)
        let mag = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        var t = Foundation.ceil(lo / step) * step, out: [Double] = []
        while t <= hi + step * 1e-9 && out.count < 20 { out.append(t); t += step }
        return out
    }
}
