import Foundation
import HeadModel
@testable import HeadTrainerCore
import WeightFormats
import XCTest

/// `HeadModel`, what `extract predict` links instead of the trainer: the stored head read by the one
/// reader/writer, and inference with batch norm folded into the dense layers (OpenBLAS GEMMs),
/// checked against the trainer's own network (`TrainedHead.predict`, batch norm applied as a layer)
/// and against PyTorch (the export fixture).
final class HeadModelTests: XCTestCase {
    func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/export")!
    }

    /// A head with random weights and batch-norm statistics (variances in [0.2, 2.2]).
    func randomHead(inputs: Int, hidden: Int, classes: Int, batchnorm: Bool, temperature: Double?, seed: UInt64) throws -> TrainedHead {
        var rng = HeadRNG(seed: seed, stream: 5)
        func values(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] { (0..<n).map { _ in lo + (hi - lo) * rng.nextFloat() } }
        func dense(_ i: Int, _ o: Int) -> DenseWeights {
            DenseWeights(inputs: i, outputs: o, kernel: values(i * o, -0.5, 0.5), bias: values(o, -0.3, 0.3))
        }
        func bn(_ n: Int) -> BatchNormWeights? {
            batchnorm ? BatchNormWeights(gamma: values(n, 0.5, 1.5), beta: values(n, -0.5, 0.5), movingMean: values(n, -1, 1),
                                         movingVariance: values(n, 0.2, 2.2), epsilon: 1e-3) : nil
        }
        let weights = hidden > 0
            ? HeadWeights(inputBatchNorm: bn(inputs), hidden: dense(inputs, hidden), hiddenBatchNorm: bn(hidden), output: dense(hidden, classes))
            : HeadWeights(inputBatchNorm: bn(inputs), hidden: nil, hiddenBatchNorm: nil, output: dense(inputs, classes))
        let config = HeadConfig { $0.hidden = hidden; $0.batchnorm = batchnorm }
        return try TrainedHead(config: config, classNames: (0..<classes).map { "class \($0)" }, weights: weights, temperature: temperature)
    }

    func testFoldedInferenceMatchesTheTrainersNetwork() throws {
        let d = 24, n = 37
        var rng = HeadRNG(seed: 3, stream: 9)
        let features = (0..<(n * d)).map { _ in rng.nextFloat() * 4 - 2 }
        for hidden in [0, 16] {
            for batchnorm in [false, true] {
                for temperature in [nil, 0.7, 2.5] as [Double?] {
                    let head = try randomHead(inputs: d, hidden: hidden, classes: 5, batchnorm: batchnorm, temperature: temperature,
                                              seed: UInt64(hidden + (batchnorm ? 1 : 0)))
                    let stored = try StoredHead<UnreadConfig>(encoded: try head.encoded())
                    let model = HeadInference(stored.weights)
                    XCTAssertEqual(model.inputDim, d)
                    XCTAssertEqual(model.classCount, 5)
                    let expected = head.calibrated(try head.predict(features: features))
                    let ours = try model.probabilities(features: features, temperature: stored.temperature ?? 1)
                    XCTAssertEqual(ours.count, expected.count)
                    let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(worst, 1e-5, "hidden \(hidden), batchnorm \(batchnorm), temperature \(String(describing: temperature))")
                }
            }
        }
    }

    /// The PyTorch side of the export fixture (tools/goldens/export_head.py: BatchNorm1d, Linear,
    /// ReLU, softmax(logits / T) on the stored features) agrees with the folded inference.
    func testFoldedInferenceMatchesPyTorch() throws {
        let stored = try StoredHead<UnreadConfig>(encoded: try Data(contentsOf: fixture("head.bin")), source: "head.bin")
        XCTAssertNotNil(stored.weights.inputBatchNorm)
        XCTAssertNotNil(stored.weights.hiddenBatchNorm)
        struct Expected: Decodable { let probabilities: [[Float]] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixture("expected.json"))).probabilities
        let features = try Safetensors.load(fixture("features.safetensors")).tensor("features").values
        let ours = try HeadInference(stored.weights).probabilities(features: features, temperature: stored.temperature ?? 1)
        let k = stored.classCount
        XCTAssertEqual(ours.count, expected.count * k)
        for (r, row) in expected.enumerated() {
            for c in 0..<k { XCTAssertEqual(ours[r * k + c], row[c], accuracy: 1e-5, "row \(r) class \(c)") }
        }
    }

    func testStoredBlobRoundTripsByteIdentical() throws {
        let blob = try Data(contentsOf: fixture("head.bin"))
        let stored = try StoredHead<HeadConfig>(encoded: blob, source: "head.bin")
        XCTAssertEqual(try stored.encoded(), blob)
        let head = try TrainedHead(encoded: blob)
        XCTAssertEqual(try head.encoded(), blob)
        let unread = try StoredHead<UnreadConfig>(encoded: blob)
        XCTAssertEqual(unread.weights, head.weights)
        XCTAssertEqual(unread.classNames, head.classNames)
        XCTAssertEqual(unread.temperature, head.temperature)
        XCTAssertThrowsError(try unread.encoded(), "a head read without its configuration cannot be written back")
        for hidden in [0, 8] {
            let random = try randomHead(inputs: 6, hidden: hidden, classes: 3, batchnorm: true, temperature: 1.3, seed: 4)
            let bytes = try random.encoded()
            XCTAssertEqual(try StoredHead<HeadConfig>(encoded: bytes).encoded(), bytes)
            XCTAssertEqual(try TrainedHead(encoded: bytes), random)
        }
    }

    func testBadInputsGiveClearErrors() throws {
        let head = try randomHead(inputs: 4, hidden: 0, classes: 3, batchnorm: false, temperature: nil, seed: 1)
        let model = HeadInference(head.weights)
        XCTAssertThrowsError(try model.probabilities(features: [1, 2, 3])) { e in
            guard case HeadModelError.incompatible = e else { return XCTFail("\(e)") }
            XCTAssert("\(e)".contains("4-wide rows"), "\(e)")
        }
        XCTAssertThrowsError(try model.probabilities(features: [0, 0, 0, 0, 1, .nan, 0, 0])) { e in
            XCTAssertEqual(e as? HeadModelError, .nonFiniteFeature(row: 1, column: 1))
        }
        XCTAssertEqual(try model.probabilities(features: []), [])
        let blob = try head.encoded()
        XCTAssertThrowsError(try StoredHead<UnreadConfig>(encoded: blob.dropLast(4), source: "head 7 in x.sqlite")) { e in
            XCTAssertEqual(e as? HeadModelError, .corruptHead(source: "head 7 in x.sqlite", detail: "tensor output.bias runs past the end"))
            XCTAssert("\(e)".hasPrefix("head 7 in x.sqlite: not a valid serialized head"), "\(e)")
        }
        // The trainer keeps its own error type for the same failures.
        XCTAssertThrowsError(try TrainedHead(encoded: blob.dropLast(4))) { e in
            guard case HeadTrainerError.corruptHead = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try head.predict(features: [0, 0, 0, .infinity])) { e in
            XCTAssertEqual(e as? HeadTrainerError, .nonFiniteFeature(split: "predict", row: 0, column: 3, imageID: -1))
        }
    }
}
