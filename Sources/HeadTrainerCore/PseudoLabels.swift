import Foundation

/// One round of self-training: what the head of that round was fitted on and how it scored.
public struct PseudoLabelRound: Codable, Hashable, Sendable {
    /// 0: the labeled images only; 1...: labeled plus pseudo-labeled images.
    public var round: Int
    /// Labeled training images (validation images included).
    public var labeledImages: Int
    /// Unlabeled images offered (`labeled_fraction`'s and the store's) / pseudo-labeled and fitted on in this round.
    public var unlabeledImages: Int
    public var pseudoLabels: Int
    /// Pseudo-labels per class.
    public var classHistogram: [Int]
    /// Fraction of pseudo-labels equal to the image's true label, over those whose true label is known
    /// (`labeled_fraction`'s images; nil when there are none).
    public var pseudoLabelAccuracy: Double?
    public var validationAccuracy: Double?
    public var testAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case round, labeledImages = "labeled_images", unlabeledImages = "unlabeled_images", pseudoLabels = "pseudo_labels"
        case classHistogram = "class_histogram", pseudoLabelAccuracy = "pseudo_label_accuracy"
        case validationAccuracy = "validation_accuracy", testAccuracy = "test_accuracy"
    }

    /// One line for the text report.
    public var line: String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        return "round \(round): \(labeledImages) labeled + \(pseudoLabels) of \(unlabeledImages) unlabeled images (per class "
            + classHistogram.map(String.init).joined(separator: "/") + "), pseudo-label accuracy \(f(pseudoLabelAccuracy)), "
            + "validation accuracy \(f(validationAccuracy)), test accuracy \(f(testAccuracy))"
    }
}

/// The images whose labels `labeled_fraction` keeps: per class, round(fraction * images) of them
/// (at least one), drawn with the seed after ordering by id. Returns the labeled and unlabeled row indices.
func labeledRows(_ data: LabeledFeatures, fraction: Double, seed: UInt64) throws -> (labeled: [Int], unlabeled: [Int]) {
    var imageLabel: [Int64: Int32] = [:]
    for r in 0..<data.n {
        if let prev = imageLabel[data.imageIDs[r]], prev != data.labels[r] {
            throw HeadTrainerError.inconsistentImageLabel(split: "train", imageID: data.imageIDs[r], first: prev, second: data.labels[r])
        }
        imageLabel[data.imageIDs[r]] = data.labels[r]
    }
    var perClass = [[Int64]](repeating: [], count: data.classCount)
    for (id, y) in imageLabel { perClass[Int(y)].append(id) }
    var rng = HeadRNG(seed: seed, stream: RNGStream.labeledFraction)
    var kept = Set<Int64>()
    for var ids in perClass where !ids.isEmpty {
        ids.sort()
        rng.shuffle(&ids)
        kept.formUnion(ids.prefix(max(1, Int((fraction * Double(ids.count)).rounded()))))
    }
    let rows = Array(0..<data.n)
    return (rows.filter { kept.contains(data.imageIDs[$0]) }, rows.filter { !kept.contains(data.imageIDs[$0]) })
}

/// `labeled_fraction` and `pseudo_label`: fits on the labeled images (round 0), then for each round
/// labels the unlabeled images with the previous head (mean over copies 0...tta with `tta`), keeps those
/// whose top probability reaches `threshold`, and refits from scratch on the labeled rows plus
/// copies 0...augmented of the kept images. Validation (drawn once from the labeled images) and test
/// never change; each round's scores are in `metrics.pseudoLabelRounds`.
func selfTrain(config: HeadConfig, train: LabeledFeatures, test: LabeledFeatures?, unlabeled stored: LabeledFeatures?,
               options: TrainingOptions) throws -> TrainingResult {
    let (labeledIndex, unlabeledIndex) = try labeledRows(train, fraction: config.labeledFraction, seed: config.seed)
    var pool = train.subset(unlabeledIndex)
    if let stored, stored.n > 0 {
        pool = pool.appending(LabeledFeatures(dim: stored.dim, values: stored.values, labels: [Int32](repeating: -1, count: stored.n),
                                              imageIDs: stored.imageIDs, augIndex: stored.augIndex, classNames: stored.classNames))
    }
    if config.pseudoLabel && pool.n == 0 {
        throw HeadTrainerError.invalidConfig(field: "pseudo_label", value: "true",
                                             expected: "unlabeled training images: set labeled_fraction below 1, or store images without a class (`extract --unlabeled`)")
    }
    let labeled = train.subset(labeledIndex)
    let split = try TrainValidationSplit.make(labeled, valSplit: config.valSplit, augmented: config.augmented, seed: config.seed)
    var result = try fitAndScore(config: config, train: labeled, split: split, test: test, options: options)
    let unlabeled = config.pseudoLabel ? try TTAGroups(pool, copies: config.tta, split: "unlabeled") : nil
    func record(_ round: Int, _ r: TrainingResult, pseudo: [Int32] = [], truth: [Int32] = []) -> PseudoLabelRound {
        var histogram = [Int](repeating: 0, count: train.classCount)
        for y in pseudo { histogram[Int(y)] += 1 }
        let known = zip(pseudo, truth).filter { $0.1 >= 0 }
        let correct = known.filter { $0 == $1 }.count
        return PseudoLabelRound(round: round, labeledImages: Set(labeled.imageIDs).count, unlabeledImages: unlabeled?.imageIDs.count ?? 0,
                                pseudoLabels: pseudo.count, classHistogram: histogram,
                                pseudoLabelAccuracy: known.isEmpty ? nil : Double(correct) / Double(known.count),
                                validationAccuracy: r.metrics.validation?.accuracy, testAccuracy: r.metrics.test?.accuracy)
    }
    var rounds = [record(0, result)]
    if let unlabeled {
        let maxCopy = Int32(clamping: config.augmented ?? Int.max)
        for round in 1...config.rounds {
            let probs = try unlabeled.probabilities(result.head, threads: options.threads)
            let k = train.classCount
            var pseudo: [Int64: Int32] = [:]
            var kept: [Int32] = [], truth: [Int32] = []
            for (i, id) in unlabeled.imageIDs.enumerated() {
                let p = probs[i * k ..< (i + 1) * k]
                let best = p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }!   // first argmax
                guard p[best] >= Float(config.pseudoThreshold) else { continue }
                pseudo[id] = Int32(best - i * k)
                kept.append(Int32(best - i * k))
                truth.append(unlabeled.labels[i])
            }
            var extra = pool.subset((0..<pool.n).filter { pseudo[pool.imageIDs[$0]] != nil && pool.augIndex[$0] <= maxCopy })
            extra.labels = extra.imageIDs.map { pseudo[$0]! }
            let combined = labeled.appending(extra)
            var roundSplit = split
            roundSplit.trainRows += Array(labeled.n ..< combined.n)
            result = try fitAndScore(config: config, train: combined, split: roundSplit, test: test, options: options)
            rounds.append(record(round, result, pseudo: kept, truth: truth))
        }
    }
    result.metrics.pseudoLabelRounds = rounds
    return result
}

extension LabeledFeatures {
    /// These rows followed by `other`'s (same width and classes).
    func appending(_ other: LabeledFeatures) -> LabeledFeatures {
        LabeledFeatures(dim: dim, values: values + other.values, labels: labels + other.labels,
                        imageIDs: imageIDs + other.imageIDs, augIndex: augIndex + other.augIndex, classNames: classNames)
    }
}
