import Foundation
import WorkbenchSupport
import XCTest

final class DigestTests: XCTestCase {
    /// FIPS 180-2 / NIST example vectors (moved here from FeatureStoreTests with the digest).
    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256Digest.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Digest.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256Digest.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256Digest.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Incremental updates of odd sizes give the same digest as one update.
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var digest = SHA256Digest()
        for chunk in stride(from: 0, to: 1000, by: 37) { digest.update(bytes[chunk..<min(1000, chunk + 37)]) }
        XCTAssertEqual(digest.finalize().map { String(format: "%02x", $0) }.joined(), SHA256Digest.hex(Data(bytes)))
        XCTAssertEqual(SHA256Digest.hex(Data(bytes)), SHA256Digest.hex(bytes))
        XCTAssertEqual(bytes.withUnsafeBytes { Digest.hex($0) }, SHA256Digest.hex(bytes))
    }

    /// RFC 1321 test suite.
    func testMD5KnownAnswers() {
        XCTAssertEqual(Digest.hex("", .md5), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(Digest.hex("abc", .md5), "900150983cd24fb0d6963f7d28e17f72")
        XCTAssertEqual(Digest.hex("message digest", .md5), "f96b697d7cb7938d525a2f31aaf161d0")
        XCTAssertEqual(Digest.hex(String(repeating: "1234567890", count: 8), .md5), "57edf4a22be3c955ac49da2e2107b67a")
    }

    /// A file is read in 1 MiB chunks: a 2.5 MiB file (three chunks, the last partial) hashes like its bytes.
    func testFilesAreStreamedToTheSameDigest() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let bytes = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        try Data(bytes).write(to: url)
        XCTAssertEqual(try Digest.hex(file: url), Digest.hex(bytes))
        XCTAssertEqual(try Digest.hex(file: url, .md5), Digest.hex(bytes, .md5))
        let missing = url.appendingPathExtension("missing")
        XCTAssertThrowsError(try Digest.hex(file: missing)) { XCTAssertTrue("\($0)".contains(missing.path)) }
    }
}
