import COpenSSL
import Foundation

/// SHA-256 content hashes (lowercase hex) via OpenSSL's EVP interface. An image is identified by the hash
/// of its file bytes, so renaming or moving a file does not invalidate cached features.
public enum ContentHash {
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer { out in
            EVP_Digest(bytes.baseAddress, bytes.count, out.baseAddress, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1 && length == 32, "OpenSSL EVP_Digest(SHA-256) failed")
        return hex(digest)
    }

    public static func sha256Hex(_ data: Data) -> String { data.withUnsafeBytes { sha256Hex($0) } }
    public static func sha256Hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { sha256Hex($0) } }
    public static func sha256Hex(_ text: String) -> String { sha256Hex(Array(text.utf8)) }

    /// The first 8 bytes of SHA-256(text), big-endian: a well-mixed 64-bit seed.
    static func seed64(_ text: String) -> UInt64 {
        let h = sha256Hex(text)
        return UInt64(h.prefix(16), radix: 16) ?? 0
    }

    private static let digits = Array("0123456789abcdef".utf8)
    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
