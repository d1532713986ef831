import WorkbenchSupport
import Foundation
import WeightFormats
import XCTest

final class KerasHDF5Tests: XCTestCase {
    func testKeras2Layout() throws {
        let sd = try KerasHDF5.load(try FormatFixtures.url("tiny_keras2.h5"))
        try FormatFixtures.assertMatches(sd, try FormatFixtures.expected("tiny_keras2.h5"))
        // Names are <layer>/<weight name as listed>; shapes stay in Keras order (HWIO, [in, out]).
        XCTAssertEqual(try sd.tensor("stem_conv/stem_conv/kernel:0").shape, [3, 3, 3, 4])
        XCTAssertEqual(try sd.tensor("dw/dw/depthwise_kernel:0").shape, [3, 3, 4, 2])
        XCTAssertEqual(try sd.tensor("fc/fc/kernel:0").shape, [5, 3])
        XCTAssertEqual(try sd.tensor("norm/norm/count:0").shape, [])
        XCTAssertEqual(try sd.tensor("norm/norm/count:0").values, [1234])
    }

    func testKeras3WeightsLayout() throws {
        let sd = try KerasHDF5.load(try FormatFixtures.url("tiny_keras3.weights.h5"))
        try FormatFixtures.assertMatches(sd, try FormatFixtures.expected("tiny_keras3.weights.h5"))
        XCTAssertEqual(try sd.tensor("layers/depthwise_conv2d/vars/0").shape, [3, 3, 4, 2])
        XCTAssertFalse(sd.names.contains { $0.hasPrefix("optimizer/") }, "optimizer variables are not weights")
        // The same model saved by Keras 2 and Keras 3 holds the same kernel.
        let keras2 = try KerasHDF5.load(try FormatFixtures.url("tiny_keras2.h5"))
        XCTAssertEqual(try sd.tensor("layers/conv2d/vars/0").shape, try keras2.tensor("stem_conv/stem_conv/kernel:0").shape)
    }

    func testOldStyleFile() throws {
        // model_weights/ group, fixed-length strings, split layer_names0/1, gzip float16, big-endian float64.
        let sd = try KerasHDF5.load(try FormatFixtures.url("tiny_keras_legacy.h5"))
        try FormatFixtures.assertMatches(sd, try FormatFixtures.expected("tiny_keras_legacy.h5"))
        XCTAssertFalse(sd.names.contains { $0.contains("iterations") }, "optimizer state is not a weight")
    }

    // MARK: - damaged files

    private func loadError(_ bytes: [UInt8], name: String = "hostile.h5") throws -> Error? {
        try formatError(bytes, name: name, KerasHDF5.load)
    }

    func testNotHDF5() throws {
        let error = try XCTUnwrap(try loadError(Array("definitely not hdf5".utf8)))
        let text = String(describing: error)
        XCTAssertTrue(text.contains("hostile.h5") && text.contains("unrecognized"), text)
        let empty = String(describing: try XCTUnwrap(try loadError([])))
        XCTAssertTrue(empty.contains("empty file"), empty)
        let signatureOnly = String(describing: try XCTUnwrap(try loadError([0x89, 0x48, 0x44])))
        XCTAssertTrue(signatureOnly.contains("truncated"), signatureOnly)
    }

    func testTruncatedFilesGiveClearErrors() throws {
        for fixture in ["tiny_keras2.h5", "tiny_keras3.weights.h5", "tiny_keras_legacy.h5"] {
            let full = try FormatFixtures.bytes(fixture)
            var cut = 8
            while cut < full.count {
                guard let error = try loadError(Array(full.prefix(cut)), name: "cut.h5") else {
                    XCTFail("\(fixture) cut to \(cut) of \(full.count) bytes loaded")
                    break
                }
                let text = String(describing: error)
                XCTAssertTrue(error is WeightFormatError, "\(fixture) cut to \(cut): \(text)")
                XCTAssertTrue(text.contains("cut.h5"), text)
                // libhdf5 compares the end-of-file address in the superblock with the file size.
                XCTAssertTrue(text.contains("truncated"), "\(fixture) cut to \(cut): \(text)")
                cut += cut < 4096 ? 97 : 1009
            }
        }
    }

    func testMissingDatasetNamesLayerAndWeight() throws {
        // Rename one of the two copies of "conv1_b_1:0" (link name or weight_names entry) so they disagree.
        var bytes = try FormatFixtures.bytes("tiny_keras_legacy.h5")
        let needle = Array("conv1_b_1:0".utf8)
        let at = try XCTUnwrap((0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
        bytes[at + 6] = UInt8(ascii: "x")
        let text = String(describing: try XCTUnwrap(try loadError(bytes)))
        XCTAssertTrue(text.contains("hostile.h5") && text.contains("layer 'conv1'") && text.contains("no dataset"), text)
    }

    /// Damage that crashes libhdf5 1.10 itself (found by fuzzing) is caught by hand-read checks first.
    func testDamagedStringStorageIsCaughtBeforeLibhdf5() throws {
        let full = try FormatFixtures.bytes("tiny_keras2.h5")
        func find(_ needle: [UInt8]) throws -> Int {
            try XCTUnwrap((0...(full.count - needle.count)).first { Array(full[$0..<($0 + needle.count)]) == needle },
                          "pattern not found; regenerate the test's patterns with the fixture")
        }
        // The global heap collection holding the names; its first object's size field claims 4 GiB.
        var bytes = full
        let heap = try find(Array("GCOL".utf8) + [1, 0, 0, 0])
        bytes[heap + 16 + 8 + 4] = 1
        var text = String(describing: try XCTUnwrap(try loadError(bytes)))
        XCTAssertTrue(text.contains("hostile.h5") && text.contains("global heap collection at byte \(heap)"), text)
        // The descriptor of "stem_bn/gamma:0" (15 bytes, object 22 of the collection) gets a wild object index.
        bytes = full
        let descriptor = try find([15, 0, 0, 0] + [UInt8(heap & 0xFF), UInt8(heap >> 8), 0, 0, 0, 0, 0, 0] + [22, 0, 0, 0])
        bytes[descriptor + 14] = 0x7F
        text = String(describing: try XCTUnwrap(try loadError(bytes)))
        XCTAssertTrue(text.contains("'weight_names' of 'stem_bn'") && text.contains("damaged global heap object"), text)
    }

    func testCorruptedFilesNeverCrash() throws {
        // Byte flips anywhere (the tiny files are mostly metadata: superblock, object headers, B-trees,
        // heaps). Each load must load or throw; values may change, the process may not die. A longer
        // run of the same kind (64,000 loads, 1-4 flips each) crashed libhdf5 1.10 only in its global
        // heap reads before HDF5Guards.swift, and not at all after.
        for fixture in ["tiny_keras2.h5", "tiny_keras3.weights.h5", "tiny_keras_legacy.h5"] {
            let full = try FormatFixtures.bytes(fixture)
            var random = SplitMix64(seed: 7)
            for _ in 0..<150 {
                var bytes = full
                let i = random.below(full.count)
                bytes[i] ^= UInt8(1 << random.below(8))
                _ = try loadError(bytes, name: "flipped.h5")
            }
        }
    }
}
