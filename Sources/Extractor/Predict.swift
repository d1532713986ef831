import ArgumentParser
import BackboneEngine
import Backbones
import FeatureStore
import Foundation
import HeadTrainerCore
import Imaging
import WorkbenchCLI

/// `extract predict --head ID IMAGE...`: the reason to train a head — backbone + head on new images.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify new images with a trained head: the head's backbone, preprocessing and geometry, then the head.")

    @Option(help: "Feature store holding the head.") var store = "features.sqlite"
    @Option(help: "Head id (printed by train-head; see `extract store info`).") var head: Int64
    @Option(help: "Use this weights file instead of the cached one (must be the one the head was trained on).")
    var weights: String?
    @Option(help: "Classes to show per image.") var top = 3
    @Option(help: "Test-time augmentation: classify by the mean softmax over copies 0...K of each image, drawn with the extraction's augmentation policy and seed (as `extract --augment K` draws them).")
    var tta = 0
    @Flag(help: "Print a JSON array, one object per image.") var json = false
    @Argument(help: "Image files.") var images: [String]

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
            guard let e = try db.extraction(id: record.extractionID) else {
                throw ValidationError("head \(head) refers to extraction \(record.extractionID), which \(store) no longer has")
            }
            let trained = try TrainedHead(encoded: record.weights, source: "head \(head) in \(store)")
            let s = e.settings
            let source = try FeatureSource(stored: s.backbone)
            let loaded = try source.load(weights: weights.map { URL(fileURLWithPath: $0) })
            guard loaded.weightsSHA256 == s.weightsSHA256 else {
                throw ValidationError("head \(head) was trained on \(s.backbone) weights \(s.weightsSHA256.prefix(12))…, "
                                      + "but \(loaded.weightsFile.path) is \(loaded.weightsSHA256.prefix(12))…; pass the same weights with --weights")
            }
            let ex = try FeatureExtractor(loaded, batch: tta + 1, size: s.imageSize, precision: Precision(rawValue: s.precision) ?? .fp32,
                                          outputs: [source.output])
            let copies = tta == 0 ? nil : try AugmentedCopies(storedPolicy: s.augmentationPolicy, seed: s.seed, count: tta)
            entries = rankImages(images, extractor: ex, fit: Fit(rawValue: s.fit) ?? .pad, labels: trained.classNames, copies: copies) {
                let probs = meanProbabilities(try trained.predict(features: $0[source.output]!), classes: trained.classCount)
                return probs.enumerated().sorted { $0.element > $1.element }.prefix(top).map { ($0.offset, $0.element) }
            }
            try printRanked(entries, json: json)
        }
        if entries.allSatisfy({ $0.top == nil }) { throw ExitCode.failure }
    }
}
