import Foundation
import WeightFormats
import XCTest

/// `StateDict.validate` reports every missing, unexpected and misshaped tensor in one error.
final class ValidationTests: XCTestCase {
    private func load() throws -> StateDict {
        try PyTorchCheckpoint.load(try Fixtures.url("tiny_wrapped"))   // 0.weight, 0.bias, fc.weight
    }

    func testMatchingShapesPass() throws {
        try load().validate(expected: ["0.weight": [2, 3, 2, 2], "0.bias": [2], "fc.weight": [3, 4]])
    }

    func testAllProblemsReportedTogether() throws {
        let dict = try load()
        XCTAssertThrowsError(try dict.validate(expected: ["0.weight": [2, 3, 3, 3], "0.bias": [2],
                                                          "head.weight": [10, 4]])) { error in
            guard case WeightFileError.validationFailed(let file, let problems) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(file, dict.file)
            XCTAssertEqual(problems, [
                .wrongShape(name: "0.weight", expected: [2, 3, 3, 3], actual: [2, 3, 2, 2]),
                .missing(name: "head.weight", expected: [10, 4]),
                .unexpected(name: "fc.weight", actual: [3, 4]),
            ])
            let text = String(describing: error)
            for needle in [dict.file.path, "3 problems", "'0.weight' has shape [2, 3, 2, 2], expected [2, 3, 3, 3]",
                           "missing tensor 'head.weight'", "unexpected tensor 'fc.weight'"] {
                XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)")
            }
        }
    }

    func testIgnoringSkipsNamesOnBothSides() throws {
        let dict = try load()
        try dict.validate(expected: ["0.weight": [2, 3, 2, 2], "0.bias": [2], "num_batches_tracked": []],
                          ignoring: { $0.hasPrefix("fc.") || $0.hasSuffix("num_batches_tracked") })
    }
}
