import Foundation
import WeightFormats
import XCTest

/// Reads the tiny torch.save fixtures and compares every value with what torch itself computed.
final class PyTorchCheckpointTests: XCTestCase {
    private func assertMatchesExpected(_ dict: StateDict, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try Fixtures.expected()
        XCTAssertEqual(dict.names, expected.map(\.name), "file order", file: file, line: line)
        for e in expected {
            let t = try dict.tensor(e.name)
            XCTAssertEqual(t.name, e.name, file: file, line: line)
            XCTAssertEqual(t.shape, e.shape, "shape of \(e.name)", file: file, line: line)
            XCTAssertEqual(t.sourceDType.rawValue, e.dtype, "dtype of \(e.name)", file: file, line: line)
            XCTAssertEqual(t.values.count, t.elementCount, file: file, line: line)
            XCTAssertEqual(t.values, e.values.map { Float($0) }, "values of \(e.name)", file: file, line: line)
        }
    }

    func testZipFormatMatchesTorch() throws {
        try assertMatchesExpected(try PyTorchCheckpoint.load(try Fixtures.url("tiny_zip")))
    }

    func testLegacyFormatMatchesTorch() throws {
        try assertMatchesExpected(try PyTorchCheckpoint.load(try Fixtures.url("tiny_legacy")))
    }

    func testForcedZip64WithRenamedFolder() throws {
        try assertMatchesExpected(try PyTorchCheckpoint.load(try Fixtures.url("tiny_zip64")))
    }

    func testBothSerializationsReadEqualValues() throws {
        let zip = try PyTorchCheckpoint.load(try Fixtures.url("tiny_zip"))
        let legacy = try PyTorchCheckpoint.load(try Fixtures.url("tiny_legacy"))
        XCTAssertEqual(zip.names, legacy.names)
        for name in zip.names {
            let a = try zip.tensor(name), b = try legacy.tensor(name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.sourceDType, b.sourceDType, name)
            XCTAssertEqual(a.values, b.values, name)
        }
    }

    func testViewsAndDTypes() throws {
        let dict = try PyTorchCheckpoint.load(try Fixtures.url("tiny_legacy"))
        // base = arange(12) * 0.5, one storage shared by all of these views.
        XCTAssertEqual(try dict.tensor("transposed").shape, [4, 3])
        XCTAssertEqual(try dict.tensor("transposed").values,
                       [0, 2, 4, 0.5, 2.5, 4.5, 1, 3, 5, 1.5, 3.5, 5.5])
        XCTAssertEqual(try dict.tensor("shared.a").values, [1, 1.5, 2, 2.5, 3, 3.5])
        XCTAssertEqual(try dict.tensor("shared.b").values, [3, 3.5, 4, 4.5, 5, 5.5])
        XCTAssertEqual(try dict.tensor("every_other").values, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try dict.tensor("expanded").values, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
        let count = try dict.tensor("1.num_batches_tracked")
        XCTAssertEqual(count.shape, [])
        XCTAssertEqual(count.values, [7])
        XCTAssertEqual(count.sourceDType, .int64)
        XCTAssertEqual(try dict.tensor("ids").values, [-3, -2, -1, 0, 1, 2])
        XCTAssertEqual(try dict.tensor("int32").values, [1, -2, 300000])
        XCTAssertEqual(try dict.tensor("int32").sourceDType, .int32)
        XCTAssertEqual(try dict.tensor("half").sourceDType, .float16)
        XCTAssertEqual(try dict.tensor("bf16").sourceDType, .bfloat16)
        XCTAssertEqual(try dict.tensor("double").sourceDType, .float64)
        XCTAssertEqual(try dict.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try dict.tensor("empty").values, [])
        XCTAssertEqual(try dict.tensor("1.running_mean").values, [0.25, -0.5])
    }

    func testWrappedCheckpointIsUnwrapped() throws {
        let dict = try PyTorchCheckpoint.load(try Fixtures.url("tiny_wrapped"))
        XCTAssertEqual(dict.names, ["0.weight", "0.bias", "fc.weight"])
        let reference = try PyTorchCheckpoint.load(try Fixtures.url("tiny_zip"))
        for name in dict.names {
            XCTAssertEqual(try dict.tensor(name).values, try reference.tensor(name).values)
        }
    }

    func testUnknownTensorNameNamesTensorAndFile() throws {
        let url = try Fixtures.url("tiny_zip")
        let dict = try PyTorchCheckpoint.load(url)
        XCTAssertThrowsError(try dict.tensor("_fc.weight")) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("'_fc.weight'"), text)
            XCTAssertTrue(text.contains(url.path), text)
        }
    }

    func testStrippingPrefixAndMutation() throws {
        var dict = try PyTorchCheckpoint.load(try Fixtures.url("tiny_wrapped"))
        dict.insert(WeightTensor(name: "module.extra", shape: [1], sourceDType: .float32, values: [4]))
        let stripped = try dict.strippingPrefix("module.")
        XCTAssertEqual(stripped.names, ["0.weight", "0.bias", "fc.weight", "extra"])
        XCTAssertEqual(dict.remove("module.extra")?.values, [4])
        XCTAssertEqual(dict.count, 3)
    }
}
