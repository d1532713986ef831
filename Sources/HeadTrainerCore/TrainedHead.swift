import Foundation

/// A fitted head: configuration, class names and weights. Codable (JSON with float arrays) and
/// with a compact binary form (`encoded()`), for storing as a blob.
public struct TrainedHead: Codable, Hashable, Sendable {
    public var config: HeadConfig
    public var classNames: [String]
    public var inputDim: Int
    public var weights: HeadWeights
    /// Temperature-scaling divisor of the logits fitted on the validation split (`Calibration`);
    /// nil (heads trained before it existed, or without validation) means 1. `predict` ignores it:
    /// `calibrated` applies it.
    public var temperature: Double?

    enum CodingKeys: String, CodingKey { case config, weights, temperature, classNames = "class_names", inputDim = "input_dim" }

    public init(config: HeadConfig, classNames: [String], weights: HeadWeights, temperature: Double? = nil) throws {
        self.config = config; self.classNames = classNames; self.weights = weights; self.temperature = temperature
        self.inputDim = weights.inputDim
        try check(source: "head")
    }

    /// The stored form (`HeadModel.StoredHead`: the one reader and writer of the head blob).
    var stored: StoredHead<HeadConfig> {
        StoredHead(config: config, classNames: classNames, inputDim: inputDim, weights: weights, temperature: temperature)
    }

    func check(source: String) throws { try HeadTrainerError.wrapping { try stored.check(source: source) } }

    /// `probabilities` from `predict` rescaled by the head's temperature (unchanged without one).
    public func calibrated(_ probabilities: [Float]) -> [Float] {
        Calibration.scale(probabilities: probabilities, classes: classCount, temperature: temperature ?? 1)
    }

    public var classCount: Int { classNames.count }

    /// Class probabilities (rows x classes, row-major) for row-major `features` with `inputDim` columns.
    /// Inference mode: batch norm uses the moving statistics, no dropout.
    public func predict(features: [Float], threads: Int? = nil) throws -> [Float] {
        let n = try HeadTrainerError.wrapping { try HeadInference.rowCount(features, width: inputDim) }
        if n == 0 { return [] }
        let net = HeadNetwork(config: config, weights: weights, maxBatch: 1, threads: threads)
        var out = [Float](repeating: 0, count: n * classCount)
        features.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                _ = net.evaluate(data: x.baseAddress!, n: n, labels: nil, probsOut: o.baseAddress!)
            }
        }
        return out
    }

    /// Probabilities for every row of `data` (which must have this head's dimension).
    public func predict(_ data: LabeledFeatures, threads: Int? = nil) throws -> [Float] {
        guard data.dim == inputDim else {
            throw HeadTrainerError.incompatible(what: "predict", detail: "features are \(data.dim)-wide but the head takes \(inputDim)")
        }
        return try predict(features: data.values, threads: threads)
    }

    /// Metrics of this head on `data` (all rows).
    public func evaluate(_ data: LabeledFeatures, threads: Int? = nil) throws -> ClassificationMetrics {
        try data.validate(split: "evaluate")
        return try ClassificationMetrics(probabilities: predict(data, threads: threads), labels: data.labels, classNames: classNames)
    }

    // MARK: Binary form (`StoredHead`)

    /// Compact binary serialization (header JSON + raw little-endian float32 blobs).
    public func encoded() throws -> Data { try stored.encoded() }

    /// Decodes `encoded()` output; `source` names the origin (file, database row) in errors.
    public init(encoded data: Data, source: String = "head blob") throws {
        let s = try HeadTrainerError.wrapping { try StoredHead<HeadConfig>(encoded: data, source: source) }
        config = s.config; classNames = s.classNames; inputDim = s.inputDim; weights = s.weights; temperature = s.temperature
    }

    public func write(to url: URL) throws {
        do { try encoded().write(to: url) } catch let e as HeadTrainerError { throw e } catch {
            throw HeadTrainerError.io(path: url.path, detail: "cannot write the head (\(error.localizedDescription))")
        }
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HeadTrainerError.io(path: url.path, detail: "cannot read the head file (\(error.localizedDescription)); train a head first")
        }
        try self.init(encoded: data, source: url.path)
    }
}
