import Foundation
import WorkbenchSupport

/// SHA-256 content hashes (lowercase hex). An image is identified by the hash of its file bytes, so
/// renaming or moving a file does not invalidate cached features.
public enum ContentHash {
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String { Digest.hex(bytes) }
    public static func sha256Hex(_ data: Data) -> String { Digest.hex(data) }
    public static func sha256Hex(_ bytes: [UInt8]) -> String { Digest.hex(bytes) }
    public static func sha256Hex(_ text: String) -> String { Digest.hex(text) }

    /// The first 8 bytes of SHA-256(text), big-endian: a well-mixed 64-bit seed.
    static func seed64(_ text: String) -> UInt64 {
        let h = sha256Hex(text)
        return UInt64(h.prefix(16), radix: 16) ?? 0
    }
}
