import Foundation
import XCTest
import Imaging

/// Shared helpers for the Imaging tests.
enum Fixtures {
    static var root: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    }

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    static func bytes(_ relative: String) throws -> [UInt8] { try ImageCodec.readFile(url(relative)) }

    static func image(_ relative: String) throws -> RGBImage { try ImageCodec.decode(file: url(relative)) }

    static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: url(relative))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// scenes6 beside the repository root (<repo>/../shared/datasets/scenes6), found by walking up from
    /// this file; nil when absent (tests that need it skip).
    static func scenes6(file: String = #filePath) -> URL? {
        var dir = URL(fileURLWithPath: file).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared/datasets/scenes6")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("train").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}

/// A temporary folder removed at the end of the test.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("imaging-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit {
        // Restore permissions we may have removed so the cleanup can delete everything.
        if let e = FileManager.default.enumerator(atPath: url.path) {
            for case let p as String in e { chmod(url.appendingPathComponent(p).path, 0o755) }
        }
        try? FileManager.default.removeItem(at: url)
    }

    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
        return file
    }

    @discardableResult
    func mkdir(_ relative: String) throws -> URL {
        let dir = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
