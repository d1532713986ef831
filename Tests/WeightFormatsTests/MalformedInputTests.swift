import Foundation
import WeightFormats
import XCTest

/// Damaged, hostile or foreign files: each must give a clear error naming the file, never a crash.
final class MalformedInputTests: XCTestCase {
    private func assertError(_ bytes: [UInt8], contains needles: [String],
                             file: StaticString = #filePath, line: UInt = #line) throws {
        guard let error = try loadError(bytes, name: "hostile.pt") else {
            return XCTFail("expected an error", file: file, line: line)
        }
        let text = error.description
        XCTAssertTrue(text.contains("hostile.pt"), "error should name the file: \(text)", file: file, line: line)
        for needle in needles {
            XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)", file: file, line: line)
        }
    }

    func testMissingFile() throws {
        let url = URL(fileURLWithPath: "/nonexistent/dir/weights.pth")
        XCTAssertThrowsError(try PyTorchCheckpoint.load(url)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("/nonexistent/dir/weights.pth") && text.contains("cannot open"), text)
        }
    }

    func testWrongMagic() throws {
        try assertError(Array("hello, this is not a checkpoint".utf8), contains: ["not a PyTorch checkpoint"])
        try assertError([], contains: ["not a PyTorch checkpoint", "empty"])
        // A pickle, but not torch's legacy magic number.
        var wrongMagic = LegacyBytes.header
        wrongMagic[4] ^= 0xFF
        try assertError(wrongMagic, contains: ["not a PyTorch checkpoint"])
    }

    func testTruncatedFilesNeverCrash() throws {
        for fixture in ["tiny_zip", "tiny_legacy", "tiny_zip64", "tiny_wrapped"] {
            let full = try Fixtures.bytes(fixture)
            var cut = 0
            while cut < full.count {
                let error = try loadError(Array(full[..<cut]), name: "cut.pt")
                XCTAssertNotNil(error, "\(fixture) cut at \(cut) of \(full.count) loaded without error")
                if let error { XCTAssertTrue(error.description.contains("cut.pt"), error.description) }
                cut += cut < 64 ? 1 : 37
            }
        }
        // The specific message for data cut short.
        let legacy = try Fixtures.bytes("tiny_legacy")
        try assertError(Array(legacy.dropLast(10)), contains: ["truncated"])
        let zip = try Fixtures.bytes("tiny_zip")
        try assertError(Array(zip.dropLast(10)), contains: ["truncated"])
    }

    func testCorruptedBytesNeverCrash() throws {
        // Deterministic byte flips all over each fixture: any outcome but a crash is fine.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for fixture in ["tiny_zip", "tiny_legacy"] {
            let full = try Fixtures.bytes(fixture)
            for _ in 0..<(Int(ProcessInfo.processInfo.environment["WEIGHTS_FUZZ_ROUNDS"] ?? "") ?? 300) {
                var bytes = full
                for _ in 0..<(1 + next() % 3) {
                    // Mostly hit the structure (pickle at the start, zip directory at the end).
                    let position: Int
                    switch next() % 3 {
                    case 0: position = next() % min(bytes.count, 1600)
                    case 1: position = bytes.count - 1 - next() % min(bytes.count, 1400)
                    default: position = next() % bytes.count
                    }
                    bytes[position] = UInt8(truncatingIfNeeded: next())
                }
                _ = try loadError(bytes)
            }
        }
    }

    func testUnknownOpcode() throws {
        // State-dict pickle: PROTO 2, EMPTY_DICT, MARK, 'a', then INST (0x69), which is never allowed.
        let inst = LegacyBytes.header + [0x80, 0x02, 0x7D, 0x28] + LegacyBytes.binunicode("a") + [0x69]
        try assertError(inst, contains: ["0x69 INST", "unsupported pickle opcode"])
        // A byte that is no opcode at all.
        try assertError(LegacyBytes.header + [0x80, 0x02, 0xFF], contains: ["0xFF (not a pickle opcode)"])
    }

    func testDisallowedGlobal() throws {
        // GLOBAL 'os system', 'echo pwned', TUPLE1, REDUCE, STOP: refused at GLOBAL, nothing runs.
        let osSystem = LegacyBytes.header + [0x80, 0x02] + Array("cos\nsystem\n".utf8)
            + LegacyBytes.binunicode("echo pwned") + [0x85, 0x52, 0x2E]
        try assertError(osSystem, contains: ["os.system", "disallowed global"])
        // The same through STACK_GLOBAL (protocol 4).
        let stackGlobal = LegacyBytes.header + [0x80, 0x04, 0x8C, 0x05] + Array("posix".utf8)
            + [0x8C, 0x06] + Array("system".utf8) + [0x93, 0x2E]
        try assertError(stackGlobal, contains: ["posix.system"])
        // A torch global outside the allow-list.
        let other = LegacyBytes.header + [0x80, 0x02] + Array("ctorch._utils\n_rebuild_qtensor\n".utf8)
        try assertError(other, contains: ["torch._utils._rebuild_qtensor"])
    }

    func testStackUnderflowAndNonStateDicts() throws {
        try assertError(LegacyBytes.header + [0x80, 0x02, 0x52], contains: ["stack underflow", "0x52 REDUCE"])
        // A legacy checkpoint whose object is a list, not a dict.
        try assertError(LegacyBytes.header + [0x80, 0x02, 0x5D, 0x2E, 0x80, 0x02, 0x5D, 0x2E],
                        contains: ["not a state dict", "list"])
        // A dict whose value is an int, not a tensor.
        let intValue = LegacyBytes.header + [0x80, 0x02, 0x7D, 0x28] + LegacyBytes.binunicode("epoch")
            + [0x4B, 0x03, 0x75, 0x2E, 0x80, 0x02, 0x5D, 0x2E]
        try assertError(intValue, contains: ["'epoch'", "int"])
    }

    /// A hand-built legacy checkpoint with one float32 tensor of `size` elements (stride 1) over a
    /// 2-element storage holding [1, 2].
    private func handBuiltLegacy(size: UInt8, stride: UInt8 = 1) -> [UInt8] {
        let u = LegacyBytes.binunicode
        let storagePid: [UInt8] = [0x28] + u("storage") + Array("ctorch\nFloatStorage\n".utf8) + u("0") + u("cpu")
            + [0x4B, 0x02, 0x4E, 0x74, 0x51]                          // numel 2, view None, TUPLE, BINPERSID
        let rebuild: [UInt8] = Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8) + [0x28] + storagePid
            + [0x4B, 0x00, 0x4B, size, 0x85, 0x4B, stride, 0x85, 0x89, 0x4E, 0x74, 0x52]
        let state: [UInt8] = [0x80, 0x02, 0x7D, 0x28] + u("w") + rebuild + [0x75, 0x2E]
        let keys: [UInt8] = [0x80, 0x02, 0x5D] + u("0") + [0x61, 0x2E]
        let data: [UInt8] = [2, 0, 0, 0, 0, 0, 0, 0] + [0x00, 0x00, 0x80, 0x3F] + [0x00, 0x00, 0x00, 0x40]
        return LegacyBytes.header + state + keys + data
    }

    func testHandBuiltLegacyTensorAndOutOfBoundsView() throws {
        let url = try temporaryFile(handBuiltLegacy(size: 2))
        defer { removeTemporary(url) }
        let dict = try PyTorchCheckpoint.load(url)
        XCTAssertEqual(dict.names, ["w"])
        XCTAssertEqual(try dict.tensor("w").values, [1, 2])
        // Views reaching past the storage's two elements.
        try assertError(handBuiltLegacy(size: 3), contains: ["tensor 'w'", "reaches element 2", "holds 2"])
        try assertError(handBuiltLegacy(size: 2, stride: 2), contains: ["tensor 'w'", "reaches element 2"])
    }

    func testZipWithoutDataPickle() throws {
        // A stored zip holding only "hello.txt" (built by hand: local header, central entry, end record).
        let name = Array("hello.txt".utf8), body = Array("hi".utf8)
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16 & 0xFFFF) }
        let local = le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le32(0) + le32(0)
            + le32(body.count) + le32(body.count) + le16(name.count) + le16(0) + name + body
        let central = le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le32(0) + le32(0)
            + le32(body.count) + le32(body.count) + le16(name.count) + le16(0) + le16(0) + le16(0) + le16(0)
            + le32(0) + le32(0) + name
        let end = le32(0x0605_4B50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(central.count)
            + le32(local.count) + le16(0)
        try assertError(local + central + end, contains: ["no data.pkl"])
    }
}

/// A weights path that is a FIFO, /dev/zero, a folder or a symlink loop fails at once with the path
/// in the message: nothing blocks, nothing is read without bound.
final class SpecialWeightFileTests: XCTestCase {
    func testSpecialFilesAreRefusedAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("special-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("fifo.pth").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("zero.safetensors").path, withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("loop.h5").path,
                                                   withDestinationPath: dir.appendingPathComponent("loop.h5").path)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder.pth"), withIntermediateDirectories: true)
        for name in ["fifo.pth", "zero.safetensors", "loop.h5", "folder.pth"] {
            let url = dir.appendingPathComponent(name)
            XCTAssertThrowsError(try WeightFiles.load(url), name) { error in
                XCTAssertTrue("\(error)".contains(name), "\(error)")
            }
            XCTAssertThrowsError(try WeightFiles.index(url), name)
        }
    }
}
