import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file.
///
/// Why mmap: a checkpoint is parsed once and its storages are converted straight into Float arrays,
/// so mapping avoids reading the whole file into a `Data` copy first (the page cache is the only
/// copy). The map lives as long as this object; readers never hand out pointers that outlive it.
final class MappedFile {
    let url: URL
    /// The mapped bytes (empty for an empty file).
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer?
    private let length: Int

    init(_ url: URL) throws {
        self.url = url
        let (fd, size) = try MappedFile.openRegularFile(url)
        defer { close(fd) }
        length = size
        if size == 0 {
            mapping = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        // No MAP_POPULATE: readers touch only the tensors they convert (`willNeed` asks the kernel
        // to read those ahead), so tensors a caller skips never become resident.
        let flags = MAP_PRIVATE
        let p = mmap(nil, size, PROT_READ, flags, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw WeightFileError.cannotOpen(file: url, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        mapping = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let mapping { munmap(mapping, length) }
    }

    /// Opens `url` read-only and checks that it is a regular file (not a folder, a FIFO, a device):
    /// the descriptor (the caller closes it) and the file's size. Errors name the file.
    static func openRegularFile(_ url: URL) throws -> (fd: Int32, size: Int) {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)   // a FIFO with no writer must not block
        guard fd >= 0 else {
            throw WeightFileError.cannotOpen(file: url, reason: String(cString: strerror(errno)))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw WeightFileError.cannotOpen(file: url, reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw WeightFileError.cannotOpen(file: url, reason: "not a regular file")
        }
        return (fd, Int(info.st_size))
    }

    /// Asks the kernel to read `range` ahead (it is about to be converted).
    func willNeed(_ range: Range<Int>) {
        advise(range, MADV_WILLNEED, inner: false)
    }

    /// Drops the pages wholly inside `range` from this process: bytes already converted to Float32
    /// need not stay resident as well (a later read just faults them in again from the file; the
    /// mapping is private and never written, so nothing is lost). Without this, converting a 528 MB
    /// checkpoint would keep 528 MB of file pages plus 528 MB of Float32 copies resident.
    func release(_ range: Range<Int>) {
        advise(range, MADV_DONTNEED, inner: true)
    }

    /// `inner`: only pages entirely inside `range`; otherwise every page `range` touches.
    private func advise(_ range: Range<Int>, _ advice: Int32, inner: Bool) {
        guard let mapping, !range.isEmpty, range.lowerBound >= 0, range.upperBound <= length else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = inner ? (range.lowerBound + page - 1) / page * page : range.lowerBound / page * page
        let end = inner ? range.upperBound / page * page : min(length, (range.upperBound + page - 1) / page * page)
        guard end > start else { return }
        _ = madvise(mapping + start, end - start, advice)
    }

    /// Byte offset of `pointer` in the map (for pointers into `bytes`).
    func offset(of pointer: UnsafeRawPointer) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        return base.distance(to: pointer)
    }
}

/// Bounds-checked little-endian reads from a byte range. Every read checks the remaining length
/// first (release builds use -Ounchecked, so nothing here may rely on a runtime trap).
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    /// Names the file in errors.
    let file: URL
    /// Says what is being read, for truncation errors ("zip central directory", "pickle", ...).
    let context: String

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0, file: URL, context: String) {
        self.bytes = bytes
        self.position = position
        self.file = file
        self.context = context
    }

    var remaining: Int { bytes.count - position }
    var atEnd: Bool { position >= bytes.count }

    private func needs(_ n: Int) throws {
        guard n >= 0, position >= 0, n <= bytes.count - position else {
            throw WeightFileError.truncated(
                file: file, detail: "\(context): needed \(n) bytes at offset \(position), only \(max(0, remaining)) left")
        }
    }

    mutating func u8() throws -> UInt8 {
        try needs(1)
        defer { position += 1 }
        return bytes[position]
    }

    mutating func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try needs(MemoryLayout<T>.size)
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// A sub-range of `n` bytes (no copy).
    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        try needs(n)
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func skip(_ n: Int) throws {
        try needs(n)
        position += n
    }
}

extension UnsafeRawBufferPointer {
    /// Little-endian integer at `offset`, or nil when it would run past the end.
    func leValue<T: FixedWidthInteger>(at offset: Int, as: T.Type) -> T? {
        guard offset >= 0, MemoryLayout<T>.size <= count - offset else { return nil }
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
