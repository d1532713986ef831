import COpenSSL
import Foundation

/// SHA-256 and MD5 through OpenSSL's libcrypto (EVP): of bytes, `Data`, strings, and files streamed in
/// 1 MiB chunks. The one digest of the workbench: image content hashes, weight-file checks, settings
/// keys, policy hashes and trial keys all come from here.
///
/// A value owns one digest context: use it where it was made (copies share the context).
public struct Digest {
    public enum Algorithm: Sendable {
        case sha256, md5

        var md: OpaquePointer? { self == .sha256 ? EVP_sha256() : EVP_md5() }
        /// Digest length in bytes.
        public var byteCount: Int { self == .sha256 ? 32 : 16 }
    }

    private final class Context {
        let ctx: OpaquePointer
        let algorithm: Algorithm
        init(_ algorithm: Algorithm) {
            guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, algorithm.md, nil) == 1 else {
                fatalError("OpenSSL could not set up a digest context (out of memory?)")
            }
            ctx = c
            self.algorithm = algorithm
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }

    private let context: Context

    public init(_ algorithm: Algorithm = .sha256) { context = Context(algorithm) }

    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let handled: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if handled == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    public mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }

    public mutating func update(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        _ = EVP_DigestUpdate(context.ctx, raw.baseAddress, raw.count)
    }

    /// The digest (32 bytes for SHA-256, 16 for MD5) of everything given to `update`.
    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: context.algorithm.byteCount)
        var length: UInt32 = 0
        _ = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context.ctx, $0.baseAddress, &length) }
        return out
    }

    // MARK: One-shot digests, lowercase hex

    public static func hex<Bytes: Sequence>(_ bytes: Bytes, _ algorithm: Algorithm = .sha256) -> String
    where Bytes.Element == UInt8 {
        var digest = Digest(algorithm)
        digest.update(bytes)
        return hexString(digest.finalize())
    }

    public static func hex(_ data: Data, _ algorithm: Algorithm = .sha256) -> String {
        data.withUnsafeBytes { hex($0, algorithm) }
    }

    public static func hex(_ raw: UnsafeRawBufferPointer, _ algorithm: Algorithm = .sha256) -> String {
        var digest = Digest(algorithm)
        digest.update(raw)
        return hexString(digest.finalize())
    }

    /// Of a string's UTF-8 bytes.
    public static func hex(_ string: String, _ algorithm: Algorithm = .sha256) -> String { hex(Array(string.utf8), algorithm) }

    /// Of a file's bytes, read in 1 MiB chunks (weight files are hundreds of MB).
    public static func hex(file url: URL, _ algorithm: Algorithm = .sha256) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else { throw UnreadableFile(path: url.path) }
        defer { try? handle.close() }
        var digest = Digest(algorithm)
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
                throw UnreadableFile(path: url.path, reason: "\(error)")
            }
            if chunk.isEmpty { break }
            digest.update(chunk)
        }
        return hexString(digest.finalize())
    }

    public struct UnreadableFile: Error, CustomStringConvertible {
        public let path: String
        public var reason = "cannot open the file"
        public var description: String { "\(path): \(reason); check that it exists and is readable" }
    }

    private static let digits = Array("0123456789abcdef".utf8)

    /// Lowercase hex of raw bytes (e.g. a finalized digest).
    public static func hexString(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The store's name for SHA-256 (the default algorithm of `Digest`): `SHA256Digest.hex(text)`.
public typealias SHA256Digest = Digest
