import Foundation

/// What can go wrong reading a stored head or running it. `HeadTrainerError` has the same cases
/// (and messages) for the trainer's callers.
public enum HeadModelError: Error, CustomStringConvertible, Equatable {
    /// A serialized head could not be decoded.
    case corruptHead(source: String, detail: String)
    /// A head and its inputs disagree on dimension.
    case incompatible(what: String, detail: String)
    /// A feature value given to `predict` is NaN or infinite.
    case nonFiniteFeature(row: Int, column: Int)

    public var description: String {
        switch self {
        case let .corruptHead(source, detail):
            return "\(source): not a valid serialized head (\(detail)). Retrain the head or re-export it."
        case let .incompatible(what, detail):
            return "\(what): \(detail)."
        case let .nonFiniteFeature(row, column):
            return "predict features: row \(row), column \(column) is NaN or infinite. "
                + "Re-extract the features of that image; the backbone output is corrupt."
        }
    }
}

/// A head as the store keeps it (the `weights` blob of a head row, `train-head` head files):
///
///     "HEADWTS1" | UInt32 LE header length | JSON header {config, class_names, input_dim, hidden,
///     batchnorm, tensors: [{name, count}], input_bn_epsilon, hidden_bn_epsilon, optional temperature}
///     | float32 LE tensors in header order (`HeadWeights.blobs`).
///
/// `Config` is the training configuration (`HeadConfig` in the trainer); inference does not read it
/// (`UnreadConfig`). This is the one reader and writer of the format.
public struct StoredHead<Config: Codable> {
    public var config: Config
    public var classNames: [String]
    public var inputDim: Int
    public var weights: HeadWeights
    /// Temperature-scaling divisor of the logits; nil (heads trained before calibration, or
    /// without a validation split) means 1.
    public var temperature: Double?

    public init(config: Config, classNames: [String], inputDim: Int, weights: HeadWeights, temperature: Double?) {
        self.config = config; self.classNames = classNames; self.inputDim = inputDim
        self.weights = weights; self.temperature = temperature
    }

    public var classCount: Int { classNames.count }

    /// Checks tensor sizes, `inputDim`, the class names and the temperature against each other.
    public func check(source: String) throws {
        try weights.validate(source: source)
        if inputDim != weights.inputDim {
            throw HeadModelError.corruptHead(source: source, detail: "input_dim \(inputDim) but the first layer takes \(weights.inputDim)")
        }
        if classNames.count != weights.classCount {
            throw HeadModelError.corruptHead(source: source, detail: "\(classNames.count) class names for \(weights.classCount) outputs")
        }
        if let t = temperature, !(t.isFinite && t > 0) {
            throw HeadModelError.corruptHead(source: source, detail: "temperature \(t) is not a positive number")
        }
    }

    static var magic: [UInt8] { Array("HEADWTS1".utf8) }

    struct Header: Codable {
        struct Tensor: Codable { var name: String; var count: Int }
        var config: Config
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
        var data = Data(Self.magic)
        withUnsafeBytes(of: UInt32(h.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(h)
        for b in blobs {
            for v in b.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }

    /// Decodes `encoded()` output and checks it; `source` names the origin (file, database row) in errors.
    public init(encoded data: Data, source: String = "head blob") throws {
        let bytes = [UInt8](data)
        func fail(_ s: String) -> HeadModelError { .corruptHead(source: source, detail: s) }
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.magic else { throw fail("missing HEADWTS1 magic") }
        let hlen = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + hlen <= bytes.count else { throw fail("header length \(hlen) beyond end of data") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[12..<(12 + hlen)])) } catch { throw fail("bad header JSON: \(error)") }
        var offset = 12 + hlen
        var tensors: [String: [Float]] = [:]
        for t in header.tensors {
            guard t.count >= 0, t.count <= (bytes.count - offset) / 4 else { throw fail("tensor \(t.name) runs past the end") }
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
        self.init(config: header.config, classNames: header.classNames, inputDim: header.inputDim,
                  weights: HeadWeights(inputBatchNorm: try bn("input_bn", header.inputBNEpsilon), hidden: hid,
                                       hiddenBatchNorm: try bn("hidden_bn", header.hiddenBNEpsilon), output: out),
                  temperature: header.temperature)
        try check(source: source)
    }
}

/// The `config` of a stored head when only running it: any JSON object, not read. Inference needs
/// the tensors, class names and temperature; the configuration matters to training.
public struct UnreadConfig: Codable, Sendable {
    public init() {}
    public init(from decoder: Decoder) throws { _ = try decoder.container(keyedBy: Key.self) }
    public func encode(to encoder: Encoder) throws {
        throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                                                     debugDescription: "a head read for inference keeps no configuration to write back"))
    }
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
