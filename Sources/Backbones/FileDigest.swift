import Foundation
import WorkbenchSupport

public enum FileDigest {
    /// SHA-256 of a file, hex, streamed in 1 MiB chunks (OpenSSL's libcrypto).
    public static func sha256(_ url: URL) throws -> String { try digest(url, .sha256) }

    /// MD5 of a file, hex (Keras publishes md5 for its applications weights).
    public static func md5(_ url: URL) throws -> String { try digest(url, .md5) }

    private static func digest(_ url: URL, _ algorithm: Digest.Algorithm) throws -> String {
        do { return try Digest.hex(file: url, algorithm) } catch let e as Digest.UnreadableFile {
            throw BackboneError.unreadableWeights(url.path, underlying: e.reason)
        }
    }
}
