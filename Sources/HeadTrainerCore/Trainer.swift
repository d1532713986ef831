import Foundation

/// Knobs that do not change the fitted model's definition (so they are not part of `HeadConfig`).
public struct TrainingOptions {
    /// Worker threads; nil uses every core. Results are identical for any value (fixed work chunks).
    public var threads: Int?
    /// Called after every epoch (e.g. to print progress).
    public var onEpoch: ((EpochRecord) -> Void)?

    public init(threads: Int? = nil, onEpoch: ((EpochRecord) -> Void)? = nil) {
        self.threads = threads; self.onEpoch = onEpoch
    }
}

/// Everything a training run produced.
public struct TrainingResult: Codable, Sendable {
    /// The head with the best epoch's weights restored.
    public var head: TrainedHead
    /// 1-based epoch whose weights were kept (the last one when there is no validation split).
    public var bestEpoch: Int
    public var epochsRun: Int
    public var curves: TrainingCurves
    public var metrics: SplitMetrics
    /// Rows used for fitting (all copies 0...augmented of training images) and validating (copy 0).
    public var trainRows: Int
    public var validationRows: Int
    /// Image ids held out for validation (disjoint from the fitted images).
    public var validationImageIDs: [Int64]
    /// Per-class loss weights used (all 1 without class weighting).
    public var classWeights: [Double]
    /// Wall time of the fitting loop, and per epoch.
    public var trainingSeconds: Double
    public var secondsPerEpoch: Double

    enum CodingKeys: String, CodingKey {
        case head, curves, metrics
        case bestEpoch = "best_epoch", epochsRun = "epochs_run", trainRows = "train_rows", validationRows = "validation_rows"
        case validationImageIDs = "validation_image_ids", classWeights = "class_weights"
        case trainingSeconds = "training_seconds", secondsPerEpoch = "seconds_per_epoch"
    }
}

/// Fits a softmax head on `train` and scores it on train (copy 0), validation and `test` (copy 0).
///
/// Validation images are drawn from `train` (stratified by class, grouped by image id); training
/// uses copies 0...`config.augmented` of the remaining images. Early stopping watches the validation
/// loss and restores the best epoch's weights (Keras EarlyStopping(restore_best_weights=True)).
/// `unlabeled` (labels ignored; -1 when unknown) joins the images `pseudo_label` labels.
public func trainHead(config: HeadConfig, train: LabeledFeatures, test: LabeledFeatures?, unlabeled: LabeledFeatures? = nil,
                      options: TrainingOptions = TrainingOptions()) throws -> TrainingResult {
    try config.validate()
    try train.validate(split: "train")
    if let test {
        try test.validate(split: "test")
        guard test.dim == train.dim else {
            throw HeadTrainerError.incompatible(what: "train/test", detail: "train features are \(train.dim)-wide but test features are \(test.dim)-wide; extract both with the same backbone")
        }
        guard test.classNames == train.classNames else {
            throw HeadTrainerError.incompatible(what: "train/test", detail: "class names differ (\(train.classNames) vs \(test.classNames)); both splits must use the same class list")
        }
    }
    if let unlabeled, unlabeled.n > 0, unlabeled.dim != train.dim || unlabeled.classNames != train.classNames {
        throw HeadTrainerError.incompatible(what: "train/unlabeled", detail: "unlabeled features are \(unlabeled.dim)-wide for classes \(unlabeled.classNames), "
                                            + "train features \(train.dim)-wide for \(train.classNames); extract both in one extraction")
    }
    if config.pseudoLabel || config.labeledFraction < 1 {
        return try selfTrain(config: config, train: train, test: test, unlabeled: unlabeled, options: options)
    }
    let split = try TrainValidationSplit.make(train, valSplit: config.valSplit, augmented: config.augmented, seed: config.seed)
    return try fitAndScore(config: config, train: train, split: split, test: test, options: options)
}

/// Fits on `split.trainRows` of `train`, validates on `split.validationRows`, and scores train (copy 0),
/// validation and `test` (copy 0; with `config.tta`, also the mean over copies 0...tta).
func fitAndScore(config: HeadConfig, train: LabeledFeatures, split: TrainValidationSplit, test: LabeledFeatures?,
                 options: TrainingOptions) throws -> TrainingResult {
    var counts = [Int](repeating: 0, count: train.classCount)
    for r in split.trainRows { counts[Int(train.labels[r])] += 1 }
    let present = counts.indices.filter { counts[$0] > 0 }
    if present.count < 2 { throw HeadTrainerError.singleClass(split: "train", classIndex: present.first) }
    let classWeights: [Double] = config.classWeights == .balanced
        ? counts.map { $0 > 0 ? Double(split.trainRows.count) / (Double(present.count) * Double($0)) : 0 }
        : [Double](repeating: 1, count: train.classCount)

    let validation = split.validationRows.isEmpty ? nil : train.subset(split.validationRows)
    // Copies 0...tta of the validation and test images, grouped before fitting so a missing copy fails fast.
    let held = Set(split.validationImages)
    let ttaValidation = try config.tta == 0 || held.isEmpty ? nil : TTAGroups(
        train.subset((0..<train.n).filter { held.contains(train.imageIDs[$0]) }), copies: config.tta, split: "validation")
    let ttaTest = try config.tta == 0 ? nil : test.map { try TTAGroups($0, copies: config.tta, split: "test") }
    let blas = BLASThreadsGuard()
    defer { blas.restore() }

    let fit: FitOutcome
    switch config.effectiveSolver {
    case .lbfgs:
        fit = try fitLinearLBFGS(config: config, train: train, rows: split.trainRows, validation: validation,
                                 classWeights: classWeights, options: options)
    default:
        fit = fitAdam(config: config, train: train, rows: split.trainRows, validation: validation,
                      classWeights: classWeights, options: options)
    }

    var head = try TrainedHead(config: config, classNames: train.classNames, weights: fit.weights)
    var metrics = try score(&head, train: scoredTrainRows(train, split), validation: validation,
                            test: try test.map(originals), threads: options.threads)
    if config.tta > 0 {
        metrics.tta = TTAMetrics(copies: config.tta, validation: try ttaValidation?.metrics(head, threads: options.threads),
                                 test: try ttaTest?.metrics(head, threads: options.threads))
    }
    return TrainingResult(head: head, bestEpoch: fit.bestEpoch, epochsRun: fit.records.count,
                          curves: TrainingCurves(epochs: fit.records, bestEpoch: fit.bestEpoch), metrics: metrics,
                          trainRows: split.trainRows.count, validationRows: split.validationRows.count,
                          validationImageIDs: split.validationImages, classWeights: classWeights,
                          trainingSeconds: fit.seconds, secondsPerEpoch: fit.seconds / Double(max(fit.records.count, 1)))
}

/// The training rows a fit is scored on: copy 0 of the fitted images (all fitted rows if none is copy 0).
func scoredTrainRows(_ train: LabeledFeatures, _ split: TrainValidationSplit) -> LabeledFeatures {
    train.subset(scoredTrainRowIndices(train, split))
}

/// The rows of `scoredTrainRows`.
func scoredTrainRowIndices(_ train: LabeledFeatures, _ split: TrainValidationSplit) -> [Int] {
    let originals = split.trainRows.filter { train.augIndex[$0] == 0 }
    return originals.isEmpty ? split.trainRows : originals
}

/// Copy 0 of each test image; a test split without any is an error.
func originals(_ test: LabeledFeatures) throws -> LabeledFeatures {
    test.subset(try originalRowIndices(test))
}

/// The rows of `originals`.
func originalRowIndices(_ test: LabeledFeatures) throws -> [Int] {
    let rows = (0..<test.n).filter { test.augIndex[$0] == 0 }
    if rows.isEmpty { throw HeadTrainerError.emptySplit(split: "test", reason: "no original (copy 0) rows; extract the test images without augmentation") }
    return rows
}

/// Metrics of `head` on train, validation and test as every fit reports them, and the temperature
/// fitted on validation (stored in `head`).
func score(_ head: inout TrainedHead, train: LabeledFeatures, validation: LabeledFeatures?, test: LabeledFeatures?,
           threads: Int?) throws -> SplitMetrics {
    func metrics(_ d: LabeledFeatures) throws -> ClassificationMetrics { try head.evaluate(d, threads: threads) }
    var result = SplitMetrics(train: try metrics(train), validation: try validation.map(metrics), test: try test.map(metrics))
    if let validation {
        result.calibration = try SplitCalibration.fit(head: &head, validation: validation, test: test, threads: threads)
    }
    return result
}

extension HeadNetwork {
    /// The record of a training epoch: loss and accuracy over its `rows` fitted rows and, with
    /// `validation`, the inference-mode validation loss (plus the L2 term: what early stopping
    /// watches) and accuracy.
    func epochRecord(_ epoch: Int, lossSum: Double, correct: Int, rows: Int, validation v: LabeledFeatures?,
                     started t0: Double) -> EpochRecord {
        var rec = EpochRecord(epoch: epoch, trainLoss: lossSum / Double(rows), trainAccuracy: Double(correct) / Double(rows),
                              validationLoss: nil, validationAccuracy: nil, seconds: 0)
        if let v {
            let (vl, vc) = v.values.withUnsafeBufferPointer { vx in
                v.labels.withUnsafeBufferPointer { vy in evaluate(data: vx.baseAddress!, n: v.n, labels: vy.baseAddress!, probsOut: nil) }
            }
            rec.validationLoss = vl / Double(v.n) + l2Penalty()
            rec.validationAccuracy = Double(vc) / Double(v.n)
        }
        rec.seconds = monotonicSeconds() - t0
        return rec
    }
}

struct FitOutcome {
    var weights: HeadWeights
    var bestEpoch: Int
    var records: [EpochRecord]
    var seconds: Double
}

func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Tracks the best validation loss (Keras EarlyStopping, min_delta 0, restore_best_weights).
struct EarlyStopping {
    let patience: Int
    var best = Double.infinity
    var bestEpoch = 0
    var wait = 0
    /// Returns (improved, stop).
    mutating func update(epoch: Int, loss: Double) -> (improved: Bool, stop: Bool) {
        if loss < best { best = loss; bestEpoch = epoch; wait = 0; return (true, false) }
        wait += 1
        return (false, patience > 0 && wait >= patience)
    }
}

/// Minibatch Adam: the Keras-equivalent path, used for every head with `solver: adam`.
func fitAdam(config: HeadConfig, train: LabeledFeatures, rows: [Int], validation: LabeledFeatures?,
             classWeights: [Double], options: TrainingOptions) -> FitOutcome {
    var initRNG = HeadRNG(seed: config.seed, stream: RNGStream.initialization)
    let initial = HeadWeights.initial(config: config, inputs: train.dim, classes: train.classCount, rng: &initRNG)
    let net = HeadNetwork(config: config, weights: initial, maxBatch: config.batchSize, threads: options.threads)
    net.classWeight = classWeights.map { Float($0) }
    var shuffleRNG = HeadRNG(seed: config.seed, stream: RNGStream.shuffle)
    var order = rows
    var stopper = EarlyStopping(patience: config.patience)
    var best: HeadWeights? = nil
    var records: [EpochRecord] = []
    let start = monotonicSeconds()
    train.values.withUnsafeBufferPointer { xs in
        train.labels.withUnsafeBufferPointer { ys in
            for epoch in 1...config.epochs {
                let t0 = monotonicSeconds()
                shuffleRNG.shuffle(&order)
                var lossSum = 0.0, correct = 0
                order.withUnsafeBufferPointer { ord in
                    // HOT: the step loop. Everything inside trainStep reuses preallocated buffers.
                    var lo = 0
                    while lo < ord.count {
                        let hi = min(ord.count, lo + config.batchSize)
                        let r = net.trainStep(data: xs.baseAddress!, labels: ys.baseAddress!,
                                              rows: UnsafeBufferPointer(rebasing: ord[lo..<hi]))
                        lossSum += r.weightedLossSum + r.penalty * Double(hi - lo)
                        correct += r.correct
                        lo = hi
                    }
                }
                let rec = net.epochRecord(epoch, lossSum: lossSum, correct: correct, rows: order.count, validation: validation, started: t0)
                records.append(rec)
                options.onEpoch?(rec)
                if let vloss = rec.validationLoss, config.patience > 0 {
                    let (improved, stop) = stopper.update(epoch: epoch, loss: vloss)
                    if improved { best = net.weights() }
                    if stop { break }
                }
            }
        }
    }
    let seconds = monotonicSeconds() - start
    if let best { return FitOutcome(weights: best, bestEpoch: stopper.bestEpoch, records: records, seconds: seconds) }
    return FitOutcome(weights: net.weights(), bestEpoch: records.count, records: records, seconds: seconds)
}
