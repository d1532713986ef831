import Foundation
import WeightFormats
import XCTest

/// Fixture files written by tools/goldens/tiny_checkpoints.py.
enum Fixtures {
    static func url(_ name: String, _ ext: String = "pt") throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures") else {
            throw XCTSkip("fixture \(name).\(ext) missing; run tools/goldens/tiny_checkpoints.py")
        }
        return url
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: try url(name)))
    }

    struct ExpectedTensor: Decodable {
        let name: String
        let shape: [Int]
        let dtype: String
        let values: [Double]
    }

    struct Expected: Decodable {
        let tensors: [ExpectedTensor]
    }

    static func expected() throws -> [ExpectedTensor] {
        let data = try Data(contentsOf: try url("tiny_expected", "json"))
        return try JSONDecoder().decode(Expected.self, from: data).tensors
    }
}

/// Writes `bytes` to a fresh temporary file; removed by the returned cleanup.
func temporaryFile(_ bytes: [UInt8], name: String = "checkpoint.pt") throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("weightformats-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url
}

func removeTemporary(_ url: URL) {
    try? FileManager.default.removeItem(at: url.deletingLastPathComponent())
}

/// Loads `bytes` as a checkpoint from a temporary file, returning the error it throws (or nil).
func loadError(_ bytes: [UInt8], name: String = "checkpoint.pt") throws -> WeightFileError? {
    let url = try temporaryFile(bytes, name: name)
    defer { removeTemporary(url) }
    do {
        _ = try PyTorchCheckpoint.load(url)
        return nil
    } catch let error as WeightFileError {
        return error
    }
}

/// Builders for hand-made legacy checkpoints (pickle bytes written by hand, nothing is executed).
enum LegacyBytes {
    /// The three header pickles: magic number (LONG1), protocol 1001, sys-info dict.
    static let header: [UInt8] =
        [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        + [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]
        + [0x80, 0x02, 0x7D, 0x28] + binunicode("little_endian") + [0x88, 0x75, 0x2E]

    /// BINUNICODE opcode + length + UTF-8.
    static func binunicode(_ s: String) -> [UInt8] {
        let utf8 = Array(s.utf8)
        let n = UInt32(utf8.count)
        return [0x58, UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)] + utf8
    }
}
