import Foundation

/// Per-class scores (scikit-learn conventions, `zero_division=0`).
public struct ClassMetrics: Codable, Hashable, Sendable {
    public var className: String
    public var precision: Double
    public var recall: Double
    public var f1: Double
    /// One-vs-rest ROC AUC of this class; nil when the split lacks positives or negatives of it.
    public var auc: Double?
    /// Rows of this class in the split.
    public var support: Int

    enum CodingKeys: String, CodingKey { case className = "class", precision, recall, f1, auc, support }
}

/// Classification metrics of one split, matching scikit-learn (verified against fixtures to 1e-6):
///
/// - precision = tp / (tp + fp), 0 for a class never predicted; recall = tp / support, 0 for a class
///   absent from the split; f1 = 2tp / (2tp + fp + fn), 0 when that is 0/0. Macro averages run over
///   *all* classes (sklearn with `labels=range(classes)`), so absent classes count as 0 recall/F1.
/// - macro_auc: mean one-vs-rest ROC AUC (ties count 1/2) over the classes that have both positive
///   and negative rows in the split. scikit-learn returns NaN (with a warning) as soon as one class
///   is absent; we average the defined classes instead, and report nil when none is defined.
/// - log_loss: mean -log(clip(p_true, eps, 1 - eps)) with eps = 2.22e-16 (sklearn on float64 input).
/// - confusion[i][j]: rows of true class i predicted as j (sklearn layout).
/// - ece: expected calibration error over 15 confidence bins (`Calibration.Reliability`); nil in
///   metrics stored before it existed.
public struct ClassificationMetrics: Codable, Hashable, Sendable {
    public var accuracy: Double
    public var macroPrecision: Double
    public var macroRecall: Double
    public var macroF1: Double
    public var macroAUC: Double?
    public var logLoss: Double
    public var perClass: [ClassMetrics]
    public var confusion: [[Int]]
    /// Rows evaluated.
    public var count: Int
    public var ece: Double?

    enum CodingKeys: String, CodingKey {
        case accuracy, confusion, count, ece
        case macroPrecision = "macro_precision", macroRecall = "macro_recall", macroF1 = "macro_f1"
        case macroAUC = "macro_auc", logLoss = "log_loss", perClass = "per_class"
    }

    /// Metrics of `probabilities` (rows x classes, row-major) against `labels`.
    /// The predicted class is the first argmax of each row.
    public init(probabilities: [Float], labels: [Int32], classNames: [String]) throws {
        let k = classNames.count, n = labels.count
        guard k >= 2 else { throw HeadTrainerError.incompatible(what: "metrics", detail: "need at least two class names, got \(k)") }
        guard probabilities.count == n * k else {
            throw HeadTrainerError.dimensionMismatch(split: "metrics", what: "probabilities (rows*classes)", expected: n * k, actual: probabilities.count)
        }
        guard n > 0 else { throw HeadTrainerError.emptySplit(split: "metrics", reason: "no rows to score") }
        for (r, y) in labels.enumerated() where y < 0 || Int(y) >= k {
            throw HeadTrainerError.labelOutOfRange(split: "metrics", row: r, label: y, classCount: k)
        }
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        var logLoss = 0.0
        let eps = Double.ulpOfOne
        for i in 0..<n {
            let row = i * k
            var best = 0
            for j in 1..<k where probabilities[row + j] > probabilities[row + best] { best = j }
            let y = Int(labels[i])
            confusion[y][best] += 1
            let pt = min(max(Double(probabilities[row + y]), eps), 1 - eps)
            logLoss -= Foundation.log(pt)
        }
        logLoss /= Double(n)

        var per: [ClassMetrics] = []
        var correct = 0
        for c in 0..<k {
            let tp = confusion[c][c]
            correct += tp
            let support = confusion[c].reduce(0, +)
            var predicted = 0
            for r in 0..<k { predicted += confusion[r][c] }
            let fp = predicted - tp, fn = support - tp
            let precision = predicted > 0 ? Double(tp) / Double(predicted) : 0
            let recall = support > 0 ? Double(tp) / Double(support) : 0
            let denom = 2 * tp + fp + fn
            let f1 = denom > 0 ? Double(2 * tp) / Double(denom) : 0
            let auc = ClassificationMetrics.rocAUC(scores: (0..<n).map { Double(probabilities[$0 * k + c]) },
                                                   positive: labels.map { Int($0) == c })
            per.append(ClassMetrics(className: classNames[c], precision: precision, recall: recall, f1: f1, auc: auc, support: support))
        }
        let aucs = per.compactMap(\.auc)
        self.accuracy = Double(correct) / Double(n)
        self.macroPrecision = per.map(\.precision).reduce(0, +) / Double(k)
        self.macroRecall = per.map(\.recall).reduce(0, +) / Double(k)
        self.macroF1 = per.map(\.f1).reduce(0, +) / Double(k)
        self.macroAUC = aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count)
        self.logLoss = logLoss
        self.perClass = per
        self.confusion = confusion
        self.count = n
        self.ece = Calibration.Reliability(probabilities: probabilities, labels: labels, classes: k).ece
    }

    /// Area under the ROC curve = probability a random positive outscores a random negative, ties 1/2
    /// (Mann-Whitney U with mid-ranks; equals sklearn's trapezoidal area). nil without both classes.
    public static func rocAUC(scores: [Double], positive: [Bool]) -> Double? {
        let nPos = positive.reduce(0) { $0 + ($1 ? 1 : 0) }, nNeg = positive.count - nPos
        guard nPos > 0, nNeg > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSumPos = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let midRank = Double(i + j) / 2 + 1   // 1-based average rank of the tie group
            for t in i...j where positive[order[t]] { rankSumPos += midRank }
            i = j + 1
        }
        let u = rankSumPos - Double(nPos) * Double(nPos + 1) / 2
        return u / (Double(nPos) * Double(nNeg))
    }

    /// A fixed-width text report: summary lines, per-class table, confusion matrix.
    public func table(title: String? = nil) -> String {
        func f(_ x: Double) -> String { String(format: "%.4f", x) }
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            s.count >= w ? s : (left ? s + String(repeating: " ", count: w - s.count) : String(repeating: " ", count: w - s.count) + s)
        }
        var out = ""
        if let title { out += "\(title)\n" }
        out += "rows \(count)  accuracy \(f(accuracy))  log loss \(f(logLoss))  macro AUC \(macroAUC.map(f) ?? "n/a")"
            + (ece.map { "  ECE \(f($0))" } ?? "") + "\n"
        let nameW = max(5, perClass.map(\.className.count).max() ?? 5, "macro".count)
        out += pad("class", nameW, left: true) + "  precision     recall         f1        auc    support\n"
        for c in perClass {
            out += pad(c.className, nameW, left: true) + "  " + [f(c.precision), f(c.recall), f(c.f1), c.auc.map(f) ?? "n/a"]
                .map { pad($0, 9) }.joined(separator: "  ") + "  " + pad("\(c.support)", 9) + "\n"
        }
        out += pad("macro", nameW, left: true) + "  " + [f(macroPrecision), f(macroRecall), f(macroF1), macroAUC.map(f) ?? "n/a"]
            .map { pad($0, 9) }.joined(separator: "  ") + "  " + pad("\(count)", 9) + "\n"
        out += "confusion (rows = true, columns = predicted):\n"
        let cellW = max(5, String(confusion.flatMap { $0 }.max() ?? 0).count + 1)
        out += pad("", nameW) + "  " + perClass.map { pad(String($0.className.prefix(cellW)), cellW) }.joined(separator: " ") + "\n"
        for (i, row) in confusion.enumerated() {
            out += pad(perClass[i].className, nameW, left: true) + "  " + row.map { pad("\($0)", cellW) }.joined(separator: " ") + "\n"
        }
        return out
    }
}

/// Metrics of every split a training run scored.
public struct SplitMetrics: Codable, Hashable, Sendable {
    /// Copy 0 of the training images.
    public var train: ClassificationMetrics
    public var validation: ClassificationMetrics?
    public var test: ClassificationMetrics?
    /// The fitted temperature and the calibrated validation/test metrics; nil without a validation
    /// split (and in metrics stored before calibration existed).
    public var calibration: SplitCalibration? = nil
    /// Validation and test scored on the mean softmax over copies 0...K (`tta` K > 0); nil without.
    public var tta: TTAMetrics? = nil
    /// Self-training rounds (`pseudo_label` or `labeled_fraction` < 1); nil without.
    public var pseudoLabelRounds: [PseudoLabelRound]? = nil

    enum CodingKeys: String, CodingKey { case train, validation, test, calibration, tta, pseudoLabelRounds = "pseudo_label_rounds" }
}
