import Foundation

/// A minimal reader of a zip archive's central directory, for torch.save archives.
///
/// Why not a zip library: torch.save (PyTorch's miniz writer) stores every member uncompressed
/// (method 0) and 64-byte aligned precisely so that readers can use the bytes in place. All we need
/// is "name -> byte range inside the mapped file", which is ~150 lines; a library would add a
/// dependency (the target must have none), decompression code we never run, and usually a copy of
/// each member. Compressed or encrypted members are reported as errors (re-save with torch.save).
///
/// Supports zip64 (torch always writes a zip64 end record; files over 4 GiB need its values).
/// CRCs are not verified: a damaged member shows up as wrong values or a pickle error instead.
struct ZipDirectory {
    /// Member name -> bytes of its (stored) data inside the mapped file.
    private(set) var members: [String: Range<Int>] = [:]
    /// Member names in central-directory order.
    private(set) var names: [String] = []

    private static let eocdSignature: UInt32 = 0x0605_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4B50
    private static let centralSignature: UInt32 = 0x0201_4B50
    private static let localSignature: UInt32 = 0x0403_4B50

    init(_ bytes: UnsafeRawBufferPointer, file: URL) throws {
        func bad(_ detail: String) -> WeightFileError {
            .unsupportedArchive(file: file, detail: "invalid zip archive: \(detail); the file may be truncated "
                + "or damaged - re-download or re-save it")
        }
        // 1. End of central directory: 22 bytes + up to 65535 bytes of comment, at the end.
        guard bytes.count >= 22 else {
            throw WeightFileError.truncated(file: file, detail: "zip archive of \(bytes.count) bytes has no end record")
        }
        var eocd = -1
        let lowest = max(0, bytes.count - 22 - 65535)
        var i = bytes.count - 22
        while i >= lowest {
            if bytes.leValue(at: i, as: UInt32.self) == Self.eocdSignature {
                let commentLength = Int(bytes.leValue(at: i + 20, as: UInt16.self) ?? 0)
                if i + 22 + commentLength == bytes.count { eocd = i; break }
            }
            i -= 1
        }
        guard eocd >= 0 else {
            throw WeightFileError.truncated(file: file, detail: "zip end-of-central-directory record not found")
        }
        var count = Int(bytes.leValue(at: eocd + 10, as: UInt16.self) ?? 0)
        var cdSize = Int(bytes.leValue(at: eocd + 12, as: UInt32.self) ?? 0)
        var cdOffset = Int(bytes.leValue(at: eocd + 16, as: UInt32.self) ?? 0)

        // 2. Zip64: a locator right before the end record points at the zip64 end record.
        if eocd >= 20, bytes.leValue(at: eocd - 20, as: UInt32.self) == Self.zip64LocatorSignature {
            guard let at = bytes.leValue(at: eocd - 12, as: UInt64.self), let at = Int(exactly: at), at < eocd,
                  bytes.leValue(at: at, as: UInt32.self) == Self.zip64EOCDSignature,
                  let n = bytes.leValue(at: at + 32, as: UInt64.self),
                  let size = bytes.leValue(at: at + 40, as: UInt64.self),
                  let offset = bytes.leValue(at: at + 48, as: UInt64.self),
                  let n = Int(exactly: n), let size = Int(exactly: size), let offset = Int(exactly: offset)
            else { throw bad("zip64 end record is unreadable") }
            count = n; cdSize = size; cdOffset = offset
        }
        guard cdOffset >= 0, cdSize >= 0, cdSize <= bytes.count - cdOffset else {
            throw WeightFileError.truncated(
                file: file, detail: "zip central directory (\(cdSize) bytes at \(cdOffset)) lies past the end of the file")
        }

        // 3. Central directory entries.
        var cd = ByteCursor(UnsafeRawBufferPointer(rebasing: bytes[cdOffset..<(cdOffset + cdSize)]),
                            file: file, context: "zip central directory")
        members.reserveCapacity(min(count, cdSize / 46))  // count may be bogus
        for _ in 0..<count {
            guard try cd.le(UInt32.self) == Self.centralSignature else { throw bad("central directory entry expected") }
            try cd.skip(4)                                  // version made by, version needed
            let flags = try cd.le(UInt16.self)
            let method = try cd.le(UInt16.self)
            try cd.skip(8)                                  // time, date, crc
            var compressed = UInt64(try cd.le(UInt32.self))
            var size = UInt64(try cd.le(UInt32.self))
            let nameLength = Int(try cd.le(UInt16.self))
            let extraLength = Int(try cd.le(UInt16.self))
            let commentLength = Int(try cd.le(UInt16.self))
            try cd.skip(8)                                  // disk start, internal attrs, external attrs
            var localOffset = UInt64(try cd.le(UInt32.self))
            let name = String(decoding: try cd.take(nameLength), as: UTF8.self)
            var extra = ByteCursor(try cd.take(extraLength), file: file, context: "zip extra field of '\(name)'")
            try cd.skip(commentLength)
            // Zip64 extra (id 1): holds, in order, only the fields whose classic value is 0xFFFFFFFF.
            while extra.remaining >= 4 {
                let id = try extra.le(UInt16.self)
                let length = Int(try extra.le(UInt16.self))
                var field = ByteCursor(try extra.take(length), file: file, context: "zip64 extra field of '\(name)'")
                guard id == 1 else { continue }
                if size == 0xFFFF_FFFF { size = try field.le(UInt64.self) }
                if compressed == 0xFFFF_FFFF { compressed = try field.le(UInt64.self) }
                if localOffset == 0xFFFF_FFFF { localOffset = try field.le(UInt64.self) }
            }
            if flags & 1 != 0 {
                throw WeightFileError.unsupportedArchive(file: file, detail: "zip member '\(name)' is encrypted; "
                    + "re-save the checkpoint with torch.save")
            }
            if method != 0 {
                throw WeightFileError.unsupportedArchive(
                    file: file, detail: "zip member '\(name)' is compressed (method \(method)); torch.save writes "
                        + "stored members - re-save the checkpoint with torch.save instead of re-zipping it")
            }
            // The local header repeats the name and has its own extra field; data follows it.
            guard let local = Int(exactly: localOffset), local < cdOffset, let length = Int(exactly: size),
                  bytes.leValue(at: local, as: UInt32.self) == Self.localSignature,
                  let localName = bytes.leValue(at: local + 26, as: UInt16.self),
                  let localExtra = bytes.leValue(at: local + 28, as: UInt16.self)
            else {
                throw WeightFileError.truncated(file: file, detail: "zip local header of '\(name)' is missing")
            }
            let start = local + 30 + Int(localName) + Int(localExtra)
            guard length <= bytes.count - start else {
                throw WeightFileError.truncated(
                    file: file, detail: "zip member '\(name)' (\(length) bytes at \(start)) runs past the end of the file")
            }
            if members[name] == nil { names.append(name) }
            members[name] = start..<(start + length)
        }
    }
}
