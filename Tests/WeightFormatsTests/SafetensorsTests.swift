import WorkbenchSupport
import Foundation
import WeightFormats
import XCTest

final class SafetensorsTests: XCTestCase {
    func testReadsEveryDTypeExactly() throws {
        let sd = try Safetensors.load(try FormatFixtures.url("tiny.safetensors"))
        try FormatFixtures.assertMatches(sd, try FormatFixtures.expected("tiny.safetensors"))
        XCTAssertEqual(try sd.tensor("num_batches_tracked").shape, [])
        XCTAssertEqual(try sd.tensor("empty").shape, [0, 3])
    }

    func testSameTensorsAsTheKerasFile() throws {
        let fromSafetensors = try Safetensors.load(try FormatFixtures.url("tiny_keras2.safetensors"))
        try FormatFixtures.assertMatches(fromSafetensors, try FormatFixtures.expected("tiny_keras2.safetensors"))
        let fromHDF5 = try KerasHDF5.load(try FormatFixtures.url("tiny_keras2.h5"))
        XCTAssertEqual(Set(fromSafetensors.names), Set(fromHDF5.names))
        for name in fromHDF5.names {
            XCTAssertEqual(try fromSafetensors.tensor(name), try fromHDF5.tensor(name), name)
        }
    }

    // MARK: - hand-made files

    /// A safetensors file: 8-byte little-endian header length, the header, the data.
    private func file(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        let n = length ?? UInt64(h.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } + h + data
    }

    private func assertError(_ bytes: [UInt8], _ needles: [String],
                             file: StaticString = #filePath, line: UInt = #line) throws {
        guard let error = try formatError(bytes, name: "hostile.safetensors", Safetensors.load) else {
            return XCTFail("expected an error", file: file, line: line)
        }
        XCTAssertTrue(error is WeightFormatError, "unexpected error type: \(error)", file: file, line: line)
        let text = String(describing: error)
        XCTAssertTrue(text.contains("hostile.safetensors"), "error should name the file: \(text)", file: file, line: line)
        for needle in needles {
            XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)", file: file, line: line)
        }
    }

    func testHandMadeFileLoads() throws {
        // Two F32 values then one BF16, with header padding and a gap + trailing bytes (tolerated).
        let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, 0xAA, 0xAA, 0x80, 0x3F, 0xFF]
        let header = #"{"b":{"dtype":"BF16","shape":[],"data_offsets":[10,12]},"#
            + #""a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}   "#
        let sd = try withTemporaryFile(file(header, data: data), name: "ok.safetensors") { try Safetensors.load($0) }
        XCTAssertEqual(sd.names, ["a", "b"])
        XCTAssertEqual(try sd.tensor("a").values, [1, -2])
        XCTAssertEqual(try sd.tensor("b").values, [1])
        XCTAssertEqual(try sd.tensor("b").sourceDType, .bfloat16)
    }

    func testBoundsAndConsistencyErrors() throws {
        let f32x2 = #""dtype":"F32","shape":[2]"#
        try assertError([1, 2, 3], ["truncated", "8-byte header length"])
        try assertError(file("{}", length: 1 << 40), ["header length", "absurd"])
        try assertError(file("{}", length: 100), ["truncated", "announces 100 bytes"])
        try assertError(file("[1,2]"), ["not a JSON object"])
        try assertError(file("{\"a\": "), ["header JSON"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[2]}}"#), ["data_offsets"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0]),
                        ["truncated", "'w'", "data bytes 0..<8", "holds only 3"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 12)),
                        ["'w'", "needs 12 bytes", "span 8"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)),
                        ["'w'", "negative"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#),
                        ["'w'", "too large"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: .init(repeating: 0, count: 8)),
                        ["'w'", "increasing"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#), ["'w'", "[begin, end]"])
        try assertError(file(#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#), ["header JSON"])
        try assertError(file(#"{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, data: [0, 0]),
                        ["'w'", "U8", "not supported"])
        try assertError(file(#"{"a":{\#(f32x2),"data_offsets":[0,8]},"b":{\#(f32x2),"data_offsets":[4,12]}}"#,
                             data: .init(repeating: 0, count: 12)),
                        ["overlaps", "'a'", "'b'"])
    }

    func testTruncatedAtEveryLengthNeverCrashes() throws {
        let full = try FormatFixtures.bytes("tiny.safetensors")
        // Every length through the length field and the header's start, then every 7th, then the data's end.
        for cut in Array(0..<16) + Array(stride(from: 16, to: full.count, by: 7)) + [full.count - 1] {
            guard let error = try formatError(Array(full.prefix(cut)), name: "cut.safetensors", Safetensors.load) else {
                return XCTFail("a file cut to \(cut) of \(full.count) bytes loaded")
            }
            XCTAssertTrue(String(describing: error).contains("cut.safetensors"))
        }
    }

    func testCorruptedHeadersNeverCrash() throws {
        let full = try FormatFixtures.bytes("tiny.safetensors")
        let headerEnd = 8 + Int(full[0]) + Int(full[1]) << 8
        var random = SplitMix64(seed: 42)
        var failures = 0
        for _ in 0..<400 {
            var bytes = full
            for _ in 0..<(1 + random.below(3)) {
                let i = random.below(headerEnd)
                bytes[i] = random.below(4) == 0 ? UInt8(truncatingIfNeeded: random.next()) : bytes[i] ^ (1 << UInt8(random.below(8)))
            }
            if try formatError(bytes, name: "flipped.safetensors", Safetensors.load) != nil { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 0)
    }
}
