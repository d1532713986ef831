import Foundation

/// The only Python globals a checkpoint pickle may name. Anything else is refused at the GLOBAL
/// opcode itself, so no other callable can ever be reached.
enum TorchGlobal: Equatable {
    case orderedDict                  // collections.OrderedDict
    case rebuildTensorV2              // torch._utils._rebuild_tensor_v2
    case rebuildParameter             // torch._utils._rebuild_parameter
    case storageType(TensorDType)     // torch.FloatStorage, torch.HalfStorage, ...

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", "FloatStorage"): self = .storageType(.float32)
        case ("torch", "HalfStorage"): self = .storageType(.float16)
        case ("torch", "BFloat16Storage"): self = .storageType(.bfloat16)
        case ("torch", "DoubleStorage"): self = .storageType(.float64)
        case ("torch", "LongStorage"): self = .storageType(.int64)
        case ("torch", "IntStorage"): self = .storageType(.int32)
        default: return nil
        }
    }
}

/// A storage named by a persistent id: `('storage', torch.XStorage, key, location, numel[, view])`.
struct StorageRef {
    let key: String
    let dtype: TensorDType
    /// Element offset into the stored bytes (non-zero only for legacy storage views).
    let elementOffset: Int
    /// Elements the persistent id declares (a legacy view's size, otherwise the storage's numel).
    let elementCount: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
struct TensorRef {
    let storage: StorageRef
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// Python lists are mutable and shared through the memo, so they are reference types here.
final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A Python dict (or OrderedDict) keeping insertion order; a re-assigned key keeps its position.
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var index: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        if let k = key.hashKey, let i = index[k] {
            entries[i].value = value
            return
        }
        if let k = key.hashKey { index[k] = entries.count }
        entries.append((key, value))
    }

    func value(forString key: String) -> PickleValue? {
        guard let i = index["s:" + key] else { return nil }
        return entries[i].value
    }
}

/// What a state-dict pickle can build.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// A LONG1 wider than 64 bits (little-endian two's complement), e.g. the legacy magic number.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(TorchGlobal)
    case storage(StorageRef)
    case tensor(TensorRef)

    /// Key for dict de-duplication (strings and ints; other keys are never merged).
    var hashKey: String? {
        switch self {
        case .string(let s): return "s:" + s
        case .int(let i): return "i:\(i)"
        case .bool(let b): return "i:\(b ? 1 : 0)"
        default: return nil
        }
    }

    /// Python-ish type name for error messages.
    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "global"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// Names of all pickle opcodes, for error messages ("0x69 INST").
enum PickleOpcode {
    static let names: [UInt8: String] = [
        0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT",
        0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2", 0x4E: "NONE", 0x50: "PERSID",
        0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
        0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
        0x7D: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET",
        0x6C: "LIST", 0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
        0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
        0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1",
        0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8A: "LONG1", 0x8B: "LONG4",
        0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8",
        0x8E: "BINBYTES8", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
        0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
        0x98: "READONLY_BUFFER",
    ]

    static func describe(_ op: UInt8) -> String {
        let hex = "0x" + String(op, radix: 16, uppercase: true).leftPadded(to: 2)
        return names[op].map { "\(hex) \($0)" } ?? "\(hex) (not a pickle opcode)"
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
