import COpenBLAS
import FineTuneCore
import Foundation

/// The blocks of a backbone below the head, for `train-head --unfreeze M` on a cache of N >= M
/// blocks: `frozen` (the first N - M cached blocks, nil when M = N) runs once over every cached input;
/// `trained` (the last M blocks + the head convolution and pool) trains with the head.
public struct FineTuneBlocks: Sendable {
    public var frozen: FineTuneNetwork?
    public var trained: FineTuneNetwork
    /// Tensors of both, by name (PyTorch state-dict names, as the store keeps them).
    public var tensors: [String: [Float]]
    public var blockLearningRate: Double
    public var batchNorm: BatchNormMode

    public init(frozen: FineTuneNetwork?, trained: FineTuneNetwork, tensors: [String: [Float]],
                blockLearningRate: Double, batchNorm: BatchNormMode) {
        self.frozen = frozen; self.trained = trained; self.tensors = tensors
        self.blockLearningRate = blockLearningRate; self.batchNorm = batchNorm
    }

    /// The tensors `network` uses.
    func tensors(of network: FineTuneNetwork) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for s in network.requiredTensors() { out[s.name] = tensors[s.name] }
        return out
    }
}

/// A fine-tuned head: the head on the trained blocks' features, those blocks' tensors, and the
/// frozen head it started from.
public struct FineTuneResult: Sendable {
    /// The head (on the fine-tuned features), its curves (epoch 0 = the frozen head) and metrics.
    public var training: TrainingResult
    /// Tensors of `FineTuneBlocks.trained` at the best epoch.
    public var blockTensors: [String: [Float]]
    /// The head fitted first on the frozen blocks' features (fastai's `fine_tune`: head first, then
    /// unfreeze), with its metrics: the baseline the fine-tuned head is compared with.
    public var frozenHead: TrainingResult
}

/// `fineTuneHead` on block inputs held in memory (they are moved to a temporary file first).
public func fineTuneHead(config: HeadConfig, blocks: FineTuneBlocks, train: LabeledFeatures, test: LabeledFeatures?,
                         options: TrainingOptions = TrainingOptions()) throws -> FineTuneResult {
    try fineTuneHead(config: config, blocks: blocks, train: try BlockInputs(train), test: try test.map { try BlockInputs($0) },
                     options: options)
}

/// Fits a head together with the last blocks of the backbone on cached block inputs.
///
/// `train` and `test` hold block inputs (NCHW, `blocks.frozen?.input` or `blocks.trained.input`
/// wide) with their labels, images and copies; the inputs stay in their file and each step reads
/// its batch (memory holds the pooled features, not the inputs). Like fastai's `fine_tune`:
/// 1. the frozen part (if any) runs once over every input;
/// 2. a head is fitted with `trainHead` on the features of the blocks as they are (frozen);
/// 3. the blocks and that head train together with Adam (head `config.lr`, blocks
///    `blocks.blockLearningRate`), early stopping on the validation loss from the frozen head's
///    loss: epoch 0 is the frozen head, kept if no epoch improves on it.
/// The head's settings (hidden, dropout, L2, batch norm, batch size, class weights, augmented copies,
/// validation split, seed) keep their meaning; `solver` must be Adam.
public func fineTuneHead(config: HeadConfig, blocks: FineTuneBlocks, train: BlockInputs, test: BlockInputs?,
                         options: TrainingOptions = TrainingOptions()) throws -> FineTuneResult {
    try config.validate()
    guard config.effectiveSolver == .adam else {
        throw HeadTrainerError.invalidConfig(field: "solver", value: config.effectiveSolver.rawValue,
                                             expected: "adam when unfreezing blocks (give hidden > 0 or solver: adam)")
    }
    if config.tta > 0 || config.pseudoLabel || config.labeledFraction < 1 {
        throw HeadTrainerError.invalidConfig(field: "unfreeze", value: "\(config.unfreeze)",
                                             expected: "0 with tta, pseudo_label or labeled_fraction (fine-tuning uses neither yet)")
    }
    guard blocks.blockLearningRate > 0, blocks.blockLearningRate.isFinite else {
        throw HeadTrainerError.invalidConfig(field: "block_lr", value: "\(blocks.blockLearningRate)", expected: "a finite value > 0")
    }
    let threads = options.threads ?? ProcessInfo.processInfo.activeProcessorCount
    var tuneOptions = FineTuneOptions()
    tuneOptions.threads = threads
    tuneOptions.batchNorm = blocks.batchNorm
    tuneOptions.learningRate = Float(config.lr)
    tuneOptions.blockLearningRate = Float(blocks.blockLearningRate)

    // 1. The frozen blocks, once.
    var train = train, test = test
    if let frozen = blocks.frozen {
        let runner = try FineTuner(network: frozen, head: nil, tensors: blocks.tensors(of: frozen), options: tuneOptions)
        train = try runFrozenBlocks(runner, on: train, split: "train")
        test = try test.map { try runFrozenBlocks(runner, on: $0, split: "test") }
    }
    guard train.dim == blocks.trained.input.count else {
        throw HeadTrainerError.incompatible(what: "fine-tuning", detail: "the cached inputs have \(train.dim) values, the blocks take \(blocks.trained.input.count) (\(blocks.trained.input)); the cache and its block definition disagree: re-run extract --cache-blocks")
    }

    // 2. The head on the blocks' features as they are.
    let tuner = try FineTuner(network: blocks.trained, head: nil, tensors: blocks.tensors(of: blocks.trained), options: tuneOptions)
    var headOptions = options
    headOptions.onEpoch = nil   // progress is reported for the joint epochs
    let frozenHead = try trainHead(config: config, train: try runBlocks(tuner, on: train, split: "train"),
                                   test: try test.map { try runBlocks(tuner, on: $0, split: "test") }, options: headOptions)

    // 3. Blocks and head together.
    let split = try TrainValidationSplit.make(train.rows, valSplit: config.valSplit, augmented: config.augmented, seed: config.seed)
    let validation = split.validationRows.isEmpty ? nil : train.subset(split.validationRows)
    let blas = BLASThreadsGuard()
    defer { blas.restore() }
    let net = HeadNetwork(config: config, weights: frozenHead.head.weights, maxBatch: config.batchSize, threads: options.threads)
    net.classWeight = frozenHead.classWeights.map { Float($0) }
    var shuffleRNG = HeadRNG(seed: config.seed, stream: RNGStream.shuffle)
    var order = split.trainRows
    var stopper = EarlyStopping(patience: config.patience)
    if let v = frozenHead.curves.epochs.first(where: { $0.epoch == frozenHead.bestEpoch })?.validationLoss {
        stopper.best = v   // epoch 0: the frozen head
    }
    var best: (head: HeadWeights, blocks: [String: [Float]])? = nil
    var records: [EpochRecord] = []
    let d = train.dim, f = blocks.trained.outputChannels
    let inputs = UnsafeMutablePointer<Float>.allocate(capacity: config.batchSize * d)
    let featureGradient = UnsafeMutablePointer<Float>.allocate(capacity: config.batchSize * f)
    var batchLabels = [Int32](repeating: 0, count: config.batchSize)
    let identity = Array(0..<config.batchSize)
    defer { inputs.deallocate(); featureGradient.deallocate() }
    let start = monotonicSeconds()
    do {
        for epoch in 1...config.epochs {
            let t0 = monotonicSeconds()
            shuffleRNG.shuffle(&order)
            var lossSum = 0.0, correct = 0
            var lo = 0
            // HOT: one step = blocks forward, head step (with d loss / d features), blocks backward, Adam.
            while lo < order.count {
                let hi = min(order.count, lo + config.batchSize), b = hi - lo
                for i in 0..<b {
                    try train.read(order[lo + i], into: inputs + i * d)
                    batchLabels[i] = train.rows.labels[order[lo + i]]
                }
                let features = tuner.trainingFeatures(inputs, batch: b)
                openblas_set_num_threads(1)   // the head's GEMMs run inside its own worker pool
                let r = batchLabels.withUnsafeBufferPointer { ys in
                    identity.withUnsafeBufferPointer { rows in
                        net.trainStep(data: features, labels: ys.baseAddress!, rows: UnsafeBufferPointer(rebasing: rows[0..<b]),
                                      inputGradient: featureGradient)
                    }
                }
                if !r.weightedLossSum.isFinite {
                    let layer = tuner.firstNonFiniteLayer(batch: b) ?? "the head"
                    throw HeadTrainerError.nonFiniteLoss(epoch: epoch, layer: layer)
                }
                tuner.backward(featureGradient: featureGradient, batch: b)
                tuner.adamStep()
                lossSum += r.weightedLossSum + r.penalty * Double(b)
                correct += r.correct
                lo = hi
            }
            let rec = net.epochRecord(epoch, lossSum: lossSum, correct: correct, rows: order.count,
                                      validation: try validation.map { try runBlocks(tuner, on: $0, split: "validation") }, started: t0)
            records.append(rec)
            options.onEpoch?(rec)
            if let vloss = rec.validationLoss, config.patience > 0 {
                let (improved, stop) = stopper.update(epoch: epoch, loss: vloss)
                if improved { best = (net.weights(), tuner.tensors()) }
                if stop { break }
            }
        }
    }
    let seconds = monotonicSeconds() - start
    let keptHead: HeadWeights, keptBlocks: [String: [Float]], bestEpoch: Int
    if config.patience > 0 && validation != nil {
        (keptHead, keptBlocks) = best ?? (frozenHead.head.weights, blocks.tensors(of: blocks.trained))
        bestEpoch = best == nil ? 0 : stopper.bestEpoch
    } else {
        (keptHead, keptBlocks, bestEpoch) = (net.weights(), tuner.tensors(), records.count)
    }

    // Metrics of the kept blocks + head, as `trainHead` scores (train copy 0, validation, test copy 0),
    // and the head's temperature fitted on validation.
    let final = try FineTuner(network: blocks.trained, head: nil, tensors: keptBlocks, options: tuneOptions)
    var head = try TrainedHead(config: config, classNames: train.rows.classNames, weights: keptHead)
    func features(_ data: BlockInputs, _ name: String) throws -> LabeledFeatures { try runBlocks(final, on: data, split: name) }
    let metrics = try score(&head, train: try features(train.subset(scoredTrainRowIndices(train.rows, split)), "train"),
                            validation: try validation.map { try features($0, "validation") },
                            test: try test.map { try features($0.subset(try originalRowIndices($0.rows)), "test") }, threads: options.threads)
    let result = TrainingResult(head: head, bestEpoch: bestEpoch, epochsRun: records.count,
                                curves: TrainingCurves(epochs: records, bestEpoch: bestEpoch), metrics: metrics,
                                trainRows: split.trainRows.count, validationRows: split.validationRows.count,
                                validationImageIDs: split.validationImages, classWeights: frozenHead.classWeights,
                                trainingSeconds: seconds, secondsPerEpoch: seconds / Double(max(records.count, 1)))
    return FineTuneResult(training: result, blockTensors: keptBlocks, frozenHead: frozenHead)
}

/// `data` with its values replaced by the outputs of `runner` (inference), in batches of 64.
func runBlocks(_ runner: FineTuner, on data: LabeledFeatures, split: String) throws -> LabeledFeatures {
    try checkWidth(runner, data.dim, split: split)
    return LabeledFeatures(dim: runner.outputShape.count, values: try runner.outputs(rows: data.values), labels: data.labels,
                           imageIDs: data.imageIDs, augIndex: data.augIndex, classNames: data.classNames)
}

/// Probabilities of a fine-tuned head on cached-point inputs: the frozen blocks (with the cache's
/// tensors), the trained blocks (with the head's), then `head` (`extract predict` runs the same
/// blocks, `BlockInference`, with the head as `HeadInference`).
public func predictFineTuned(head: TrainedHead, frozen: FineTuneNetwork?, frozenTensors: [String: [Float]],
                             trained: FineTuneNetwork, trainedTensors: [String: [Float]],
                             inputs: [Float], threads: Int? = nil) throws -> [Float] {
    let blocks = try BlockInference(frozen: frozen, frozenTensors: frozenTensors, trained: trained, trainedTensors: trainedTensors,
                                     threads: threads)
    return try head.predict(features: try blocks.features(inputs), threads: threads)
}
