import BackboneEngine
import Foundation
import XCTest

/// Skips a test that needs bf16 where oneDNN has none (`ONEDNN_MAX_CPU_ISA=AVX2`, or an AVX2-only CPU).
func skipWithoutBF16() throws {
    if let why = EngineISA.current.bf16Unavailable { throw XCTSkip(why) }
}

/// Runs the built command-line programs (`make test` builds them before the tests run).
enum CLI {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scenes6 = repo.deletingLastPathComponent().appendingPathComponent("shared/datasets/scenes6")

    /// The directory holding the test bundle also holds the built executables.
    static func binary(_ name: String) throws -> URL {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        for config in ["release", "debug"] {
            let candidate = repo.appendingPathComponent(".build/\(config)/\(name)")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw XCTSkip("\(name) is not built; run `make test`, which builds it first")
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    @discardableResult
    static func run(_ name: String, _ arguments: [String], cwd: URL? = nil, environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = try binary(name)
        p.arguments = arguments
        if let cwd { p.currentDirectoryURL = cwd }
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Starts `name`, reads its stderr until `marker` appears (or `timeout` passes, or it exits), then
    /// kills it with SIGKILL. Returns the stderr seen and whether the kill came before a normal exit.
    static func runAndKill(_ name: String, _ arguments: [String], when marker: String,
                           timeout: TimeInterval = 300) throws -> (stderr: String, killed: Bool) {
        let p = Process()
        p.executableURL = try binary(name)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(timeout)
        while !seen.contains(marker) && Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        return (seen, p.terminationReason == .uncaughtSignal)
    }

    /// DIR/train/<class>/ and DIR/test/<class>/ with `perClass` images each, from scenes6.
    static func smallDataset(classes: [String] = ["forest", "sea"], perClass: Int = 3, testPerClass: Int = 1) throws -> URL {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        let dir = try CLI.temporaryDirectory().appendingPathComponent("data")
        for (split, n) in [("train", perClass), ("test", testPerClass)] where n > 0 {
            for c in classes {
                let src = CLI.scenes6.appendingPathComponent("\(split)/\(c)")
                let dst = dir.appendingPathComponent("\(split)/\(c)")
                try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
                for f in try FileManager.default.contentsOfDirectory(atPath: src.path).sorted().prefix(n) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
                }
            }
        }
        return dir
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("workbench-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
