import Foundation
import WeightFormats
import XCTest

/// The dispatcher: format by magic bytes, never by extension.
final class WeightFilesTests: XCTestCase {
    func testPicksTheRightReader() throws {
        let cases: [(String, WeightFormat)] = [
            ("tiny.safetensors", .safetensors), ("tiny_keras2.safetensors", .safetensors),
            ("tiny_keras2.h5", .kerasHDF5), ("tiny_keras3.weights.h5", .kerasHDF5), ("tiny_keras_legacy.h5", .kerasHDF5),
            ("tiny_zip.pt", .pytorch), ("tiny_legacy.pt", .pytorch),
        ]
        for (name, format) in cases {
            let url = try FormatFixtures.url(name)
            XCTAssertEqual(try WeightFiles.detectFormat(url), format, name)
            let sd = try WeightFiles.load(url)
            let direct: StateDict
            switch format {
            case .safetensors: direct = try Safetensors.load(url)
            case .kerasHDF5: direct = try KerasHDF5.load(url)
            case .pytorch: direct = try PyTorchCheckpoint.load(url)
            }
            XCTAssertEqual(sd.names, direct.names, name)
            XCTAssertEqual(sd.tensors, direct.tensors, name)
        }
    }

    func testExtensionIsIgnored() throws {
        // A safetensors file saved as .pth and an HDF5 file saved as .safetensors still load.
        let st = try FormatFixtures.bytes("tiny.safetensors")
        let sd = try withTemporaryFile(st, name: "weights.pth") { try WeightFiles.load($0) }
        XCTAssertEqual(sd.names, try FormatFixtures.expected("tiny.safetensors").map(\.name))
        let h5 = try FormatFixtures.bytes("tiny_keras2.h5")
        let k = try withTemporaryFile(h5, name: "weights.safetensors") { try WeightFiles.load($0) }
        XCTAssertEqual(k.count, try FormatFixtures.expected("tiny_keras2.h5").count)
    }

    func testSafetensorsLengthThatLooksLikeAPickle() throws {
        // Header length 0x0280 = 640: the file starts 80 02, like a protocol-2 pickle.
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let padded = Array(header.utf8) + [UInt8](repeating: 0x20, count: 640 - header.utf8.count)
        let bytes: [UInt8] = [0x80, 0x02, 0, 0, 0, 0, 0, 0] + padded + [0, 0, 0x40, 0x40]
        try withTemporaryFile(bytes, name: "odd.bin") { url in
            XCTAssertEqual(try WeightFiles.detectFormat(url), .safetensors)
            XCTAssertEqual(try WeightFiles.load(url).tensor("w").values, [3])
        }
    }

    func testUnrecognizedFilesNameTheSupportedFormats() throws {
        for bytes in [Array("GIF89a, not weights at all".utf8), [], [0x7B, 0x7D]] {
            let error = try XCTUnwrap(try formatError(bytes, name: "mystery.bin", WeightFiles.load))
            let text = String(describing: error)
            for needle in ["mystery.bin", "PyTorch", "safetensors", "Keras HDF5"] {
                XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)")
            }
        }
        XCTAssertThrowsError(try WeightFiles.load(URL(fileURLWithPath: "/nonexistent/w.safetensors"))) { error in
            XCTAssertTrue(String(describing: error).contains("/nonexistent/w.safetensors"))
        }
    }

    func testTruncatedSafetensorsIsReportedAsSuch() throws {
        let full = try FormatFixtures.bytes("tiny.safetensors")
        for cut in [9, 100, full.count - 1] {
            let error = try XCTUnwrap(try formatError(Array(full.prefix(cut)), name: "cut.safetensors", WeightFiles.load))
            XCTAssertTrue(String(describing: error).contains("truncated"), "\(cut): \(error)")
        }
    }
}
