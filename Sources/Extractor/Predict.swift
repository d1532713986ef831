import ArgumentParser
import BackboneEngine
import Backbones
import FeatureStore
import FineTuneCore
import Foundation
import HeadModel
import Imaging
import StoredFineTune
import WorkbenchCLI

/// `extract predict --head ID IMAGE...`: the reason to train a head — backbone + head on new images.
/// A head on concatenated features runs each of its backbones and concatenates their outputs in
/// the order it was trained on.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify new images with a trained head: the head's backbone(s), preprocessing and geometry, then the head.")

    @Option(help: "Feature store holding the head.") var store = "features.sqlite"
    @Option(help: "Head id (printed by train-head; see `extract store info`).") var head: Int64
    @Option(help: "Use this weights file instead of the cached one (must be the one the head was trained on; heads of one backbone only).")
    var weights: String?
    @Option(help: "Classes to show per image.") var top = 3
    @Option(help: "Test-time augmentation: classify by the mean softmax over copies 0...K of each image, drawn with the extraction's augmentation policy and seed (as `extract --augment K` draws them).")
    var tta = 0
    @Flag(help: "Print a JSON array, one object per image.") var json = false
    @Flag(inversion: .prefixedNo, help: "Apply the head's temperature (fitted on its validation split) to the probabilities.")
    var calibration = true
    @Argument(help: "Image files.") var images: [String]

    /// One backbone of the head, set up as its extraction was.
    struct Part {
        let source: FeatureSource
        let extractor: FeatureExtractor
        let fit: Fit
        /// The output the head reads: the pooled features, or a fine-tuned head's block input.
        let output: String
        /// `--tta K`: the extraction's policy and seed.
        let copies: AugmentedCopies?

        /// One row per copy 0...K.
        func features(_ img: LoadedImage) throws -> [Float] { try extractor.run(img, fit: fit, copies: copies, output: output) }
    }

    func validate() throws {
        guard tta >= 0, tta <= 1000 else { throw ValidationError("--tta must be between 0 and 1000") }
    }

    func run() throws {
        EngineThreads.configure(nil)
        var entries: [RankedImage] = []
        try failing {
            guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("\(store) does not exist") }
            let db = try FeatureStore(path: store, mode: .readOnly)
            let record = try db.head(id: head)
            let extractions = try db.extractions(of: record)
            if weights != nil && extractions.count > 1 {
                throw ValidationError("head \(head) runs \(extractions.count) backbones (\(extractions.map(\.settings.backbone).joined(separator: "+"))); "
                                      + "--weights applies to heads of one backbone: leave it out to use the cached weights")
            }
            let trained = try StoredHead<UnreadConfig>(encoded: record.weights, source: "head \(head) in \(store)")
            let model = HeadInference(trained.weights)
            let temperature = calibration ? trained.temperature ?? 1 : 1
            // A fine-tuned head (one backbone): the backbone up to its block cache's input, then the blocks, then the head.
            let tuned = try FineTunedPath.load(db: db, head: head, extraction: extractions[0],
                                               spec: try FeatureSource(stored: extractions[0].settings.backbone).spec)
            let parts = try extractions.map { e in
                let s = e.settings
                let source = try FeatureSource(stored: s.backbone)
                let loaded = try source.load(weights: weights.map { URL(fileURLWithPath: $0) })
                guard loaded.weightsSHA256 == s.weightsSHA256 else {
                    throw ValidationError("head \(head) was trained on \(s.backbone) weights \(s.weightsSHA256.prefix(12))…, "
                                          + "but \(loaded.weightsFile.path) is \(loaded.weightsSHA256.prefix(12))…; pass the same weights with --weights")
                }
                var precision = Int8Calibration.precision(stored: s.precision) ?? .fp32
                var calibration = Int8Calibration(storedPrecision: s.precision)
                // An extraction made on a CPU with more than this one (bf16 kernels, VNNI): its features in fp32,
                // close to what it stored (scenes6, lowest cosine to fp32: bf16 0.9937, int8 0.9913; README).
                if let why = EngineISA.current.cannotRun(precision, weights: calibration?.weights ?? .full) {
                    FileHandle.standardError.write(Data("predict: extraction \(e.id) is \(precision.rawValue), but \(why); computing its features in fp32 instead\n".utf8))
                    (precision, calibration) = (.fp32, nil)
                }
                let ex = try FeatureExtractor(loaded, batch: tta + 1, size: s.imageSize, precision: precision, calibration: calibration,
                                              outputs: [tuned?.output ?? source.output])
                return Part(source: source, extractor: ex, fit: Fit(rawValue: s.fit) ?? .pad, output: tuned?.output ?? source.output,
                            copies: tta == 0 ? nil : try AugmentedCopies(storedPolicy: s.augmentationPolicy, seed: s.seed, count: tta))
            }
            entries = rankImages(images, labels: trained.classNames) { img in
                let rows = try parts.map { try $0.features(img) }
                let features: [Float]
                if let tuned {
                    features = try tuned.blocks.features(rows[0])
                } else {   // copy c of every part, side by side
                    let widths = rows.map { $0.count / (tta + 1) }
                    features = (0...tta).flatMap { c in rows.indices.flatMap { i in rows[i][(c * widths[i])..<((c + 1) * widths[i])] } }
                }
                let probs = meanProbabilities(try model.probabilities(features: features, temperature: temperature), classes: trained.classCount)
                return probs.enumerated().sorted { $0.element > $1.element }.prefix(top).map { ($0.offset, $0.element) }
            }
            try printRanked(entries, json: json)
        }
        if entries.allSatisfy({ $0.top == nil }) { throw ExitCode.failure }
    }
}

/// What `extract predict` runs after the backbone for a head of kind `finetuned`: the backbone's
/// output at the head's block cache (`extract --cache-blocks N`), the N - M blocks that stayed frozen
/// (the cache's tensors) and the M trained blocks (the head's tensors).
struct FineTunedPath {
    let output: String
    let blocks: BlockInference

    /// nil for a head on pooled features.
    static func load(db: FeatureStore, head: Int64, extraction e: ExtractionRecord, spec: BackboneSpec) throws -> FineTunedPath? {
        guard let stored = try db.storedFineTunedBlocks(headID: head, extractionID: e.id) else { return nil }
        return FineTunedPath(output: try spec.blockInputOutput(blocks: stored.cachedBlocks, head: head), blocks: try stored.path.inference())
    }
}
