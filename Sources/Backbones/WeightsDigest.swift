import Foundation

/// The digest a publisher gives for a weights file, and therefore the only check a download can
/// honestly make. Nothing here is computed by us from a file we downloaded: each value is copied
/// from where the publisher states it (see `PublishedWeights`).
public enum WeightsDigest: Sendable, Equatable, CustomStringConvertible {
    /// The full SHA-256 (hex).
    case sha256(String)
    /// The first hex digits of the SHA-256: torchvision puts 8 of them in the file name
    /// (`vgg16-397923af.pth`) and `torch.hub` checks exactly that prefix.
    case sha256Prefix(String)
    /// MD5 (hex): what `keras.applications` passes as `file_hash` to `get_file`.
    case md5(String)

    public var algorithm: String {
        switch self {
        case .sha256: return "sha256"
        case .sha256Prefix: return "sha256-prefix"
        case .md5: return "md5"
        }
    }

    public var value: String {
        switch self {
        case .sha256(let v), .sha256Prefix(let v), .md5(let v): return v.lowercased()
        }
    }

    public var description: String { "\(algorithm):\(value)" }

    /// Whether `actual` (the full hex digest of the algorithm's hash) satisfies this digest.
    public func accepts(_ actual: String) -> Bool {
        switch self {
        case .sha256, .md5: return actual.lowercased() == value
        case .sha256Prefix: return actual.lowercased().hasPrefix(value)
        }
    }

    /// Whether a full SHA-256 given by a user agrees with this published digest (an md5 cannot
    /// be compared with it, so it never contradicts).
    public func consistent(withSHA256 full: String) -> Bool {
        switch self {
        case .sha256, .sha256Prefix: return accepts(full)
        case .md5: return true
        }
    }

    /// Whether a file's full SHA-256 shows it is this published file (an md5 cannot tell).
    public func identifies(sha256 full: String) -> Bool {
        switch self {
        case .sha256, .sha256Prefix: return accepts(full)
        case .md5: return false
        }
    }

    /// Hashes `file` with this digest's algorithm and returns the full hex digest.
    public func compute(_ file: URL) throws -> String {
        switch self {
        case .sha256, .sha256Prefix: return try FileDigest.sha256(file)
        case .md5: return try FileDigest.md5(file)
        }
    }
}
