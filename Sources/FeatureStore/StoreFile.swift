import Foundation

/// Checks on the raw file, done before SQLite touches it.
///
/// SQLite reports a damaged file only when it happens to read the damaged page, and may write to
/// a truncated file before noticing. Checking the 100-byte header first lets us refuse random
/// bytes and truncated files up front, so a damaged store is never modified.
enum StoreFile {
    static let magic: [UInt8] = Array("SQLite format 3".utf8) + [0]

    /// Throws `.corrupt` for files that cannot be an intact SQLite database. An empty file passes
    /// (it becomes a new store when opened for writing).
    /// Another process may be checkpointing the store while we look (writing the header's new page
    /// count and then the pages, and removing its -wal file): a truncation must still be there a
    /// moment later to count (a reader saw a header one page ahead of the file otherwise).
    static func checkHeader(path: String) throws {
        for _ in 0..<4 {
            do { return try checkHeaderOnce(path: path) } catch StoreError.corrupt { usleep(150_000) }
        }
        try checkHeaderOnce(path: path)
    }

    private static func checkHeaderOnce(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StoreError.cannotOpen(path: path, reason: "the file cannot be read (permissions?)")
        }
        defer { try? handle.close() }
        if (fileSize(path) ?? 0) == 0 { return }
        let header = [UInt8]((try? handle.read(upToCount: 100)) ?? Data())
        let size = fileSize(path) ?? 0   // after the header: a checkpoint writes the header first
        guard header.count == 100, Array(header[0..<16]) == magic else {
            throw StoreError.corrupt(path: path, reason: "it does not start with the SQLite header (random bytes or another kind of file)")
        }
        let rawPageSize = Int(header[16]) << 8 | Int(header[17])
        let pageSize = rawPageSize == 1 ? 65536 : rawPageSize
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            throw StoreError.corrupt(path: path, reason: "the header's page size \(rawPageSize) is invalid")
        }
        let changeCounter = be32(header, 24), pageCount = be32(header, 28), validFor = be32(header, 92)
        // With a non-empty -wal file the main file may legitimately lag behind (a checkpoint was
        // interrupted); SQLite will replay the log. Without one, the main file must be whole.
        let walSize = fileSize(path + "-wal") ?? 0
        guard walSize == 0 else { return }
        if size % Int64(pageSize) != 0 {
            throw StoreError.corrupt(path: path, reason: "its size \(size) bytes is not a whole number of \(pageSize)-byte pages (truncated)")
        }
        if pageCount > 0, changeCounter == validFor, size < Int64(pageCount) * Int64(pageSize) {
            throw StoreError.corrupt(path: path, reason: "it is truncated: the header promises \(pageCount) pages of \(pageSize) bytes but the file has \(size) bytes")
        }
    }

    static func fileSize(_ path: String) -> Int64? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return (attributes[.size] as? NSNumber)?.int64Value
    }

    private static func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}

/// Timestamps are stored as ISO-8601 UTC text with milliseconds, readable in the sqlite3 shell.
enum Timestamp {
    static func string(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text) ?? Date(timeIntervalSince1970: 0)
    }
}
