import Foundation

/// Reads PyTorch `torch.save` checkpoints natively (no Python), in both serializations:
///
/// - zip (torch >= 1.6): `<folder>/data.pkl` (the pickle) and `<folder>/data/<key>` (raw storages),
///   members stored uncompressed; the folder name varies (it is the file stem when saved).
/// - legacy: five consecutive pickles — magic number 0x1950a86a20f9469cfc6c, protocol 1001,
///   sys-info dict, the state dict (storages as persistent ids), the list of storage keys — then for
///   each key in that list an int64 little-endian element count followed by the raw storage bytes.
///
/// The file is memory-mapped; tensors are converted to Float32 straight from the map.
public enum PyTorchCheckpoint {
    /// Loads the state dict in `url` (format detected from the first bytes). A top-level dict that
    /// holds the state dict under "state_dict", "model" or "model_state_dict" is unwrapped.
    public static func load(_ url: URL) throws -> StateDict {
        try load(url, include: nil)
    }

    /// Loads the tensors for which `include(name)` is true (all when nil). The others are checked
    /// as far as the pickle goes (a tensor, its storage present) and listed in
    /// `StateDict.skipped`; their bytes are never read.
    public static func load(_ url: URL, include: ((String) -> Bool)?) throws -> StateDict {
        let mapped = try MappedFile(url)
        let bytes = mapped.bytes
        let reading = Reading(include: include, pages: mapped)
        return try withExtendedLifetime(mapped) {
            if bytes.count >= 4, bytes.leValue(at: 0, as: UInt32.self) == 0x0403_4B50 {   // "PK\3\4"
                return try loadZip(bytes, file: url, reading)
            }
            if bytes.count >= 2, bytes[0] == 0x80, bytes[1] >= 2 {                          // PROTO 2+
                return try loadLegacy(bytes, file: url, reading)
            }
            if bytes.count < 4, bytes.count > 0, bytes[0] == 0x50 || bytes[0] == 0x80 {
                throw WeightFileError.truncated(file: url, detail: "only \(bytes.count) bytes")
            }
            throw WeightFileError.unrecognizedFormat(file: url, firstBytes: Array(bytes.prefix(8)))
        }
    }

    // MARK: - zip

    /// Which tensors to convert, and the map their bytes lie in.
    private struct Reading {
        let include: ((String) -> Bool)?
        let pages: MappedFile
    }

    private static func loadZip(_ bytes: UnsafeRawBufferPointer, file: URL, _ reading: Reading) throws -> StateDict {
        let zip = try ZipDirectory(bytes, file: file)
        // The archive's folder is whatever precedes "/data.pkl" (shortest such path wins).
        guard let pickleName = zip.names.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" })
                .min(by: { $0.count < $1.count }),
              let pickleRange = zip.members[pickleName]
        else {
            throw WeightFileError.unsupportedArchive(
                file: file, detail: "zip archive has no data.pkl; it is not a torch.save checkpoint")
        }
        let folder = String(pickleName.dropLast("data.pkl".count))   // "archive/" (or "")
        if zip.names.contains(where: { $0.hasPrefix(folder + "code/") }) {
            throw WeightFileError.unsupportedArchive(
                file: file, detail: "this is a TorchScript archive (torch.jit.save); save the plain "
                    + "`model.state_dict()` with torch.save instead")
        }
        if let order = zip.members[folder + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order]), as: UTF8.self)
            guard text.hasPrefix("little") else {
                throw WeightFileError.malformed(file: file, detail: "big-endian checkpoint (byteorder '\(text)')")
            }
        }
        var machine = PickleMachine(bytes: UnsafeRawBufferPointer(rebasing: bytes[pickleRange]), start: 0,
                                    file: file, context: "\(pickleName)")
        let top = try machine.run().value
        return try buildStateDict(top, file: file, reading) { ref in
            let member = folder + "data/" + ref.storage.key
            guard let range = zip.members[member] else {
                throw WeightFileError.unsupportedArchive(
                    file: file, detail: "zip member '\(member)' (storage of a tensor) is missing; the file is damaged")
            }
            return UnsafeRawBufferPointer(rebasing: bytes[range])
        }
    }

    // MARK: - legacy

    /// 0x1950a86a20f9469cfc6c as little-endian bytes (how LONG1 stores it).
    private static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    private static func loadLegacy(_ bytes: UnsafeRawBufferPointer, file: URL, _ reading: Reading) throws -> StateDict {
        var offset = 0
        func nextPickle(_ what: String) throws -> (PickleValue, PickleMachine) {
            var machine = PickleMachine(bytes: bytes, start: offset, file: file, context: "legacy \(what) pickle")
            let (value, end) = try machine.run()
            offset = end
            return (value, machine)
        }
        guard case .bigInt(let magic) = try nextPickle("magic number").0, magic == legacyMagic else {
            throw WeightFileError.unrecognizedFormat(file: file, firstBytes: Array(bytes.prefix(8)))
        }
        guard case .int(1001) = try nextPickle("protocol version").0 else {
            throw WeightFileError.malformed(file: file, detail: "legacy protocol version is not 1001")
        }
        if case .dict(let info) = try nextPickle("sys info").0,
           case .bool(false)? = info.value(forString: "little_endian") {
            throw WeightFileError.malformed(file: file, detail: "checkpoint was saved on a big-endian machine")
        }
        let (top, machine) = try nextPickle("state dict")
        guard case .list(let keyList) = try nextPickle("storage keys").0 else {
            throw WeightFileError.malformed(file: file, detail: "legacy storage key list is not a list")
        }
        // Storages follow in key-list order: int64 element count, then the raw bytes.
        var storages: [String: Range<Int>] = [:]
        var cursor = ByteCursor(bytes, at: offset, file: file, context: "legacy storage data")
        for item in keyList.items {
            guard case .string(let key) = item else {
                throw WeightFileError.malformed(file: file, detail: "legacy storage key is a \(item.typeName)")
            }
            guard let dtype = machine.storageTypes[key] else {
                throw WeightFileError.malformed(file: file, detail: "storage '\(key)' is listed but never used")
            }
            let count = try cursor.le(Int64.self)
            let (byteCount, overflow) = Int(clamping: count).multipliedReportingOverflow(by: dtype.byteSize)
            guard count >= 0, !overflow else {
                throw WeightFileError.malformed(file: file, detail: "storage '\(key)' has element count \(count)")
            }
            let start = cursor.position
            try cursor.skip(byteCount)
            storages[key] = start..<(start + byteCount)
        }
        return try buildStateDict(top, file: file, reading) { ref in
            guard let range = storages[ref.storage.key] else {
                throw WeightFileError.malformed(file: file, detail: "storage '\(ref.storage.key)' has no data")
            }
            return UnsafeRawBufferPointer(rebasing: bytes[range])
        }
    }

    // MARK: - top level

    /// Keys under which published checkpoints nest the state dict.
    private static let wrapperKeys = ["state_dict", "model", "model_state_dict"]

    private static func buildStateDict(_ top: PickleValue, file: URL, _ reading: Reading,
                                       storage: (TensorRef) throws -> UnsafeRawBufferPointer) throws -> StateDict {
        guard case .dict(var dict) = top else {
            throw WeightFileError.notAStateDict(file: file, detail: "the top-level object is a \(top.typeName)")
        }
        let holdsOnlyTensors = dict.entries.allSatisfy { if case .tensor = $0.value { true } else { false } }
        if !holdsOnlyTensors || dict.entries.isEmpty {
            if let key = wrapperKeys.first(where: {
                if case .dict? = dict.value(forString: $0) { true } else { false }
            }), case .dict(let inner)? = dict.value(forString: key) {
                dict = inner
            }
        }
        var tensors: [WeightTensor] = []
        var skipped: [TensorInfo] = []
        tensors.reserveCapacity(dict.entries.count)
        for (key, value) in dict.entries {
            guard case .string(let name) = key else {
                throw WeightFileError.notAStateDict(file: file, detail: "a key is a \(key.typeName), not a tensor name")
            }
            guard case .tensor(let ref) = value else {
                let keys = dict.entries.prefix(8).map { k, _ in
                    if case .string(let s) = k { "'\(s)'" } else { k.typeName }
                }
                throw WeightFileError.notAStateDict(
                    file: file, detail: "entry '\(name)' is a \(value.typeName), not a tensor (keys: "
                        + "\(keys.joined(separator: ", "))\(dict.entries.count > 8 ? ", ..." : ""))")
            }
            let bytes = try storage(ref)
            if let include = reading.include, !include(name) {
                _ = try TensorConversion.materialize(name: name, ref: ref, storage: bytes, file: file, readValues: false)
                skipped.append(TensorInfo(name: name, shape: ref.shape, sourceDType: ref.storage.dtype))
                continue
            }
            // Only the bytes this view reaches are read ahead and released after (storages may be
            // shared by several tensors; a released page is simply read again when needed).
            let range = viewByteRange(ref, in: bytes, pages: reading.pages)
            if let range { reading.pages.willNeed(range) }
            tensors.append(try TensorConversion.materialize(name: name, ref: ref, storage: bytes, file: file))
            if let range { reading.pages.release(range) }
        }
        return try StateDict(file: file, orderedTensors: tensors, skipped: skipped)
    }

    /// The file bytes a contiguous tensor view reads (nil for other views: then nothing is advised,
    /// which only costs memory). Clamped to `storage`.
    private static func viewByteRange(_ ref: TensorRef, in storage: UnsafeRawBufferPointer, pages: MappedFile) -> Range<Int>? {
        guard let base = storage.baseAddress, TensorConversion.isContiguous(ref) else { return nil }
        let size = ref.storage.dtype.byteSize
        let count = ref.shape.reduce(1) { $0.multipliedReportingOverflow(by: max($1, 0)).partialValue }
        let (first, o1) = (ref.storage.elementOffset &+ ref.offset).multipliedReportingOverflow(by: size)
        let (length, o2) = count.multipliedReportingOverflow(by: size)
        guard !o1, !o2, first >= 0, length > 0, first < storage.count else { return nil }
        let start = pages.offset(of: base) + first
        return start..<(start + min(length, storage.count - first))
    }
}
