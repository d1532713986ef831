import WorkbenchSupport
import Foundation
import WeightFormats
import XCTest

/// Fixtures written by tools/goldens/tiny_formats.py (safetensors and Keras HDF5) and their
/// expected contents (tiny_formats_expected.json).
enum FormatFixtures {
    /// `name` is the whole file name, e.g. "tiny_keras3.weights.h5".
    static func url(_ name: String) throws -> URL {
        let ext = (name as NSString).pathExtension
        let stem = (name as NSString).deletingPathExtension
        guard let url = Bundle.module.url(forResource: stem, withExtension: ext, subdirectory: "Fixtures") else {
            throw XCTSkip("fixture \(name) missing; run tools/goldens/tiny_formats.py")
        }
        return url
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: try url(name)))
    }

    private struct Expected: Decodable {
        let files: [String: [Fixtures.ExpectedTensor]]
    }

    /// The tensors of `file` in the order the reader must return them.
    static func expected(_ file: String) throws -> [Fixtures.ExpectedTensor] {
        let data = try Data(contentsOf: try url("tiny_formats_expected.json"))
        guard let tensors = try JSONDecoder().decode(Expected.self, from: data).files[file] else {
            throw XCTSkip("tiny_formats_expected.json has no entry for \(file); re-run tools/goldens/tiny_formats.py")
        }
        return tensors
    }

    /// Checks names (in order), shapes, source dtypes and values bit for bit (float32 of the JSON doubles).
    static func assertMatches(_ sd: StateDict, _ expected: [Fixtures.ExpectedTensor],
                              file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(sd.names, expected.map(\.name), file: file, line: line)
        for e in expected {
            let t = try sd.tensor(e.name)
            XCTAssertEqual(t.shape, e.shape, e.name, file: file, line: line)
            XCTAssertEqual(t.sourceDType.rawValue, e.dtype, e.name, file: file, line: line)
            XCTAssertEqual(t.values.count, e.values.count, e.name, file: file, line: line)
            XCTAssertEqual(t.values.map(\.bitPattern), e.values.map { Float($0).bitPattern }, e.name, file: file, line: line)
        }
    }
}

/// Writes `bytes` to a temporary file named `name`, runs `body` on it and removes it.
func withTemporaryFile<T>(_ bytes: [UInt8], name: String, _ body: (URL) throws -> T) throws -> T {
    let url = try temporaryFile(bytes, name: name)
    defer { removeTemporary(url) }
    return try body(url)
}

/// The error `load` throws for `bytes` written to a file called `name` (nil when it loads).
func formatError(_ bytes: [UInt8], name: String, _ load: (URL) throws -> StateDict) throws -> Error? {
    try withTemporaryFile(bytes, name: name) { url in
        do {
            _ = try load(url)
            return nil
        } catch {
            return error
        }
    }
}

