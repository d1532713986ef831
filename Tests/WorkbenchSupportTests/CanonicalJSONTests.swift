import Foundation
import WorkbenchSupport
import XCTest

/// The canonical form itself; Tests/IdentityTests checks it against the keys of existing stores.
final class CanonicalJSONTests: XCTestCase {
    func canonical(_ text: String) throws -> String { try CanonicalJSON(parsing: text).text }

    func testNumbers() throws {
        XCTAssertEqual(try canonical("[1, 1.0, 2.50, -3, 1e2, 1E-5, 0.1, 1e15, 1e16, 9007199254740993, -0, -0.0]"),
                       "[1,1,2.5,-3,100,1e-05,0.1,1000000000000000,1e+16,9007199254740993,0,-0]")
        XCTAssertEqual(try canonical("[18446744073709551615, 18446744073709551616, -9223372036854775809]"),
                       "[18446744073709551615,1.8446744073709552e+19,-9.223372036854776e+18]")
        XCTAssertEqual(CanonicalJSON.array([.double(.nan), .double(.infinity), .int(-7), .uint(7)]).text, "[null,null,-7,7]")
    }

    func testStringsUseMinimalEscaping() throws {
        let s = "a/b \"q\" back\\slash \u{8}\u{c}\n\r\t \u{1}\u{1f} \u{7f} \u{2028} é 😀"
        XCTAssertEqual(CanonicalJSON.string(s).text,
                       #""a/b \"q\" back\\slash \b\f\n\r\t \u0001\u001f "# + "\u{7f} \u{2028} é 😀\"")
        XCTAssertEqual(try CanonicalJSON(parsing: CanonicalJSON.string(s).text), .string(s))
        XCTAssertEqual(try canonical(#""\/\u00e9\ud83d\ude00""#), "\"/é😀\"")
    }

    /// Keys in UTF-8 byte order at every depth; no whitespace.
    func testObjectsSortKeysByBytes() throws {
        XCTAssertEqual(try canonical(#" { "b" : [ {"z":1,"a":2} ], "a":null, "B":true, "_":false, "a10":{}, "a9":[] } "#),
                       #"{"B":true,"_":false,"a":null,"a10":{},"a9":[],"b":[{"a":2,"z":1}]}"#)
        XCTAssertEqual(CanonicalJSON.object(["batchnorm": .bool(true), "batch_size": .int(32)]).text,
                       #"{"batch_size":32,"batchnorm":true}"#)
    }

    func testEncodables() throws {
        struct Config: Encodable { let name: String; let rate: Double; let seed: UInt64; let off: Int? }
        XCTAssertEqual(try CanonicalJSON(encoding: Config(name: "x/y", rate: 1e-4, seed: .max, off: nil)).text,
                       #"{"name":"x/y","rate":0.0001,"seed":18446744073709551615}"#)
        XCTAssertEqual(CanonicalJSON.string("abc").sha256, Digest.hex(#""abc""#))
    }

    func testBadInputIsAnErrorWithItsOffset() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"\u{1}\"", "\"\\x\"", "\"\\ud800\"", "[1] 2", "nan", "[1 [2]]", "{\"a\":1 \"b\":2}", "[", "{\"a\":1,}"] {
            XCTAssertThrowsError(try CanonicalJSON(parsing: bad), bad) { XCTAssertTrue("\($0)".contains("at byte"), "\($0)") }
        }
    }
}
