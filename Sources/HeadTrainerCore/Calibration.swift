import Foundation

/// How well a head's confidences match its accuracy, and temperature scaling (Guo et al. 2017).
///
/// - Confidence of a row: its largest probability (the first argmax, as the metrics use); it is
///   correct when that class is the label.
/// - Reliability bins: `bins` equal-width intervals (b/B, (b+1)/B] of confidence.
/// - ECE = sum over bins of |accuracy(bin) - mean confidence(bin)| * rows(bin) / rows.
/// - Temperature scaling divides the logits by one scalar T > 0 fitted on the validation split by
///   minimizing the mean negative log-likelihood (golden-section search on log T). Argmaxes, hence
///   accuracy, do not change. The head's logits are recovered as log(probability), which differs
///   from the network's logits by a per-row constant that softmax ignores.
public enum Calibration {
    public static let defaultBins = 15
    /// The search interval of the temperature.
    public static let temperatureRange: ClosedRange<Double> = 0.01...100

    public struct Bin: Codable, Hashable, Sendable {
        /// Confidence interval (lower, upper].
        public var lower: Double
        public var upper: Double
        public var count: Int
        /// Mean confidence and accuracy of the rows in the bin (0 for an empty bin).
        public var confidence: Double
        public var accuracy: Double
    }

    /// The reliability diagram's bins and the ECE of `probabilities` (rows x classes, row-major).
    public struct Reliability: Codable, Hashable, Sendable {
        public var bins: [Bin]
        public var ece: Double
        public var count: Int

        public init(probabilities: [Float], labels: [Int32], classes k: Int, bins nb: Int = Calibration.defaultBins) {
            let n = labels.count
            precondition(k >= 1 && probabilities.count == n * k && nb >= 1, "Reliability: probabilities must be rows x classes")
            var count = [Int](repeating: 0, count: nb), correct = [Int](repeating: 0, count: nb)
            var confSum = [Double](repeating: 0, count: nb)
            for i in 0..<n {
                let row = i * k
                var best = 0
                for j in 1..<k where probabilities[row + j] > probabilities[row + best] { best = j }
                let conf = Double(probabilities[row + best])
                let b = min(max(Int((conf * Double(nb)).rounded(.up)) - 1, 0), nb - 1)
                count[b] += 1
                confSum[b] += conf
                if best == Int(labels[i]) { correct[b] += 1 }
            }
            var ece = 0.0
            self.bins = (0..<nb).map { b in
                let c = count[b]
                let conf = c > 0 ? confSum[b] / Double(c) : 0, acc = c > 0 ? Double(correct[b]) / Double(c) : 0
                ece += abs(acc - conf) * Double(c)
                return Bin(lower: Double(b) / Double(nb), upper: Double(b + 1) / Double(nb), count: c, confidence: conf, accuracy: acc)
            }
            self.ece = n > 0 ? ece / Double(n) : 0
            self.count = n
        }
    }

    /// Mean negative log-likelihood of softmax(logits / temperature) (logits rows x classes, row-major).
    public static func nll(logits: [Double], labels: [Int32], classes k: Int, temperature t: Double) -> Double {
        var total = 0.0
        for i in 0..<labels.count {
            let row = i * k
            var m = -Double.infinity
            for j in 0..<k { m = max(m, logits[row + j] / t) }
            var s = 0.0
            for j in 0..<k { s += Foundation.exp(logits[row + j] / t - m) }
            total += m + Foundation.log(s) - logits[row + Int(labels[i])] / t
        }
        return total / Double(max(labels.count, 1))
    }

    /// The temperature minimizing `nll` within `temperatureRange`: golden-section search on log T to
    /// 1e-10 (the NLL is convex in 1/T, so it has one minimum; at a bound when the data push it there).
    public static func fitTemperature(logits: [Double], labels: [Int32], classes k: Int) -> Double {
        precondition(logits.count == labels.count * k, "fitTemperature: logits must be rows x classes")
        let ratio = (5.0.squareRoot() - 1) / 2
        var a = Foundation.log(temperatureRange.lowerBound), b = Foundation.log(temperatureRange.upperBound)
        func f(_ u: Double) -> Double { nll(logits: logits, labels: labels, classes: k, temperature: Foundation.exp(u)) }
        var c = b - ratio * (b - a), d = a + ratio * (b - a)
        var fc = f(c), fd = f(d)
        while b - a > 1e-10 {
            if fc < fd { b = d; d = c; fd = fc; c = b - ratio * (b - a); fc = f(c) }
            else { a = c; c = d; fc = fd; d = a + ratio * (b - a); fd = f(d) }
        }
        return Foundation.exp((a + b) / 2)
    }

    /// log(probability) per entry: the logits up to a per-row constant (zeros become log of the
    /// smallest normal float, so they stay the smallest logit of their row).
    public static func logits(probabilities: [Float]) -> [Double] {
        probabilities.map { Foundation.log(Double(max($0, Float.leastNormalMagnitude))) }
    }

    /// softmax(log(p) / temperature) per row, computed in Double.
    public static func scale(probabilities: [Float], classes k: Int, temperature t: Double) -> [Float] {
        if t == 1 { return probabilities }
        return temperatureSoftmax(logits: logits(probabilities: probabilities), classes: k, temperature: t)
    }
}

/// The head's temperature and its calibrated metrics on the splits that have them.
public struct SplitCalibration: Codable, Hashable, Sendable {
    /// Fitted on the validation split's NLL; 1 means none.
    public var temperature: Double
    /// Metrics of the calibrated probabilities (same accuracy and confusion as without).
    public var validation: ClassificationMetrics
    public var test: ClassificationMetrics?

    /// Fits `head`'s temperature on `validation` and scores both splits with it (copy-0 rows, as given).
    public static func fit(head: inout TrainedHead, validation: LabeledFeatures, test: LabeledFeatures?,
                           threads: Int? = nil) throws -> SplitCalibration {
        let k = head.classCount
        let probs = try head.predict(validation, threads: threads)
        let t = Calibration.fitTemperature(logits: Calibration.logits(probabilities: probs), labels: validation.labels, classes: k)
        head.temperature = t
        func score(_ p: [Float], _ d: LabeledFeatures) throws -> ClassificationMetrics {
            try ClassificationMetrics(probabilities: Calibration.scale(probabilities: p, classes: k, temperature: t),
                                      labels: d.labels, classNames: head.classNames)
        }
        return SplitCalibration(temperature: t, validation: try score(probs, validation),
                                test: try test.map { try score(try head.predict($0, threads: threads), $0) })
    }

    /// "temperature 1.52 (fitted on validation NLL); ECE validation 0.0812 -> 0.0310, test 0.0901 -> 0.0420"
    public func line(uncalibrated m: SplitMetrics) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        var s = String(format: "calibration: temperature %.4f (fitted on the validation NLL); ECE (15 bins) validation ", temperature)
            + "\(f(m.validation?.ece)) -> \(f(validation.ece))"
        if let t = test { s += ", test \(f(m.test?.ece)) -> \(f(t.ece))" }
        return s
    }
}
