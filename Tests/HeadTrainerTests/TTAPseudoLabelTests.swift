import Foundation
@testable import HeadTrainerCore
import XCTest

/// Test-time augmentation over cached copies and self-training with pseudo-labels, on synthetic blobs.
final class TTAPseudoLabelTests: XCTestCase {
    func config(_ change: (inout HeadConfig) -> Void = { _ in }) -> HeadConfig {
        var c = HeadConfig { $0.hidden = 16; $0.lr = 3e-3; $0.epochs = 15; $0.patience = 4; $0.seed = 5 }
        change(&c)
        return c
    }

    /// The per-image mean over copies, computed independently (each copy's row on its own, summed in Double).
    func independentMean(_ head: TrainedHead, _ data: LabeledFeatures, image: Int64, copies: Int) throws -> [Double] {
        let rows = (0..<data.n).filter { data.imageIDs[$0] == image && data.augIndex[$0] <= copies }
        XCTAssertEqual(rows.count, copies + 1)
        var sum = [Double](repeating: 0, count: head.classCount)
        for r in rows {
            let p = try head.predict(features: Array(data.values[r * data.dim ..< (r + 1) * data.dim]))
            for c in sum.indices { sum[c] += Double(p[c]) }
        }
        return sum.map { $0 / Double(rows.count) }
    }

    func testTTAMeansEachImagesCopiesAndZeroCopiesIsThePlainScore() throws {
        let train = syntheticFeatures(spread: 0.9, seed: 1)
        let test = syntheticFeatures(imagesPerClass: 20, spread: 0.9, seed: 2, idOffset: 10_000)
        let plain = try trainHead(config: config(), train: train, test: test)
        XCTAssertNil(plain.metrics.tta)
        // K = 0: the mean of one softmax is that softmax; every metric is identical.
        let zero = try TTAGroups(test, copies: 0, split: "test")
        XCTAssertEqual(try zero.metrics(plain.head), plain.metrics.test)

        let tta = try trainHead(config: config { $0.tta = 2 }, train: train, test: test)
        // TTA changes scoring only: the same head, the same plain metrics.
        XCTAssertEqual(tta.head.weights, plain.head.weights)
        XCTAssertEqual(tta.metrics.test, plain.metrics.test)
        XCTAssertEqual(tta.metrics.validation, plain.metrics.validation)
        let t = try XCTUnwrap(tta.metrics.tta)
        XCTAssertEqual(t.copies, 2)
        XCTAssertEqual(t.test?.count, 60)
        XCTAssertEqual(t.validation?.count, plain.metrics.validation?.count)

        let groups = try TTAGroups(test, copies: 2, split: "test")
        let probs = try groups.probabilities(tta.head)
        for (i, id) in groups.imageIDs.enumerated() where i % 7 == 0 {
            let want = try independentMean(tta.head, test, image: id, copies: 2)
            for c in 0..<3 { XCTAssertEqual(Double(probs[i * 3 + c]), want[c], accuracy: 1e-6) }
        }
        XCTAssertEqual(try groups.metrics(tta.head), t.test)
    }

    func testTTABeyondTheStoredCopiesNamesTheExtractCommand() throws {
        let train = syntheticFeatures(seed: 1)
        let test = syntheticFeatures(imagesPerClass: 5, copies: 3, seed: 2, idOffset: 10_000)
        XCTAssertThrowsError(try trainHead(config: config { $0.tta = 3 }, train: train, test: test)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("extract --augment 3") && text.contains("copies 0, 1, 2"), text)
        }
    }

    func testLabeledFractionIsStratifiedSeededAndByImage() throws {
        let data = syntheticFeatures(classes: 3, imagesPerClass: 40, copies: 3, seed: 3)
        let (labeled, unlabeled) = try labeledRows(data, fraction: 0.1, seed: 9)
        XCTAssertEqual(Set(labeled).union(unlabeled), Set(0..<data.n))
        XCTAssertTrue(Set(labeled).isDisjoint(with: unlabeled))
        let labeledImages = Set(labeled.map { data.imageIDs[$0] })
        XCTAssertTrue(labeledImages.isDisjoint(with: Set(unlabeled.map { data.imageIDs[$0] })), "copies of an image stay together")
        for c in 0..<3 { XCTAssertEqual(labeled.filter { data.labels[$0] == c }.count, 4 * 3) }   // round(0.1 * 40) images x 3 copies
        XCTAssertEqual(try labeledRows(data, fraction: 0.1, seed: 9).labeled, labeled)
        XCTAssertNotEqual(try labeledRows(data, fraction: 0.1, seed: 10).labeled, labeled)
    }

    /// Round 1's pseudo-labels are exactly the unlabeled images the round-0 head (the same fit as
    /// `labeled_fraction` alone) gives a top probability >= the threshold, with their argmax.
    func testPseudoLabelRoundsMatchAnIndependentCount() throws {
        let train = syntheticFeatures(classes: 3, imagesPerClass: 60, copies: 3, spread: 1.0, seed: 4)
        let test = syntheticFeatures(imagesPerClass: 20, spread: 1.0, seed: 2, idOffset: 10_000)
        let base = config { $0.labeledFraction = 0.2; $0.tta = 1 }
        let round0 = try trainHead(config: base, train: train, test: test)
        let self2 = try trainHead(config: config { $0.labeledFraction = 0.2; $0.tta = 1; $0.pseudoLabel = true; $0.pseudoThreshold = 0.8; $0.rounds = 2 },
                                  train: train, test: test)
        let rounds = try XCTUnwrap(self2.metrics.pseudoLabelRounds)
        XCTAssertEqual(rounds.map(\.round), [0, 1, 2])
        XCTAssertEqual(rounds[0].testAccuracy, round0.metrics.test?.accuracy)
        XCTAssertEqual(rounds[0].pseudoLabels, 0)
        XCTAssertEqual(rounds[0].labeledImages, 36)   // round(0.2 * 60) per class
        XCTAssertEqual(rounds[0].unlabeledImages, 144)

        let (_, unlabeledIndex) = try labeledRows(train, fraction: 0.2, seed: base.seed)
        let groups = try TTAGroups(train.subset(unlabeledIndex), copies: 1, split: "unlabeled")
        let probs = try groups.probabilities(round0.head)
        var histogram = [0, 0, 0], correct = 0
        for i in groups.imageIDs.indices {
            let p = Array(probs[i * 3 ..< i * 3 + 3])
            let best = p.firstIndex(of: p.max()!)!
            guard p[best] >= 0.8 else { continue }
            histogram[best] += 1
            if Int32(best) == groups.labels[i] { correct += 1 }
        }
        XCTAssertEqual(rounds[1].classHistogram, histogram)
        XCTAssertEqual(rounds[1].pseudoLabels, histogram.reduce(0, +))
        XCTAssertGreaterThan(rounds[1].pseudoLabels, 0)
        XCTAssertEqual(try XCTUnwrap(rounds[1].pseudoLabelAccuracy), Double(correct) / Double(rounds[1].pseudoLabels), accuracy: 1e-12)
        // Validation stays the labeled images' held-out part in every round.
        XCTAssertEqual(self2.validationImageIDs, round0.validationImageIDs)
        XCTAssertEqual(self2.metrics.test?.accuracy, rounds[2].testAccuracy)
        // Fitted rows: the labeled training rows plus every copy of each pseudo-labeled image.
        XCTAssertEqual(self2.trainRows, round0.trainRows + 3 * rounds[2].pseudoLabels)
    }

    func testPseudoLabelWithoutUnlabeledImagesIsAClearError() throws {
        XCTAssertThrowsError(try trainHead(config: config { $0.pseudoLabel = true }, train: syntheticFeatures(seed: 1), test: nil)) { e in
            XCTAssertTrue("\(e)".contains("labeled_fraction"), "\(e)")
        }
    }

    /// New settings at their defaults leave the JSON (and so every sweep trial key) as it was.
    func testDefaultsKeepTheConfigJSON() throws {
        let json = String(decoding: try JSONEncoder().encode(HeadConfig()), as: UTF8.self)
        for key in ["tta", "pseudo_label", "threshold", "rounds", "labeled_fraction"] {
            XCTAssertFalse(json.contains("\"\(key)\""), json)
        }
        let changed = String(decoding: try JSONEncoder().encode(config { $0.tta = 2; $0.labeledFraction = 0.1 }), as: UTF8.self)
        XCTAssertTrue(changed.contains("\"tta\":2") && changed.contains("\"labeled_fraction\":0.1"), changed)
    }
}
