import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// HDF5 structures read by hand, only to check what libhdf5 1.10 would otherwise trust blindly.
//
// Why: fuzzing the Keras fixtures (single byte flips) crashed libhdf5 1.10.8 in H5HG_read, the
// global-heap read behind variable-length strings (how h5py >= 3 stores `layer_names` and
// `weight_names`): it copies an object whose size field is damaged, indexes its object table with a
// damaged index, or allocates a damaged collection size. The checks below make sure every global
// heap collection is sane and that the string descriptors of an attribute point at objects that
// exist with the announced length, before libhdf5 reads it. They also report truncation plainly.
// All reads are bounds-checked (release builds use -Ounchecked).

/// The superblock fields the guards need (versions 0-3).
struct HDF5Superblock {
    let offsetSize: Int
    let lengthSize: Int
    let baseAddress: UInt64
    /// Base + end-of-file address: the size the file must have; nil when recorded as undefined.
    let end: UInt64?

    enum Parse { case ok(HDF5Superblock), needs(Int), unknown }

    /// Versions 0 and 1 keep the sizes of offsets and lengths at bytes 13 and 14 and the base
    /// address at 24 (v0) / 28 (v1); versions 2 and 3 at bytes 9, 10 and 12. The end-of-file
    /// address is the third address (v0/v1: base, free space, EOF; v2/v3: base, extension, EOF).
    static func parse(_ b: [UInt8]) -> Parse {
        guard b.count > 9 else { return .needs(10) }
        let offsetSize: Int, lengthSize: Int, base: Int
        switch b[8] {
        case 0, 1:
            guard b.count > 14 else { return .needs(15) }
            offsetSize = Int(b[13])
            lengthSize = Int(b[14])
            base = b[8] == 0 ? 24 : 28
        case 2, 3:
            guard b.count > 10 else { return .needs(11) }
            offsetSize = Int(b[9])
            lengthSize = Int(b[10])
            base = 12
        default:
            return .unknown
        }
        guard [2, 4, 8].contains(offsetSize), [2, 4, 8].contains(lengthSize) else { return .unknown }
        let eofAt = base + 2 * offsetSize
        guard b.count >= eofAt + offsetSize else { return .needs(eofAt + offsetSize) }
        func address(_ at: Int) -> UInt64 {
            (0..<offsetSize).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(b[at + $1]) }
        }
        let undefined = offsetSize == 8 ? UInt64.max : (UInt64(1) << UInt64(8 * offsetSize)) - 1
        let baseAddress = address(base), eof = address(eofAt)
        guard baseAddress != undefined else { return .unknown }
        let (end, overflow) = baseAddress.addingReportingOverflow(eof)
        return .ok(HDF5Superblock(offsetSize: offsetSize, lengthSize: lengthSize, baseAddress: baseAddress,
                                  end: eof == undefined || overflow ? nil : end))
    }
}

/// Little-endian unsigned fields of 1-8 bytes, nil when they would run past the end.
private extension UnsafeRawBufferPointer {
    func field(_ at: Int, _ size: Int) -> UInt64? {
        guard at >= 0, size >= 1, size <= 8, size <= count - at else { return nil }
        var v: UInt64 = 0
        for i in (0..<size).reversed() { v = v << 8 | UInt64(self[at + i]) }
        return v
    }
}

/// Every global heap collection of a file, checked, with its objects' sizes.
struct GlobalHeaps {
    /// Collection address (relative to the base address, as descriptors store it) -> object index -> size.
    private(set) var collections: [UInt64: [Int: UInt64]] = [:]

    /// Finds each collection ("GCOL", version 1, three zero bytes, then its size) and walks its objects
    /// as libhdf5 does: a 2-byte index, 2-byte reference count, 4 reserved bytes, a length, the data
    /// padded to 8 bytes; index 0 is free space whose size includes its header. A collection must lie
    /// inside the file and each object inside its collection.
    /// `release(range)`, when given, is told which bytes the scan has passed (every 64 MiB, and
    /// all of them at the end), so that a memory map need not keep the whole file resident.
    static func scan(_ bytes: UnsafeRawBufferPointer, superblock: HDF5Superblock, file: URL,
                     release: ((Range<Int>) -> Void)? = nil) throws -> GlobalHeaps {
        func bad(_ at: Int, _ detail: String) -> WeightFormatError {
            .malformed(file: file, format: .kerasHDF5, detail: "global heap collection at byte \(at): \(detail)")
        }
        let lengthSize = superblock.lengthSize
        let headerSize = 8 + lengthSize, objectHeaderSize = 8 + lengthSize
        var heaps = GlobalHeaps()
        let signature: [UInt8] = [0x47, 0x43, 0x4F, 0x4C, 0x01, 0x00, 0x00, 0x00]
        guard let base = bytes.baseAddress, bytes.count >= headerSize + signature.count else { return heaps }
        var from = 0
        var released = 0
        let window = 64 << 20
        defer { release?(0..<bytes.count) }
        while from <= bytes.count - signature.count {
            if let release, from - released >= window {
                // A page before `from - 4096` is behind every collection still to be checked.
                let upTo = max(released, from - 4096)
                release(released..<upTo)
                released = upTo
            }
            // HOT LOOP over the whole file: memchr finds the next 'G', then the rest of the signature.
            // At most one window per call, so that a long run without 'G' is not read in one go.
            let limit = min(bytes.count - from, window)
            guard let hit = memchr(base + from, Int32(signature[0]), limit) else {
                if limit == bytes.count - from { break }
                from += limit
                continue
            }
            let at = base.distance(to: UnsafeRawPointer(hit))
            from = at + 1
            guard at <= bytes.count - signature.count,
                  (1..<signature.count).allSatisfy({ bytes[at + $0] == signature[$0] }) else { continue }
            guard let size = bytes.field(at + 8, lengthSize) else { throw bad(at, "header runs past the end of the file") }
            guard size >= UInt64(headerSize), size <= UInt64(bytes.count - at) else {
                throw bad(at, "claims \(size) bytes but only \(bytes.count - at) remain in the file")
            }
            let end = at + Int(size)
            var objects: [Int: UInt64] = [:]
            var p = at + headerSize
            while p + objectHeaderSize <= end {   // a smaller tail is free space
                guard let index = bytes.field(p, 2), let objectSize = bytes.field(p + 8, lengthSize) else { break }
                if index == 0 {
                    // Free space; a size below its own header would make libhdf5 loop forever.
                    guard objectSize >= UInt64(objectHeaderSize) else { throw bad(at, "free-space block of \(objectSize) bytes") }
                    // libhdf5 steps over free space by its size alone: past the collection's end the
                    // pointer wraps and its walk never ends (found by FuzzTests, keras-hdf5/hang-1.h5).
                    guard objectSize <= UInt64(end - p) else {
                        throw bad(at, "free-space block of \(objectSize) bytes runs past the collection's end")
                    }
                    p += Int(objectSize)
                    continue
                }
                let available = end - p - objectHeaderSize
                guard objectSize <= UInt64(available) else {
                    throw bad(at, "object \(index) claims \(objectSize) bytes but only \(available) remain in the collection")
                }
                objects[Int(index)] = objectSize
                p += objectHeaderSize + (Int(objectSize) + 7) & ~7
            }
            if UInt64(at) >= superblock.baseAddress {
                heaps.collections[UInt64(at) - superblock.baseAddress] = objects
            }
        }
        return heaps
    }

    /// True when a variable-length string descriptor (length, collection, index) is safe to read.
    func admits(length: UInt64, collection: UInt64, index: UInt64) -> Bool {
        if collection == 0 { return length == 0 }   // libhdf5 reads nothing for address 0
        guard let objects = collections[collection], let size = objects[Int(truncatingIfNeeded: index)],
              index <= UInt64(UInt16.max) else { return false }
        return size == length
    }
}

/// The variable-length string descriptors of one attribute, read from a version-1 object header
/// (the kind h5py writes by default; version-2 headers carry checksums that libhdf5 verifies).
enum AttributeDescriptors {
    enum Outcome {
        /// (length, global heap collection address, object index) per string.
        case descriptors([(length: UInt64, collection: UInt64, index: UInt64)])
        /// Not a case these guards understand (version-2 header, shared or dense attributes, not a
        /// variable-length string...): libhdf5's own checks apply.
        case unsupported
    }

    /// Layout of a v1 object header: version 1, reserved, 2-byte message count, 4-byte reference
    /// count, 4-byte size of the first chunk, 4 bytes of padding, then messages: 2-byte type, 2-byte
    /// size, flags, 3 reserved bytes, data. Type 0x10 continues in another chunk (address, length);
    /// type 0x0C is an attribute.
    static func find(_ name: String, headerAt address: UInt64, in bytes: UnsafeRawBufferPointer,
                     superblock sb: HDF5Superblock, file: URL) throws -> Outcome {
        func bad(_ detail: String) -> WeightFormatError {
            .malformed(file: file, format: .kerasHDF5, detail: "object header at byte \(address): \(detail)")
        }
        func offset(_ address: UInt64) -> Int? {
            let (a, overflow) = address.addingReportingOverflow(sb.baseAddress)
            return overflow || a > UInt64(bytes.count) ? nil : Int(a)
        }
        guard let start = offset(address), let version = bytes.field(start, 1) else { throw bad("outside the file") }
        guard version == 1 else { return .unsupported }
        guard let messageCount = bytes.field(start + 2, 2), let firstSize = bytes.field(start + 8, 4) else {
            throw bad("truncated header")
        }
        var chunks: [(Int, Int)] = [(start + 16, Int(firstSize))]
        var seen = 0, chunkIndex = 0
        let target = Array(name.utf8) + [0]
        while chunkIndex < chunks.count && seen < Int(messageCount) {
            guard chunkIndex < 64 else { throw bad("too many continuation chunks") }
            let (chunkStart, chunkSize) = chunks[chunkIndex]
            chunkIndex += 1
            guard chunkStart >= 0, chunkSize >= 0, chunkSize <= bytes.count - chunkStart else {
                throw bad("a header chunk runs past the end of the file")
            }
            var p = chunkStart
            let chunkEnd = chunkStart + chunkSize
            while p + 8 <= chunkEnd && seen < Int(messageCount) {
                guard let type = bytes.field(p, 2), let size64 = bytes.field(p + 2, 2) else { throw bad("truncated message") }
                let size = Int(size64), data = p + 8
                guard size <= chunkEnd - data else { throw bad("message of \(size) bytes overruns its chunk") }
                seen += 1
                switch type {
                case 0x10:   // continuation
                    guard let a = bytes.field(data, sb.offsetSize), let l = bytes.field(data + sb.offsetSize, sb.lengthSize),
                          let o = offset(a), l <= UInt64(bytes.count)
                    else { throw bad("bad continuation message") }
                    chunks.append((o, Int(l)))
                case 0x0C:   // attribute
                    if let found = try attribute(bytes, data, size, target, sb, bad) { return found }
                case 0x15:   // attribute info: dense attribute storage, not handled here
                    return .unsupported
                default:
                    break
                }
                p = data + size
            }
        }
        return .unsupported
    }

    /// Decodes an attribute message if it is `target` (NUL-terminated name); nil for another name.
    /// v1: version, reserved, name/datatype/dataspace sizes (2 bytes each), each part padded to 8;
    /// v2: version, flags, sizes, no padding; v3: like v2 plus an encoding byte.
    private static func attribute(_ bytes: UnsafeRawBufferPointer, _ data: Int, _ size: Int, _ target: [UInt8],
                                  _ sb: HDF5Superblock, _ bad: (String) -> WeightFormatError) throws -> Outcome? {
        let end = data + size
        guard let version = bytes.field(data, 1), let flags = bytes.field(data + 1, 1),
              let nameSize = bytes.field(data + 2, 2), let typeSize = bytes.field(data + 4, 2),
              let spaceSize = bytes.field(data + 6, 2)
        else { throw bad("truncated attribute message") }
        let pad: (Int) -> Int
        var p: Int
        switch version {
        case 1: pad = { ($0 + 7) & ~7 }; p = data + 8
        case 2: pad = { $0 }; p = data + 8
        case 3: pad = { $0 }; p = data + 9
        default: return .unsupported
        }
        let n = Int(nameSize), t = Int(typeSize), s = Int(spaceSize)
        guard n <= end - p else { throw bad("attribute name overruns its message") }
        let nameMatches = n == target.count && (0..<n).allSatisfy { bytes[p + $0] == target[$0] }
        guard nameMatches else { return nil }
        guard version == 1 || flags & 0x03 == 0 else { return .unsupported }   // shared datatype / dataspace
        p += pad(n)
        let typeAt = p
        guard t >= 8, t <= end - typeAt else { throw bad("attribute datatype overruns its message") }
        p += pad(t)
        let spaceAt = p
        guard s >= 4, s <= end - spaceAt else { throw bad("attribute dataspace overruns its message") }
        p += pad(s)
        // Datatype: class in the low 4 bits of byte 0; variable-length (9) of kind string (1), then a
        // 4-byte size (one descriptor) and the base type (characters: 1 byte each; a damaged base
        // size makes libhdf5 allocate length x size bytes per string).
        guard let classByte = bytes.field(typeAt, 1), classByte & 0x0F == 9,
              let kind = bytes.field(typeAt + 1, 1), kind & 0x0F == 1
        else { return .unsupported }
        let stride = 4 + sb.offsetSize + 4
        guard t >= 16, bytes.field(typeAt + 4, 4) == UInt64(stride), bytes.field(typeAt + 12, 4) == 1 else {
            throw bad("variable-length string datatype with a damaged size")
        }
        // Dataspace: v1 rank at 1, dims from 8; v2 rank at 1, type at 3 (2 = null), dims from 4.
        guard let spaceVersion = bytes.field(spaceAt, 1), let rank = bytes.field(spaceAt + 1, 1), rank <= 32 else {
            throw bad("bad attribute dataspace")
        }
        let dimsAt: Int
        switch spaceVersion {
        case 1: dimsAt = spaceAt + 8
        case 2:
            if bytes.field(spaceAt + 3, 1) == 2 { return .descriptors([]) }
            dimsAt = spaceAt + 4
        default: return .unsupported
        }
        var count: UInt64 = 1
        for i in 0..<Int(rank) {
            guard dimsAt + (i + 1) * sb.lengthSize <= spaceAt + s, let d = bytes.field(dimsAt + i * sb.lengthSize, sb.lengthSize) else {
                throw bad("attribute dataspace overruns its message")
            }
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, c <= 1 << 24 else { throw bad("attribute has too many elements") }
            count = c
        }
        guard count * UInt64(stride) <= UInt64(max(0, end - p)) else { throw bad("attribute data overruns its message") }
        var out: [(length: UInt64, collection: UInt64, index: UInt64)] = []
        for i in 0..<Int(count) {
            let at = p + i * stride
            guard let length = bytes.field(at, 4), let collection = bytes.field(at + 4, sb.offsetSize),
                  let index = bytes.field(at + 4 + sb.offsetSize, 4)
            else { throw bad("attribute data overruns its message") }
            out.append((length, collection, index))
        }
        return .descriptors(out)
    }
}
