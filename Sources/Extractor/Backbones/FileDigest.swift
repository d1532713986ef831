import COpenSSL
import Foundation

public enum FileDigest {
    /// SHA-256 of a file, hex, streamed in 1 MiB chunks (OpenSSL's libcrypto).
    public static func sha256(_ url: URL) throws -> String { try digest(url, EVP_sha256(), bytes: 32) }

    /// MD5 of a file, hex (Keras publishes md5 for its applications weights).
    public static func md5(_ url: URL) throws -> String { try digest(url, EVP_md5(), bytes: 16) }

    private static func digest(_ url: URL, _ md: OpaquePointer?, bytes: Int) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw BackboneError.unreadableWeights(url.path, underlying: "cannot open the file")
        }
        defer { try? handle.close() }
        guard let ctx = EVP_MD_CTX_new() else { throw BackboneError.unreadableWeights(url.path, underlying: "no digest context") }
        defer { EVP_MD_CTX_free(ctx) }
        EVP_DigestInit_ex(ctx, md, nil)
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { _ = EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) }
        }
        var digest = [UInt8](repeating: 0, count: bytes)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &digest, &len)
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
