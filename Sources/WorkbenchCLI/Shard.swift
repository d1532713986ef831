import ArgumentParser

/// `--shard i/n` (0 <= i < n): this machine's fixed 1/n of a list, so n machines split the work without
/// talking to each other (each with its own store; `extract store merge` joins them).
public struct Shard: Sendable, Equatable {
    public let index: Int
    public let count: Int

    public init(_ text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard must be i/n with 0 <= i < n (e.g. 0/4), got \(text)")
        }
        index = i
        count = n
    }

    /// Whether the element at `position` of a fixed list is this shard's (round robin).
    public func owns(position: Int) -> Bool { position % count == index }

    /// Whether the element with this stable key (e.g. a path relative to the dataset root) is this
    /// shard's: FNV-1a of the key's UTF-8 bytes, modulo n. Independent of list order and of other elements.
    public func owns<Key: StringProtocol>(key: Key) -> Bool {
        var h: UInt64 = 0xcbf29ce484222325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return Int(h % UInt64(count)) == index
    }
}
