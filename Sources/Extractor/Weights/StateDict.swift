import Foundation

/// The element type a tensor had in its file. Values are always handed out as Float32.
public enum TensorDType: String, Sendable {
    case float32, float16, bfloat16, float64, int64, int32

    /// Bytes per element in the file.
    public var byteSize: Int {
        switch self {
        case .float16, .bfloat16: return 2
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        }
    }
}

/// One named tensor, converted to Float32, row-major and contiguous (`values.count == shape product`).
/// Format-neutral: PyTorch, safetensors or Keras readers all produce this.
public struct WeightTensor: Equatable, Sendable {
    public let name: String
    /// Dimensions outermost first; `[]` for a 0-dim scalar (one value).
    public let shape: [Int]
    public let sourceDType: TensorDType
    public var values: [Float]

    public init(name: String, shape: [Int], sourceDType: TensorDType, values: [Float]) {
        self.name = name
        self.shape = shape
        self.sourceDType = sourceDType
        self.values = values
    }

    /// Number of elements the shape describes (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// Named tensors in file order, from one weight file. Format-neutral.
public struct StateDict: Sendable {
    /// The file the tensors came from (named in every error).
    public let file: URL
    public private(set) var tensors: [String: WeightTensor]
    /// Tensor names in file order.
    public private(set) var names: [String]

    /// Builds a state dict from tensors in file order; a repeated name is a malformed file.
    public init(file: URL, orderedTensors: [WeightTensor]) throws {
        self.file = file
        self.tensors = [:]
        self.names = []
        tensors.reserveCapacity(orderedTensors.count)
        for t in orderedTensors {
            if tensors[t.name] != nil {
                throw WeightFileError.malformed(file: file, detail: "tensor '\(t.name)' appears twice")
            }
            tensors[t.name] = t
            names.append(t.name)
        }
    }

    public var count: Int { names.count }

    /// The tensor called `name`, or an error naming it and the file.
    public func tensor(_ name: String) throws -> WeightTensor {
        guard let t = tensors[name] else {
            throw WeightFileError.tensorNotFound(file: file, name: name, available: names.count)
        }
        return t
    }

    /// Adds a tensor, or replaces the one with the same name (keeping its position).
    public mutating func insert(_ tensor: WeightTensor) {
        if tensors[tensor.name] == nil { names.append(tensor.name) }
        tensors[tensor.name] = tensor
    }

    /// Removes and returns the tensor called `name`, if present.
    @discardableResult
    public mutating func remove(_ name: String) -> WeightTensor? {
        guard let t = tensors.removeValue(forKey: name) else { return nil }
        names.removeAll { $0 == name }
        return t
    }

    /// A copy with `prefix` removed from every name that starts with it (e.g. "module." left by
    /// DataParallel). Names without the prefix are kept unchanged.
    public func strippingPrefix(_ prefix: String) throws -> StateDict {
        let renamed = names.compactMap { tensors[$0] }.map { t -> WeightTensor in
            guard t.name.hasPrefix(prefix) else { return t }
            return WeightTensor(name: String(t.name.dropFirst(prefix.count)), shape: t.shape,
                                sourceDType: t.sourceDType, values: t.values)
        }
        return try StateDict(file: file, orderedTensors: renamed)
    }

    /// Checks the file against the shapes a model needs. Names for which `ignoring` is true are
    /// skipped on both sides (e.g. `num_batches_tracked`). Throws one `validationFailed` error
    /// listing every missing, misshaped and unexpected tensor.
    public func validate(expected: [String: [Int]], ignoring: (String) -> Bool = { _ in false }) throws {
        var problems: [ShapeProblem] = []
        for name in expected.keys.sorted() where !ignoring(name) {
            let want = expected[name] ?? []
            guard let t = tensors[name] else {
                problems.append(.missing(name: name, expected: want))
                continue
            }
            if t.shape != want {
                problems.append(.wrongShape(name: name, expected: want, actual: t.shape))
            }
        }
        for name in names where expected[name] == nil && !ignoring(name) {
            problems.append(.unexpected(name: name, actual: tensors[name]?.shape ?? []))
        }
        if !problems.isEmpty {
            throw WeightFileError.validationFailed(file: file, problems: problems)
        }
    }
}
