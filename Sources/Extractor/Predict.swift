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
    @Flag(help: "Print a JSON array, one object per image.") var json = false
    @Flag(inversion: .prefixedNo, help: "Apply the head's temperature (fitted on its validation split) to the probabilities.")
    var calibration = true
    @Argument(help: "Image files.") var images: [String]

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
            let ex = try FeatureExtractor(loaded, batch: 1, size: s.imageSize, precision: Precision(rawValue: s.precision) ?? .fp32,
                                          outputs: [source.output])
            entries = rankImages(images, extractor: ex, fit: Fit(rawValue: s.fit) ?? .pad, labels: trained.classNames) {
                let raw = try trained.predict(features: $0[source.output]!)
                let probs = calibration ? trained.calibrated(raw) : raw
                return probs.enumerated().sorted { $0.element > $1.element }.prefix(top).map { ($0.offset, $0.element) }
            }
            try printRanked(entries, json: json)
        }
        if entries.allSatisfy({ $0.top == nil }) { throw ExitCode.failure }
    }
}
