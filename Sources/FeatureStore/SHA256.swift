import COpenSSL
import Foundation

/// SHA-256 through OpenSSL's libcrypto (EVP), used for settings keys and augmentation-policy hashes.
/// Public so tools hash small things the same way as the store.
///
/// A value owns one digest context: use it where it was made (copies share the context).
public struct SHA256Digest {
    private final class Context {
        let ctx: OpaquePointer
        init() {
            guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
                fatalError("OpenSSL could not set up a SHA-256 context (out of memory?)")
            }
            ctx = c
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }

    private let context = Context()

    public init() {}

    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let handled: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if handled == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    public mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }

    public mutating func update(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        _ = EVP_DigestUpdate(context.ctx, raw.baseAddress, raw.count)
    }

    /// The 32-byte digest of everything given to `update`.
    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context.ctx, $0.baseAddress, &length) }
        return out
    }

    /// Lowercase hex sha256 of `bytes`.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var digest = SHA256Digest()
        digest.update(bytes)
        return hexString(digest.finalize())
    }

    /// Lowercase hex sha256 of `data`.
    public static func hex(_ data: Data) -> String {
        var digest = SHA256Digest()
        digest.update(data)
        return hexString(digest.finalize())
    }

    /// Lowercase hex sha256 of a string's UTF-8 bytes.
    public static func hex(_ string: String) -> String { hex(Array(string.utf8)) }

    private static func hexString(_ digest: [UInt8]) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
