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

    func check(source: String) throws {
        try weights.validate(source: source)
        if inputDim != weights.inputDim {
            throw HeadTrainerError.corruptHead(source: source, detail: "input_dim \(inputDim) but the first layer takes \(weights.inputDim)")
        }
        if classNames.count != weights.classCount {
            throw HeadTrainerError.corruptHead(source: source, detail: "\(classNames.count) class names for \(weights.classCount) outputs")
        }
        if let t = temperature, !(t.isFinite && t > 0) {
            throw HeadTrainerError.corruptHead(source: source, detail: "temperature \(t) is not a positive number")
        }
    }

    /// `probabilities` from `predict` rescaled by the head's temperature (unchanged without one).
    public func calibrated(_ probabilities: [Float]) -> [Float] {
        Calibration.scale(probabilities: probabilities, classes: classCount, temperature: temperature ?? 1)
    }

    public var classCount: Int { classNames.count }

    /// Class probabilities (rows x classes, row-major) for row-major `features` with `inputDim` columns.
    /// Inference mode: batch norm uses the moving statistics, no dropout.
    public func predict(features: [Float], threads: Int? = nil) throws -> [Float] {
        guard features.count % inputDim == 0 else {
            throw HeadTrainerError.incompatible(what: "predict", detail: "\(features.count) values is not a whole number of \(inputDim)-wide rows; the features come from a different backbone than this head was trained on")
        }
        let n = features.count / inputDim
        if n == 0 { return [] }
        for j in 0..<features.count where !features[j].isFinite {
            throw HeadTrainerError.nonFiniteFeature(split: "predict", row: j / inputDim, column: j % inputDim, imageID: -1)
        }
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

    // MARK: Binary form
    //   "HEADWTS1" | UInt32 LE header length | JSON header {config, class_names, input_dim, tensors: [{name, count}],
    //   optional temperature}
    //   | float32 LE tensors in header order.

    static let magic = Array("HEADWTS1".utf8)

    struct Header: Codable {
        struct Tensor: Codable { var name: String; var count: Int }
        var config: HeadConfig
        var classNames: [String]
        var inputDim: Int
        var hidden: Int
        var batchnorm: Bool
        var tensors: [Tensor]
        var inputBNEpsilon: Float?
        var hiddenBNEpsilon: Float?
        var temperature: Double?
        enum CodingKeys: String, CodingKey {
            case config, hidden, batchnorm, tensors, temperature, classNames = "class_names", inputDim = "input_dim"
            case inputBNEpsilon = "input_bn_epsilon", hiddenBNEpsilon = "hidden_bn_epsilon"
        }
    }

    /// Compact binary serialization (header JSON + raw little-endian float32 blobs).
    public func encoded() throws -> Data {
        let blobs = weights.blobs
        let header = Header(config: config, classNames: classNames, inputDim: inputDim, hidden: weights.hidden?.outputs ?? 0,
                            batchnorm: weights.inputBatchNorm != nil,
                            tensors: blobs.map { .init(name: $0.name, count: $0.values.count) },
                            inputBNEpsilon: weights.inputBatchNorm?.epsilon, hiddenBNEpsilon: weights.hiddenBatchNorm?.epsilon,
                            temperature: temperature)
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        let h = try enc.encode(header)
        var data = Data(TrainedHead.magic)
        withUnsafeBytes(of: UInt32(h.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(h)
        for b in blobs {
            for v in b.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }

    /// Decodes `encoded()` output; `source` names the origin (file, database row) in errors.
    public init(encoded data: Data, source: String = "head blob") throws {
        let bytes = [UInt8](data)
        func fail(_ s: String) -> HeadTrainerError { .corruptHead(source: source, detail: s) }
        guard bytes.count >= 12, Array(bytes[0..<8]) == TrainedHead.magic else { throw fail("missing HEADWTS1 magic") }
        let hlen = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + hlen <= bytes.count else { throw fail("header length \(hlen) beyond end of data") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[12..<(12 + hlen)])) } catch { throw fail("bad header JSON: \(error)") }
        var offset = 12 + hlen
        var tensors: [String: [Float]] = [:]
        for t in header.tensors {
            guard t.count >= 0, offset + 4 * t.count <= bytes.count else { throw fail("tensor \(t.name) runs past the end") }
            var vals = [Float](repeating: 0, count: t.count)
            for i in 0..<t.count {
                let o = offset + 4 * i
                vals[i] = Float(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
            }
            tensors[t.name] = vals
            offset += 4 * t.count
        }
        guard offset == bytes.count else { throw fail("\(bytes.count - offset) trailing bytes") }
        func get(_ n: String) throws -> [Float] { guard let v = tensors[n] else { throw fail("tensor \(n) missing") }; return v }
        func bn(_ p: String, _ eps: Float?) throws -> BatchNormWeights? {
            guard tensors["\(p).gamma"] != nil else { return nil }
            return BatchNormWeights(gamma: try get("\(p).gamma"), beta: try get("\(p).beta"),
                                    movingMean: try get("\(p).moving_mean"), movingVariance: try get("\(p).moving_variance"),
                                    epsilon: eps ?? 1e-3)
        }
        let k = header.classNames.count, hidden = header.hidden
        var hid: DenseWeights? = nil
        if hidden > 0 { hid = DenseWeights(inputs: header.inputDim, outputs: hidden, kernel: try get("hidden.kernel"), bias: try get("hidden.bias")) }
        let out = DenseWeights(inputs: hidden > 0 ? hidden : header.inputDim, outputs: k, kernel: try get("output.kernel"), bias: try get("output.bias"))
        config = header.config; classNames = header.classNames; inputDim = header.inputDim; temperature = header.temperature
        weights = HeadWeights(inputBatchNorm: try bn("input_bn", header.inputBNEpsilon), hidden: hid,
                              hiddenBatchNorm: try bn("hidden_bn", header.hiddenBNEpsilon), output: out)
        try check(source: source)
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
