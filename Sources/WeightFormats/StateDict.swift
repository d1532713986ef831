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

/// Name, shape and element type of one tensor of a file, known without reading its values.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let sourceDType: TensorDType

    public init(name: String, shape: [Int], sourceDType: TensorDType) {
        self.name = name
        self.shape = shape
        self.sourceDType = sourceDType
    }
}

/// What recognizing a file's layout needs: its tensor names and shapes, no values. Both a loaded
/// `StateDict` and a `WeightFileIndex` (headers only) provide it.
public protocol TensorListing {
    /// The file the tensors came from.
    var file: URL { get }
    /// Tensor names in file order.
    var names: [String] { get }
    /// The shape of tensor `name`, nil when the file has no such tensor.
    func shape(of name: String) -> [Int]?
    /// Keras 3 `.weights.h5` files only: the layer name Keras recorded (the `name` attribute of a
    /// `vars` group) for each such group, keyed by the group's path, e.g.
    /// `"layers/conv2d/vars": "stem_conv"`. Tensor names stay the HDF5 paths
    /// (`layers/conv2d/vars/0`); this says which layer they belong to. Empty for other files.
    var kerasLayerNames: [String: String] { get }
}

/// The tensors of a weight file without their values: what `WeightFiles.index` reads (headers,
/// pickles, HDF5 metadata; no tensor data). Lets a caller decide what to load before loading it.
public struct WeightFileIndex: TensorListing, Sendable {
    public let file: URL
    public let format: WeightFormat
    /// Tensors in file order.
    public let tensors: [TensorInfo]
    public let kerasLayerNames: [String: String]
    private let byName: [String: Int]

    public init(file: URL, format: WeightFormat, tensors: [TensorInfo], kerasLayerNames: [String: String] = [:]) {
        self.file = file
        self.format = format
        self.tensors = tensors
        self.kerasLayerNames = kerasLayerNames
        var byName: [String: Int] = [:]
        for (i, t) in tensors.enumerated() where byName[t.name] == nil { byName[t.name] = i }
        self.byName = byName
    }

    public var names: [String] { tensors.map(\.name) }

    public func shape(of name: String) -> [Int]? { byName[name].map { tensors[$0].shape } }

    /// Bytes the tensors occupy in the file (element count x stored element size).
    public var storedBytes: Int { tensors.reduce(0) { $0 + $1.shape.reduce(1, *) * $1.sourceDType.byteSize } }
}

/// Named tensors in file order, from one weight file. Format-neutral.
public struct StateDict: TensorListing, Sendable {
    /// The file the tensors came from (named in every error).
    public let file: URL
    public private(set) var tensors: [String: WeightTensor]
    /// Tensor names in file order.
    public private(set) var names: [String]
    /// Tensors the file holds that were deliberately not read (`WeightFiles.load(_:include:)`
    /// returned false for them), in file order. Their values never entered memory.
    public let skipped: [TensorInfo]
    /// See `TensorListing.kerasLayerNames`.
    public let kerasLayerNames: [String: String]

    /// Builds a state dict from tensors in file order; a repeated name is a malformed file.
    public init(file: URL, orderedTensors: [WeightTensor], skipped: [TensorInfo] = [],
                kerasLayerNames: [String: String] = [:]) throws {
        self.file = file
        self.tensors = [:]
        self.names = []
        self.skipped = skipped
        self.kerasLayerNames = kerasLayerNames
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

    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    /// Bytes of Float32 values held in memory.
    public var loadedBytes: Int { tensors.values.reduce(0) { $0 + $1.values.count * 4 } }

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
        return try StateDict(file: file, orderedTensors: renamed, skipped: skipped, kerasLayerNames: kerasLayerNames)
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
