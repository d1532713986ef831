import Foundation
import HeadTrainerCore

/// The report's calibration and ranking plots: inline SVG on the unit square.
enum ReportCharts {
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    static let plotSide = 240.0, margin = (l: 50.0, t: 40.0, b: 42.0), legendWidth = 190.0

    static func x(_ v: Double) -> Double { margin.l + v * plotSide }
    static func y(_ v: Double) -> Double { margin.t + (1 - v) * plotSide }
    static func f(_ v: Double) -> String { Scatter.f(v) }

    /// The SVG opening, title, frame, 0...1 ticks, axis labels and the dashed reference diagonal.
    static func frame(title: String, xLabel: String, yLabel: String, diagonal: (Double, Double, Double, Double)?,
                      legend: Bool, attributes: String) -> String {
        let width = margin.l + plotSide + (legend ? legendWidth : 16), height = margin.t + plotSide + margin.b
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
            + "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" \(attributes)>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(ReportHTML.esc(title))</text>\n"
        s += "<rect x=\"\(f(x(0)))\" y=\"\(f(y(1)))\" width=\"\(f(plotSide))\" height=\"\(f(plotSide))\" fill=\"none\" stroke=\"#333\"/>\n"
        for t in stride(from: 0.0, through: 1.0001, by: 0.2) {
            s += "<line x1=\"\(f(x(0) - 4))\" y1=\"\(f(y(t)))\" x2=\"\(f(x(1)))\" y2=\"\(f(y(t)))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(f(x(0) - 6))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\">\(String(format: "%.1f", t))</text>"
            s += "<text x=\"\(f(x(t)))\" y=\"\(f(y(0) + 15))\" text-anchor=\"middle\">\(String(format: "%.1f", t))</text>\n"
        }
        s += "<text x=\"\(f(x(0.5)))\" y=\"\(f(y(0) + 32))\" text-anchor=\"middle\">\(xLabel)</text>\n"
        s += "<text transform=\"translate(14,\(f(y(0.5)))) rotate(-90)\" text-anchor=\"middle\">\(yLabel)</text>\n"
        if let (x0, y0, x1, y1) = diagonal {
            s += "<line x1=\"\(f(x(x0)))\" y1=\"\(f(y(y0)))\" x2=\"\(f(x(x1)))\" y2=\"\(f(y(y1)))\" stroke=\"#999\" stroke-dasharray=\"4,4\"/>\n"
        }
        return s
    }

    /// Reliability diagram: accuracy per confidence bin (bars), the gap to the bin's mean confidence
    /// (red), the diagonal of perfect calibration, and the ECE in the title.
    static func reliability(_ r: Calibration.Reliability, headID: Int64, title: String, calibrated: Bool) -> String {
        let which = calibrated ? "calibrated" : "uncalibrated"
        var s = frame(title: "\(title): ECE \(String(format: "%.4f", r.ece))", xLabel: "confidence (max probability)", yLabel: "accuracy",
                      diagonal: (0, 0, 1, 1), legend: false,
                      attributes: "data-reliability=\"\(headID)\" data-calibrated=\"\(calibrated)\" data-ece=\"\(r.ece)\"")
        for b in r.bins where b.count > 0 {
            let w = (b.upper - b.lower) * plotSide
            s += "<rect x=\"\(f(x(b.lower) + 1))\" y=\"\(f(y(b.accuracy)))\" width=\"\(f(w - 2))\" height=\"\(f(b.accuracy * plotSide))\" fill=\"#1f77b4\" fill-opacity=\"0.75\">"
                + "<title>\(String(format: "%.3f-%.3f", b.lower, b.upper)): \(b.count) images, accuracy \(String(format: "%.3f", b.accuracy)), mean confidence \(String(format: "%.3f", b.confidence))</title></rect>"
            let top = max(b.accuracy, b.confidence), bottom = min(b.accuracy, b.confidence)
            s += "<rect x=\"\(f(x(b.lower) + 1))\" y=\"\(f(y(top)))\" width=\"\(f(w - 2))\" height=\"\(f((top - bottom) * plotSide))\" fill=\"#d62728\" fill-opacity=\"0.3\" stroke=\"#d62728\"/>\n"
        }
        s += "<text x=\"\(f(x(0) + 6))\" y=\"\(f(y(1) + 14))\" fill=\"#555\">\(which), \(r.count) images</text>\n"
        return s + "</svg>\n"
    }

    enum Kind { case roc, precisionRecall }

    /// One line per class; the legend gives each class's ROC AUC or average precision.
    static func curves(_ curves: [RankingCurves?], classNames: [String], headID: Int64, title: String, kind: Kind) -> String {
        let roc = kind == .roc
        var s = frame(title: title, xLabel: roc ? "false positive rate" : "recall", yLabel: roc ? "true positive rate" : "precision",
                      diagonal: roc ? (0, 0, 1, 1) : nil, legend: true,
                      attributes: "data-\(roc ? "roc" : "pr")=\"\(headID)\"")
        var line = 0
        for (c, curve) in curves.enumerated() {
            let color = palette[c % palette.count]
            let ly = margin.t + 8 + Double(line) * 16
            line += 1
            let name = ReportHTML.esc(c < classNames.count ? classNames[c] : "\(c)")
            guard let curve else {
                s += "<text x=\"\(f(x(1) + 12))\" y=\"\(f(ly + 4))\" fill=\"#999\">\(name): n/a</text>\n"
                continue
            }
            let pts = roc ? curve.roc : [RankingCurves.Point(x: 0, y: curve.precisionRecall.first?.y ?? 1)] + curve.precisionRecall
            let d = pts.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(x($0.element.x))),\(f(y($0.element.y)))" }.joined(separator: " ")
            s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"/>\n"
            let value = roc ? curve.auc : curve.averagePrecision
            s += "<line x1=\"\(f(x(1) + 12))\" y1=\"\(f(ly))\" x2=\"\(f(x(1) + 30))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
                + "<text x=\"\(f(x(1) + 35))\" y=\"\(f(ly + 4))\" data-class=\"\(name)\" data-\(roc ? "auc" : "ap")=\"\(value)\">"
                + "\(name) (\(roc ? "AUC" : "AP") \(String(format: "%.4f", value)))</text>\n"
        }
        return s + "</svg>\n"
    }
}
