import Foundation

/// A small pickle interpreter for exactly what torch.save state dicts use (protocols 2-5).
///
/// It is an allow-list, not a Python emulator: any other opcode, and any global other than
/// OrderedDict / the two tensor rebuild functions / the storage types, is an error that names it.
/// Nothing is imported or executed; "calls" (REDUCE/NEWOBJ) are interpreted for those few globals.
/// Persistent ids (BINPERSID) become `StorageRef`s; the tensor data is resolved later by the caller.
struct PickleMachine {
    private var input: ByteCursor
    private let start: Int
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Storage key -> dtype, for every persistent id seen (legacy files need it to size storages).
    private(set) var storageTypes: [String: TensorDType] = [:]

    var file: URL { input.file }

    /// Prepares to read one pickle starting at `start` in `bytes`.
    init(bytes: UnsafeRawBufferPointer, start: Int, file: URL, context: String) {
        input = ByteCursor(bytes, at: start, file: file, context: context)
        self.start = start
    }

    /// Runs to STOP. Returns the pickled object and the offset just past the STOP opcode.
    mutating func run() throws -> (value: PickleValue, end: Int) {
        while true {
            let at = input.position - start
            let op = try input.u8()
            switch op {
            case 0x80: _ = try input.u8()                                   // PROTO
            case 0x95: _ = try input.le(UInt64.self)                        // FRAME (framing is transparent)
            case 0x2E:                                                      // STOP
                guard marks.isEmpty, stack.count == 1, let v = stack.last else {
                    throw malformed("STOP at offset \(at) with \(stack.count) values on the stack")
                }
                return (v, input.position)
            case 0x28: marks.append(stack.count)                            // MARK
            case 0x7D: stack.append(.dict(PickleDict()))                    // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                    // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                             // EMPTY_TUPLE
            case 0x74: stack.append(.tuple(try popMark(op)))                // TUPLE
            case 0x85: let a = try pop(op); stack.append(.tuple([a]))       // TUPLE1
            case 0x86:                                                      // TUPLE2
                let b = try pop(op), a = try pop(op)
                stack.append(.tuple([a, b]))
            case 0x87:                                                      // TUPLE3
                let c = try pop(op), b = try pop(op), a = try pop(op)
                stack.append(.tuple([a, b, c]))
            case 0x64:                                                      // DICT
                let d = PickleDict()
                try setItems(d, try popMark(op), op)
                stack.append(.dict(d))
            case 0x6C: stack.append(.list(PickleList(try popMark(op))))     // LIST
            case 0x61:                                                      // APPEND
                let v = try pop(op)
                try list(op).items.append(v)
            case 0x65:                                                      // APPENDS
                let vs = try popMark(op)
                try list(op).items.append(contentsOf: vs)
            case 0x73:                                                      // SETITEM
                let v = try pop(op), k = try pop(op)
                try dict(op).set(k, v)
            case 0x75:                                                      // SETITEMS
                let kvs = try popMark(op)
                try setItems(try dict(op), kvs, op)
            case 0x71: try put(Int(try input.u8()), op)                     // BINPUT
            case 0x72: try put(Int(try input.le(UInt32.self)), op)          // LONG_BINPUT
            case 0x94: try put(memo.count, op)                              // MEMOIZE
            case 0x68: try get(Int(try input.u8()))                         // BINGET
            case 0x6A: try get(Int(try input.le(UInt32.self)))              // LONG_BINGET
            case 0x4A: stack.append(.int(Int(try input.le(Int32.self))))    // BININT
            case 0x4B: stack.append(.int(Int(try input.u8())))              // BININT1
            case 0x4D: stack.append(.int(Int(try input.le(UInt16.self))))   // BININT2
            case 0x8A: stack.append(try long1())                            // LONG1
            case 0x47:                                                      // BINFLOAT (big-endian)
                let raw = try input.take(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x4E: stack.append(.none)                                  // NONE
            case 0x88: stack.append(.bool(true))                            // NEWTRUE
            case 0x89: stack.append(.bool(false))                           // NEWFALSE
            case 0x58: stack.append(.string(try text(Int(try input.le(UInt32.self)))))  // BINUNICODE
            case 0x8C: stack.append(.string(try text(Int(try input.u8()))))             // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try length64())))                  // BINUNICODE8
            case 0x54:                                                                  // BINSTRING
                let n = Int(try input.le(Int32.self))
                guard n >= 0 else { throw malformed("negative BINSTRING length at offset \(at)") }
                stack.append(.string(try text(n)))
            case 0x55: stack.append(.string(try text(Int(try input.u8()))))             // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try input.take(Int(try input.le(UInt32.self))))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try input.take(Int(try input.u8())))))            // SHORT_BINBYTES
            case 0x63:                                                      // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                      // STACK_GLOBAL
                let name = try pop(op), module = try pop(op)
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw malformed("STACK_GLOBAL at offset \(at) needs two strings")
                }
                stack.append(try global(m, n))
            case 0x52:                                                      // REDUCE
                let args = try pop(op), callable = try pop(op)
                stack.append(try call(callable, args, at: at))
            case 0x81:                                                      // NEWOBJ
                let args = try pop(op), cls = try pop(op)
                guard case .global(.orderedDict) = cls else {
                    throw malformed("NEWOBJ at offset \(at) on \(cls.typeName); only OrderedDict can be created")
                }
                stack.append(try call(cls, args, at: at))
            case 0x62:                                                      // BUILD
                let state = try pop(op)
                guard case .dict = try peek(op) else {
                    throw malformed("BUILD at offset \(at) sets state \(state.typeName) on a "
                        + "\((try? peek(op))?.typeName ?? "?"); only OrderedDict attributes are accepted")
                }
                // OrderedDict attributes (e.g. the state dict's `_metadata`): accepted and ignored.
            case 0x51:                                                      // BINPERSID
                let pid = try pop(op)
                stack.append(try persistentLoad(pid, at: at))
            default:
                throw WeightFileError.unsupportedOpcode(file: file, opcode: op, offset: at)
            }
        }
    }

    // MARK: - Stack helpers

    private func malformed(_ detail: String) -> WeightFileError {
        .malformed(file: file, detail: "\(input.context): \(detail)")
    }

    private mutating func pop(_ op: UInt8) throws -> PickleValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else {
            throw malformed("stack underflow at \(PickleOpcode.describe(op))")
        }
        stack.removeLast()
        return v
    }

    private func peek(_ op: UInt8) throws -> PickleValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else {
            throw malformed("stack underflow at \(PickleOpcode.describe(op))")
        }
        return v
    }

    private mutating func popMark(_ op: UInt8) throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else {
            throw malformed("\(PickleOpcode.describe(op)) without a MARK")
        }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func list(_ op: UInt8) throws -> PickleList {
        guard case .list(let l) = try peek(op) else {
            throw malformed("\(PickleOpcode.describe(op)) on a \((try? peek(op))?.typeName ?? "?"), not a list")
        }
        return l
    }

    private func dict(_ op: UInt8) throws -> PickleDict {
        guard case .dict(let d) = try peek(op) else {
            throw malformed("\(PickleOpcode.describe(op)) on a \((try? peek(op))?.typeName ?? "?"), not a dict")
        }
        return d
    }

    private func setItems(_ d: PickleDict, _ kvs: [PickleValue], _ op: UInt8) throws {
        guard kvs.count % 2 == 0 else { throw malformed("\(PickleOpcode.describe(op)) with an odd item count") }
        var i = 0
        while i < kvs.count {
            d.set(kvs[i], kvs[i + 1])
            i += 2
        }
    }

    private mutating func put(_ index: Int, _ op: UInt8) throws {
        memo[index] = try peek(op)
    }

    private mutating func get(_ index: Int) throws {
        guard let v = memo[index] else { throw malformed("memo key \(index) read before it was written") }
        stack.append(v)
    }

    // MARK: - Operand readers

    private mutating func length64() throws -> Int {
        let n = try input.le(UInt64.self)
        guard let i = Int(exactly: n) else { throw malformed("length \(n) too large") }
        return i
    }

    private mutating func text(_ n: Int) throws -> String {
        String(decoding: try input.take(n), as: UTF8.self)
    }

    /// A newline-terminated ASCII line (GLOBAL operands).
    private mutating func line() throws -> String {
        var bytes: [UInt8] = []
        while true {
            let b = try input.u8()
            if b == 0x0A { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(b)
            if bytes.count > 1000 { throw malformed("GLOBAL operand longer than 1000 bytes") }
        }
    }

    private mutating func long1() throws -> PickleValue {
        let n = Int(try input.u8())
        let raw = Array(try input.take(n))
        guard n <= 8 else { return .bigInt(raw) }
        guard n > 0 else { return .int(0) }
        var v: UInt64 = 0
        for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        if n < 8, raw[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
        return .int(Int(Int64(bitPattern: v)))
    }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        guard let g = TorchGlobal(module: module, name: name) else {
            throw WeightFileError.disallowedGlobal(file: file, module: module, name: name)
        }
        return .global(g)
    }

    // MARK: - The interpreted "calls"

    private func call(_ callable: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
        guard case .global(let g) = callable, case .tuple(let a) = args else {
            throw malformed("REDUCE at offset \(at) calls a \(callable.typeName) with \(args.typeName) arguments")
        }
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw malformed("OrderedDict(...) with arguments at offset \(at)") }
            return .dict(PickleDict())
        case .rebuildTensorV2:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count == 6 || a.count == 7, case .storage(let s) = a[0], case .int(let offset) = a[1],
                  let shape = ints(a[2]), let strides = ints(a[3]), shape.count == strides.count
            else {
                throw malformed("_rebuild_tensor_v2 at offset \(at) has unexpected arguments "
                    + "(\(a.map(\.typeName).joined(separator: ", ")))")
            }
            return .tensor(TensorRef(storage: s, offset: offset, shape: shape, strides: strides))
        case .rebuildParameter:
            // (data, requires_grad, backward_hooks)
            guard a.count == 3, case .tensor = a[0] else {
                throw malformed("_rebuild_parameter at offset \(at) has unexpected arguments")
            }
            return a[0]
        case .storageType:
            throw malformed("a storage type is called at offset \(at); storages must come from persistent ids")
        }
    }

    private func ints(_ v: PickleValue) -> [Int]? {
        guard case .tuple(let items) = v else { return nil }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .int(let i) = item else { return nil }
            out.append(i)
        }
        return out
    }

    /// `('storage', torch.XStorage, key, location, numel)`; legacy files add `view_metadata`,
    /// None or `(view_key, offset, view_size)` for a view into a root storage.
    private mutating func persistentLoad(_ pid: PickleValue, at: Int) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5 || t.count == 6,
              case .string("storage") = t[0], case .global(.storageType(let dtype)) = t[1],
              case .string(let key) = t[2], case .int(let numel) = t[4], numel >= 0
        else {
            throw malformed("persistent id at offset \(at) is not a torch storage reference")
        }
        if let known = storageTypes[key], known != dtype {
            throw malformed("storage '\(key)' is used both as \(known.rawValue) and \(dtype.rawValue)")
        }
        storageTypes[key] = dtype
        var offset = 0, count = numel
        if t.count == 6, case .tuple(let view) = t[5] {
            guard view.count == 3, case .int(let o) = view[1], case .int(let n) = view[2], o >= 0, n >= 0 else {
                throw malformed("storage view metadata at offset \(at) is unreadable")
            }
            offset = o; count = n
        }
        return .storage(StorageRef(key: key, dtype: dtype, elementOffset: offset, elementCount: count))
    }
}
