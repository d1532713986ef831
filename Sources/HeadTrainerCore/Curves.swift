import Foundation

/// Loss and accuracy of one epoch. Train values are Keras-style running means over the epoch's
/// batches (training mode: dropout on, batch statistics, class weights); validation values are an
/// inference pass after the epoch. Losses include the L2 penalty (as Keras reports them).
public struct EpochRecord: Codable, Hashable, Sendable {
    /// 1-based.
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    /// Wall time of the epoch (training steps + validation pass).
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy"
        case validationLoss = "val_loss", validationAccuracy = "val_accuracy"
    }
}

/// Per-epoch curves of a training run, and where early stopping found its best epoch.
public struct TrainingCurves: Codable, Hashable, Sendable {
    public var epochs: [EpochRecord]
    /// 1-based epoch whose weights were kept.
    public var bestEpoch: Int

    enum CodingKeys: String, CodingKey { case epochs, bestEpoch = "best_epoch" }

    public init(epochs: [EpochRecord], bestEpoch: Int) { self.epochs = epochs; self.bestEpoch = bestEpoch }

    /// Two stacked plots (loss, accuracy) with train and validation lines, labelled axes, a legend
    /// and a dashed marker at the best epoch. Self-contained SVG 1.1, no scripts or fonts needed.
    public func svg(title: String = "Head training", width: Int = 720) -> String {
        let panelH = 260, margin = (l: 70.0, r: 20.0, t: 56.0, b: 62.0)
        let height = Int(margin.t) + 2 * panelH + 2 * Int(margin.b)
        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(Self.escape(title))</text>

        """
        let xs = epochs.map { Double($0.epoch) }
        let series: [(String, [(Double, Double?)], [(Double, Double?)])] = [
            ("loss", zip(xs, epochs.map { Optional($0.trainLoss) }).map { ($0, $1) }, zip(xs, epochs.map(\.validationLoss)).map { ($0, $1) }),
            ("accuracy", zip(xs, epochs.map { Optional($0.trainAccuracy) }).map { ($0, $1) }, zip(xs, epochs.map(\.validationAccuracy)).map { ($0, $1) }),
        ]
        for (pi, (name, train, val)) in series.enumerated() {
            let top = margin.t + Double(pi) * (Double(panelH) + margin.b)
            let plotW = Double(width) - margin.l - margin.r, plotH = Double(panelH) - 20
            let ys = (train + val).compactMap(\.1).filter(\.isFinite)
            var lo = ys.min() ?? 0, hi = ys.max() ?? 1
            if name == "accuracy" { lo = min(lo, 1); hi = max(hi, 0) }
            if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
            let padY = (hi - lo) * 0.05; lo -= padY; hi += padY
            let x0 = 1.0, x1 = max(2.0, xs.max() ?? 2)
            func px(_ x: Double) -> Double { margin.l + (x - x0) / (x1 - x0) * plotW }
            func py(_ y: Double) -> Double { top + plotH - (y - lo) / (hi - lo) * plotH }
            s += "<rect x=\"\(margin.l)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#333\"/>\n"
            for t in Self.ticks(lo, hi) {
                let y = py(t)
                s += "<line x1=\"\(margin.l - 4)\" y1=\"\(Self.f(y))\" x2=\"\(margin.l + plotW)\" y2=\"\(Self.f(y))\" stroke=\"#ddd\"/>"
                s += "<text x=\"\(margin.l - 7)\" y=\"\(Self.f(y + 4))\" text-anchor=\"end\">\(Self.label(t))</text>\n"
            }
            for t in Self.ticks(x0, x1, integer: true) {
                let x = px(t)
                s += "<line x1=\"\(Self.f(x))\" y1=\"\(top + plotH)\" x2=\"\(Self.f(x))\" y2=\"\(top + plotH + 4)\" stroke=\"#333\"/>"
                s += "<text x=\"\(Self.f(x))\" y=\"\(top + plotH + 17)\" text-anchor=\"middle\">\(Int(t))</text>\n"
            }
            s += "<text x=\"\(margin.l + plotW / 2)\" y=\"\(top + plotH + 34)\" text-anchor=\"middle\">epoch</text>\n"
            s += "<text transform=\"translate(\(Self.f(margin.l - 50)),\(Self.f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(name)</text>\n"
            if bestEpoch >= 1, !epochs.isEmpty {
                let x = px(Double(bestEpoch))
                s += "<line x1=\"\(Self.f(x))\" y1=\"\(top)\" x2=\"\(Self.f(x))\" y2=\"\(top + plotH)\" stroke=\"#2a2\" stroke-width=\"1.5\" stroke-dasharray=\"5,4\"/>"
                let at = epochs.first { $0.epoch == bestEpoch }
                let value = name == "loss" ? (at?.validationLoss ?? at?.trainLoss) : (at?.validationAccuracy ?? at?.trainAccuracy)
                let detail = value.map { " (\(at?.validationLoss != nil ? "validation " : "")\(name) \(String(format: "%.4f", $0)))" } ?? ""
                s += "<text x=\"\(margin.l + plotW)\" y=\"\(top - 8)\" text-anchor=\"end\" fill=\"#2a2\">- - best epoch \(bestEpoch)\(detail)</text>\n"
            }
            for (pts, color, label, li) in [(train, "#1f77b4", "train", 0), (val, "#d62728", "validation", 1)] {
                let ok = pts.compactMap { p in p.1.flatMap { $0.isFinite ? (p.0, $0) : nil } }
                if ok.isEmpty { continue }
                let d = ok.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(Self.f(px($0.element.0))),\(Self.f(py($0.element.1)))" }.joined(separator: " ")
                s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                for (x, y) in ok where ok.count <= 60 { s += "<circle cx=\"\(Self.f(px(x)))\" cy=\"\(Self.f(py(y)))\" r=\"2.5\" fill=\"\(color)\"/>" }
                // Legend above the plot, left; the best-epoch note sits above it on the right.
                let lx = margin.l + Double(li) * 150, ly = top - 8
                s += "\n<line x1=\"\(Self.f(lx))\" y1=\"\(Self.f(ly - 4))\" x2=\"\(Self.f(lx + 22))\" y2=\"\(Self.f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
                s += "<text x=\"\(Self.f(lx + 28))\" y=\"\(Self.f(ly))\">\(label) \(name)</text>\n"
            }
        }
        s += "</svg>\n"
        return s
    }

    /// Writes `svg()` to `url`.
    public func writeSVG(to url: URL, title: String = "Head training") throws {
        do { try svg(title: title).write(to: url, atomically: true, encoding: .utf8) } catch {
            throw HeadTrainerError.io(path: url.path, detail: "cannot write the curves SVG (\(error.localizedDescription)); check the directory exists and is writable")
        }
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }
    static func label(_ x: Double) -> String { String(format: abs(x) >= 10 ? "%.1f" : "%.3g", x) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    /// About five "nice" tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double, integer: Bool = false) -> [Double] {
        let raw = (hi - lo) / 5
        let mag = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        var step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        if integer { step = max(1, step.rounded()) }
        var t = Foundation.ceil(lo / step) * step, out: [Double] = []
        while t <= hi + step * 1e-9 && out.count < 20 { out.append(t); t += step }
        return out
    }
}
