import ArgumentParser
import Backbones
import Foundation
import Imaging
import WorkbenchCLI

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a backbone's ImageNet top-5 classes for images (a quick check of weights and preprocessing).")

    @OptionGroup var options: BackboneOptions
    @Option(help: "How images reach the input size: pad (keep aspect, zero-pad), stretch, center-crop.")
    var fit: Fit = .pad
    @Option(name: .customLong("top"), help: "How many classes to show per image.") var top = 5
    @Flag(help: "Print a JSON array, one object per image.") var json = false
    @Argument(help: "Image files (JPEG, PNG, BMP, WebP).") var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image file") }
        if top < 1 || top > 1000 { throw ValidationError("--top must be between 1 and 1000") }
    }

    func run() throws {
        _ = options.configureThreads()
        var entries: [RankedImage] = []
        try failing {
            let loaded = try LoadedBackbone(try Backbones.named(options.backbone), weights: options.weightsURL)
            let ex = try FeatureExtractor(loaded, batch: 1, outputs: ["logits"])
            guard ex.dimension("logits") == 1000 else {
                throw ValidationError("\(loaded.weightsFile.path) has no ImageNet classifier, so it cannot classify")
            }
            entries = rankImages(images, extractor: ex, fit: fit, labels: imageNetLabels) {
                topK(logits: $0["logits"]!, classes: 1000, k: top)[0]
            }
            try printRanked(entries, json: json)
        }
        if entries.allSatisfy({ $0.top == nil }) { throw ExitCode.failure }
    }
}

extension Fit: ExpressibleByArgument {}
