import Foundation

/// Reads Hugging Face safetensors files (the format timm and the Hub publish) natively.
///
/// Layout: an unsigned 64-bit little-endian header length N, then N bytes of UTF-8 JSON (possibly
/// padded with spaces) mapping each tensor name to `{"dtype": "F32", "shape": [...],
/// "data_offsets": [begin, end]}` plus an optional `"__metadata__"` string map (ignored), then the
/// data section. Offsets are byte offsets into the data section, tensors are row-major and
/// little-endian. F32, F16, BF16, F64, I64 and I32 are converted to Float32.
///
/// Names are kept exactly as in the header; file order is the order of the tensors' data
/// (`data_offsets` begin, then name), since JSON objects carry no reliable order.
///
/// Everything is checked before any byte is read (release builds use -Ounchecked, so nothing may
/// rely on a runtime trap): header length absurd (over 100 MiB) or past the file end, malformed
/// JSON, negative or overflowing shapes, offsets past the data section, byte spans that do not
/// match shape x element size, and tensors whose bytes overlap. Gaps between tensors and trailing
/// bytes are tolerated. The file is memory-mapped; tensors are converted straight from the map.
public enum Safetensors {
    /// The reference implementation refuses larger headers; so does this reader.
    public static let maxHeaderBytes = 100 << 20

    public static func load(_ url: URL) throws -> StateDict {
        try load(url, include: nil)
    }

    /// Loads the tensors for which `include(name)` is true (all when nil); the others are
    /// checked from the header alone and listed in `StateDict.skipped`, their bytes never read.
    public static func load(_ url: URL, include: ((String) -> Bool)?) throws -> StateDict {
        let mapped = try MappedFile(url)
        return try withExtendedLifetime(mapped) { try parse(mapped.bytes, file: url, include: include, pages: mapped) }
    }

    /// One header entry, checked: `begin..<end` lies inside the data section.
    private struct Entry {
        let name: String
        let dtype: TensorDType
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    /// `pages`: the map `bytes` lies in, if any, so that converted bytes can leave memory.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: URL, include: ((String) -> Bool)? = nil,
                      pages: MappedFile? = nil) throws -> StateDict {
        func malformed(_ detail: String) -> WeightFormatError { .malformed(file: file, format: .safetensors, detail: detail) }
        func truncated(_ detail: String) -> WeightFormatError { .truncated(file: file, format: .safetensors, detail: detail) }

        guard let length64 = bytes.leValue(at: 0, as: UInt64.self) else {
            throw truncated("only \(bytes.count) bytes; a safetensors file starts with an 8-byte header length")
        }
        guard length64 <= UInt64(maxHeaderBytes) else {
            throw malformed("header length \(length64) bytes is absurd (limit \(maxHeaderBytes)); the file is "
                + "corrupted or not safetensors")
        }
        let headerLength = Int(length64)
        guard headerLength <= bytes.count - 8 else {
            throw truncated("the header announces \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        guard headerLength >= 2, bytes[8] == UInt8(ascii: "{") else {
            throw malformed("the \(headerLength)-byte header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let data = UnsafeRawBufferPointer(rebasing: bytes[dataStart...])
        let header = Data(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))

        let raw: RawHeader
        do {
            raw = try JSONDecoder().decode(RawHeader.self, from: header)
        } catch let error as DecodingError {
            throw malformed("header JSON: \(describe(error))")
        } catch {
            throw malformed("header JSON: \(error)")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(raw.entries.count)
        for (name, e) in raw.entries {
            guard let dtype = dtype(e.dtype) else {
                throw WeightFormatError.unsupportedDType(file: file, format: .safetensors, tensor: name, dtype: e.dtype)
            }
            guard e.shape.allSatisfy({ $0 >= 0 }) else { throw malformed("tensor '\(name)': negative size in shape \(e.shape)") }
            var count = 1
            for d in e.shape {
                let (c, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw malformed("tensor '\(name)': shape \(e.shape) is too large") }
                count = c
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else { throw malformed("tensor '\(name)': shape \(e.shape) is too large") }
            guard e.dataOffsets.count == 2 else {
                throw malformed("tensor '\(name)': data_offsets must be [begin, end], found \(e.dataOffsets)")
            }
            let begin = e.dataOffsets[0], end = e.dataOffsets[1]
            guard begin >= 0, begin <= end else {
                throw malformed("tensor '\(name)': data_offsets \(e.dataOffsets) are not an increasing pair")
            }
            guard end <= data.count else {
                throw truncated("tensor '\(name)' needs data bytes \(begin)..<\(end) but the data section "
                    + "holds only \(data.count) bytes")
            }
            guard end - begin == byteCount else {
                throw malformed("tensor '\(name)': shape \(e.shape) of \(e.dtype) needs \(byteCount) bytes but "
                    + "data_offsets \(e.dataOffsets) span \(end - begin)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: e.shape, begin: begin, end: end))
        }

        // File order = data order; then no two non-empty byte ranges may overlap.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previous: Entry?
        for e in entries where e.end > e.begin {
            if let p = previous, e.begin < p.end {
                throw malformed("tensor '\(e.name)' (data bytes \(e.begin)..<\(e.end)) overlaps tensor '\(p.name)' "
                    + "(bytes \(p.begin)..<\(p.end))")
            }
            previous = e
        }

        var tensors: [WeightTensor] = []
        var skipped: [TensorInfo] = []
        tensors.reserveCapacity(entries.count)
        for e in entries {
            if let include, !include(e.name) {
                skipped.append(TensorInfo(name: e.name, shape: e.shape, sourceDType: e.dtype))
                continue
            }
            // Contiguous row-major strides; the shared converter copies F32 in one go and widens the rest.
            var strides = [Int](repeating: 1, count: e.shape.count)
            var step = 1
            for i in stride(from: e.shape.count - 1, through: 0, by: -1) {
                strides[i] = step
                step = step &* max(e.shape[i], 1)
            }
            let count = (e.end - e.begin) / e.dtype.byteSize
            let ref = TensorRef(storage: StorageRef(key: e.name, dtype: e.dtype, elementOffset: 0, elementCount: count),
                                offset: 0, shape: e.shape, strides: strides)
            let storage = UnsafeRawBufferPointer(rebasing: data[e.begin..<e.end])
            let byteRange = (dataStart + e.begin)..<(dataStart + e.end)
            pages?.willNeed(byteRange)
            tensors.append(try TensorConversion.materialize(name: e.name, ref: ref, storage: storage, file: file))
            pages?.release(byteRange)
        }
        return try StateDict(file: file, orderedTensors: tensors, skipped: skipped)
    }

    static func dtype(_ code: String) -> TensorDType? {
        switch code {
        case "F32": return .float32
        case "F16": return .float16
        case "BF16": return .bfloat16
        case "F64": return .float64
        case "I64": return .int64
        case "I32": return .int32
        default: return nil
        }
    }

    /// A short, readable account of a decoding failure ("at 'conv.weight.shape': expected Int ...").
    private static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map(\.stringValue).joined(separator: ".")
            return p.isEmpty ? "" : " at '\(p)'"
        }
        switch error {
        case .dataCorrupted(let c): return "invalid JSON\(path(c)): \(c.debugDescription)"
        case .keyNotFound(let key, let c): return "missing \"\(key.stringValue)\"\(path(c))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "wrong type\(path(c)): \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// The header as JSON: every key except `__metadata__` is a tensor entry.
private struct RawHeader: Decodable {
    struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let dataOffsets: [Int]
        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { return nil }
    }

    var entries: [(String, Entry)] = []

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys where key.stringValue != "__metadata__" {
            entries.append((key.stringValue, try container.decode(Entry.self, forKey: key)))
        }
    }
}

extension Safetensors {
    /// A safetensors file of float32 tensors, in the given order: 8-byte little-endian header length,
    /// the JSON header (`{"__metadata__": {...}, name: {"dtype": "F32", "shape": [...], "data_offsets":
    /// [begin, end]}}`, keys sorted, padded with spaces to a multiple of 8 bytes), then the tensors'
    /// little-endian bytes back to back. `metadata` values must be strings (the format's rule).
    public static func encode(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String] = [:]) throws -> Data {
        struct Entry: Encodable { let dtype: String; let shape: [Int]; let data_offsets: [Int] }
        struct Key: CodingKey {
            let stringValue: String
            init(_ s: String) { stringValue = s }
            init?(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }
        struct Header: Encodable {
            let metadata: [String: String]
            let entries: [(String, Entry)]
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: Key.self)
                if !metadata.isEmpty { try c.encode(metadata, forKey: Key("__metadata__")) }
                for (name, e) in entries { try c.encode(e, forKey: Key(name)) }
            }
        }
        var entries: [(String, Entry)] = [], body = Data(), offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "safetensors: \(t.name) has \(t.values.count) values for shape \(t.shape)")
            entries.append((t.name, Entry(dtype: "F32", shape: t.shape, data_offsets: [offset, offset + 4 * t.values.count])))
            for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            offset += 4 * t.values.count
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var header = try encoder.encode(Header(metadata: metadata, entries: entries))
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var out = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        return out + header + body
    }
}
