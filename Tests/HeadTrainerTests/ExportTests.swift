import Foundation
@testable import HeadTrainerCore
import WeightFormats
import XCTest

/// `train-head export --format safetensors`: the exported tensors, applied by PyTorch with README's
/// snippet (tools/goldens/export_head.py, fixture in Fixtures/export), give `extract predict`'s
/// probabilities (the head's calibrated predict) on the same stored features.
final class ExportTests: XCTestCase {
    func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/export")!
    }

    func testSafetensorsExportIsDeterministicAndPyTorchReproducesPredict() throws {
        let head = try TrainedHead(encoded: try Data(contentsOf: fixture("head.bin")))
        let exported = ExportedHead(head)
        // The same bytes as the file the fixture's PyTorch side read (export is deterministic).
        XCTAssertEqual(try Safetensors.encode(exported.tensors, metadata: ["format": "pt"]), try Data(contentsOf: fixture("head.safetensors")))
        // Our own reader reads it back: names, shapes, values (Linear weights transposed to [out, in]).
        let sd = try Safetensors.load(fixture("head.safetensors"))
        XCTAssertEqual(Set(sd.tensors.keys), Set(exported.tensors.map(\.name)))
        let hidden = try XCTUnwrap(head.weights.hidden)
        XCTAssertEqual(try sd.tensor("hidden.weight").shape, [hidden.outputs, hidden.inputs])
        XCTAssertEqual(try sd.tensor("hidden.weight").values[1 * hidden.inputs + 2], hidden.kernel[2 * hidden.outputs + 1])
        XCTAssertEqual(exported.layers.map(\.name), ["bn1", "hidden", "relu", "bn2", "out", "softmax"])

        struct Expected: Decodable { let probabilities: [[Float]] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixture("expected.json"))).probabilities
        let features = try Safetensors.load(fixture("features.safetensors")).tensor("features").values
        let ours = head.calibrated(try head.predict(features: features))
        let k = head.classCount
        XCTAssertEqual(ours.count, expected.count * k)
        for (r, row) in expected.enumerated() {
            for c in 0..<k { XCTAssertEqual(ours[r * k + c], row[c], accuracy: 1e-5, "row \(r) class \(c)") }
        }
    }
}
