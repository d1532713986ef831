/// Which rows of the training features are used for fitting and which for validation.
///
/// Validation is drawn per *image*, stratified by class: all augmented copies of an image land on
/// the same side, so augmented copies of a validation image never leak into training. Training
/// uses copies 0...augmented of the training images; validation uses copy 0 only.
public struct TrainValidationSplit: Sendable, Equatable {
    /// Row indices into the training `LabeledFeatures` used for fitting (sorted).
    public var trainRows: [Int]
    /// Row indices used for validation (copy 0 of held-out images, sorted).
    public var validationRows: [Int]
    /// Held-out image ids (sorted).
    public var validationImages: [Int64]

    /// Deterministic for a given seed: images of each class are ordered by id, shuffled with the
    /// split stream, and the first round(valSplit * count) go to validation (at least one when a
    /// class has two or more images and valSplit > 0; never all images of a class).
    public static func make(_ data: LabeledFeatures, valSplit: Double, augmented: Int?, seed: UInt64,
                            split: String = "train") throws -> TrainValidationSplit {
        // Image -> label, checking that copies agree.
        var imageLabel: [Int64: Int32] = [:]
        for r in 0..<data.n {
            let id = data.imageIDs[r], y = data.labels[r]
            if let prev = imageLabel[id] {
                if prev != y { throw HeadTrainerError.inconsistentImageLabel(split: split, imageID: id, first: prev, second: y) }
            } else {
                imageLabel[id] = y
            }
        }
        var perClass = [[Int64]](repeating: [], count: data.classCount)
        for (id, y) in imageLabel { perClass[Int(y)].append(id) }
        var rng = HeadRNG(seed: seed, stream: RNGStream.split)
        var held = Set<Int64>()
        for c in 0..<perClass.count {
            var ids = perClass[c].sorted()
            rng.shuffle(&ids)
            guard valSplit > 0, ids.count >= 2 else { continue }
            var k = Int((valSplit * Double(ids.count)).rounded())
            k = min(max(k, 1), ids.count - 1)
            held.formUnion(ids.prefix(k))
        }
        let maxCopy = augmented.map { Int32(clamping: $0) } ?? Int32.max
        var trainRows: [Int] = [], valRows: [Int] = []
        for r in 0..<data.n {
            if held.contains(data.imageIDs[r]) {
                if data.augIndex[r] == 0 { valRows.append(r) }
            } else if data.augIndex[r] <= maxCopy {
                trainRows.append(r)
            }
        }
        if trainRows.isEmpty {
            throw HeadTrainerError.emptySplit(split: split, reason: "no training rows with augmentation copy <= \(maxCopy) remain after holding out validation images")
        }
        if valSplit > 0 && valRows.isEmpty {
            throw HeadTrainerError.emptySplit(split: "validation", reason: "valSplit = \(valSplit) held out no image with an original (copy 0) row; add images or set val_split to 0")
        }
        return TrainValidationSplit(trainRows: trainRows, validationRows: valRows, validationImages: held.sorted())
    }
}
