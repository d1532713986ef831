import Foundation

/// One-vs-rest ROC and precision-recall curves of one class (scikit-learn conventions).
///
/// Thresholds are the distinct scores, highest first; a group of tied scores moves the curve in one
/// step. ROC starts at (0, 0) (`roc_curve(drop_intermediate=False)`); the precision-recall points
/// are (recall, precision) at each threshold. Average precision = sum over thresholds of
/// (recall_i - recall_{i-1}) * precision_i (`average_precision_score`, no interpolation).
public struct RankingCurves: Codable, Hashable, Sendable {
    public struct Point: Codable, Hashable, Sendable {
        public var x: Double
        public var y: Double
        public init(x: Double, y: Double) { self.x = x; self.y = y }
    }
    /// (false positive rate, true positive rate).
    public var roc: [Point]
    /// (recall, precision).
    public var precisionRecall: [Point]
    public var auc: Double
    public var averagePrecision: Double
    public var positives: Int
    public var negatives: Int

    /// nil when `positive` lacks positives or negatives (both curves are undefined then).
    public init?(scores: [Double], positive: [Bool]) {
        precondition(scores.count == positive.count, "RankingCurves: one label per score")
        let nPos = positive.reduce(0) { $0 + ($1 ? 1 : 0) }, nNeg = positive.count - nPos
        guard nPos > 0, nNeg > 0, let auc = ClassificationMetrics.rocAUC(scores: scores, positive: positive) else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var roc = [Point(x: 0, y: 0)], pr: [Point] = []
        var tp = 0, fp = 0, ap = 0.0, lastRecall = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j < order.count && scores[order[j]] == scores[order[i]] {
                if positive[order[j]] { tp += 1 } else { fp += 1 }
                j += 1
            }
            let recall = Double(tp) / Double(nPos), precision = Double(tp) / Double(tp + fp)
            roc.append(Point(x: Double(fp) / Double(nNeg), y: recall))
            pr.append(Point(x: recall, y: precision))
            ap += (recall - lastRecall) * precision
            lastRecall = recall
            i = j
        }
        self.roc = roc; self.precisionRecall = pr; self.auc = auc; self.averagePrecision = ap
        self.positives = nPos; self.negatives = nNeg
    }

    /// The curves of class `c` of `probabilities` (rows x classes, row-major).
    public init?(probabilities: [Float], labels: [Int32], classes k: Int, classIndex c: Int) {
        self.init(scores: (0..<labels.count).map { Double(probabilities[$0 * k + c]) }, positive: labels.map { Int($0) == c })
    }
}
