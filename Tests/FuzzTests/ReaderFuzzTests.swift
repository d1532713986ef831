import Foundation
import HeadModel
import Imaging
import WeightFormats
import XCTest

/// Every reader of outside bytes, fuzzed with a fixed seed and a bounded number of mutants of the
/// committed fixtures (FuzzDriver), plus every committed regression input. Passing means: no crash,
/// no hang, no unbounded read; errors are expected and ignored.
///
/// More mutants for a longer run by hand: FUZZ_MUTANTS=20000 swift test --filter ReaderFuzzTests
final class ReaderFuzzTests: XCTestCase {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    private func files(_ folder: String, _ names: [String]? = nil) throws -> [[UInt8]] {
        let dir = Self.testsDir.appendingPathComponent(folder)
        let all = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        return try (names ?? all).map { [UInt8](try Data(contentsOf: dir.appendingPathComponent($0))) }
    }

    private func regressions(_ target: String) throws -> [[UInt8]] {
        let dir = Self.testsDir.appendingPathComponent("FuzzTests/Regressions/\(target)")
        guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
        return try files("FuzzTests/Regressions/\(target)")
    }

    private func mutants(_ perSeed: Int) -> Int {
        ProcessInfo.processInfo.environment["FUZZ_MUTANTS"].flatMap(Int.init) ?? perSeed
    }

    /// Runs a file reader: each input is written to one scratch file (in /dev/shm when there is one).
    private func fuzzFile(_ target: String, seeds: [[UInt8]], perSeed: Int, ext: String,
                          _ read: (URL) throws -> Void) throws {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm")
            : FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("fuzz-\(target)-\(getpid()).\(ext)")
        defer { try? FileManager.default.removeItem(at: url) }
        let driver = FuzzDriver(target: target, seeds: seeds, mutantsPerSeed: mutants(perSeed))
        let n = driver.run(regressions: try regressions(target)) { bytes in
            _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
            _ = try? read(url)
        }
        print("fuzz \(target): \(n) inputs, no crash")
    }

    func testImageHeaderParser() throws {
        let driver = FuzzDriver(target: "image-header", seeds: try files("ImagingTests/Fixtures/formats"),
                                mutantsPerSeed: mutants(2000))
        let n = driver.run(regressions: try regressions("image-header")) { bytes in
            _ = try? ImageCodec.probe(data: Data(bytes), name: "fuzz")
        }
        print("fuzz image-header: \(n) inputs, no crash")
    }

    /// libjpeg (our plain path and OpenCV's), libpng, OpenCV's BMP reader and libwebp.
    func testImageDecoders() throws {
        let driver = FuzzDriver(target: "image-decode", seeds: try files("ImagingTests/Fixtures/formats"),
                                mutantsPerSeed: mutants(150))
        let n = driver.run(regressions: try regressions("image-decode")) { bytes in
            _ = try? ImageCodec.decode(bytes: bytes, name: "fuzz", maxPixels: 4_000_000)
        }
        _ = ImageCodec.takeWarnings()
        print("fuzz image-decode: \(n) inputs, no crash")
    }

    /// The zip reader and the pickle VM (zip, zip64 and legacy checkpoints).
    func testPyTorchCheckpoints() throws {
        try fuzzFile("pytorch", seeds: try files("WeightFormatsTests/Fixtures", ["tiny_zip.pt", "tiny_zip64.pt", "tiny_legacy.pt", "tiny_wrapped.pt"]),
                     perSeed: 600, ext: "pt") { url in
            _ = try PyTorchCheckpoint.load(url)
            _ = try WeightFiles.index(url)
        }
    }

    func testSafetensors() throws {
        try fuzzFile("safetensors", seeds: try files("WeightFormatsTests/Fixtures", ["tiny.safetensors", "tiny_keras2.safetensors"]),
                     perSeed: 1000, ext: "safetensors") { url in
            _ = try Safetensors.load(url)
            _ = try WeightFiles.index(url)
        }
    }

    /// libhdf5 behind our guards (HDF5Guards.swift): Keras 2, Keras 3 and legacy layouts.
    func testKerasHDF5() throws {
        try fuzzFile("keras-hdf5", seeds: try files("WeightFormatsTests/Fixtures", ["tiny_keras2.h5", "tiny_keras3.weights.h5", "tiny_keras_legacy.h5"]),
                     perSeed: 300, ext: "h5") { url in
            _ = try KerasHDF5.load(url)
            _ = try WeightFiles.index(url)
        }
    }

    /// The head blob (`StoredHead`, as `extract predict` reads a head row), and inference on what it accepts.
    func testHeadBlob() throws {
        let driver = FuzzDriver(target: "head-blob", seeds: try files("HeadTrainerTests/Fixtures/export", ["head.bin"]),
                                mutantsPerSeed: mutants(1000))
        let n = driver.run(regressions: try regressions("head-blob")) { bytes in
            guard let head = try? StoredHead<UnreadConfig>(encoded: Data(bytes), source: "fuzz") else { return }
            _ = try? HeadInference(head.weights).probabilities(features: [Float](repeating: 0.5, count: head.inputDim),
                                                               temperature: head.temperature ?? 1)
        }
        print("fuzz head-blob: \(n) inputs, no crash")
    }
}
