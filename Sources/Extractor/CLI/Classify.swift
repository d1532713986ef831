import ArgumentParser
import Backbones
import Foundation
import Imaging

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a backbone's ImageNet top-5 classes for images (a quick check of weights and preprocessing).")

    @OptionGroup var options: BackboneOptions
    @Option(help: "How images reach the input size: pad (keep aspect, zero-pad), stretch, center-crop.")
    var fit: Fit = .pad
    @Option(name: .customLong("top"), help: "How many classes to show per image.") var top = 5
    @Flag(help: "Print a JSON array, one object per image.") var json = false
    @Argument(help: "Image files (JPEG, PNG, BMP, WebP).") var images: [String]

    struct Entry: Encodable {
        struct Guess: Encodable { let label: String; let index: Int; let probability: Float }
        let path: String
        let top: [Guess]?
        let error: String?
    }

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image file") }
        if top < 1 || top > 1000 { throw ValidationError("--top must be between 1 and 1000") }
    }

    func run() throws {
        _ = options.configureThreads()
        var failures = 0
        try failing {
            let loaded = try LoadedBackbone(try Backbones.named(options.backbone), weights: options.weightsURL)
            let ex = try FeatureExtractor(loaded, batch: 1, outputs: ["logits"])
            guard ex.dimension("logits") == 1000 else {
                throw ValidationError("\(loaded.weightsFile.path) has no ImageNet classifier, so it cannot classify")
            }
            var entries: [Entry] = []
            for path in images {
                do {
                    let img = try ImageCodec.decode(file: URL(fileURLWithPath: path))
                    let input = try Geometry.render(img, size: ex.size, fit: fit, contentHash: "")
                    let guesses = topK(logits: try ex.run(rgb: input.pixels, count: 1)["logits"]!, classes: 1000, k: top)[0]
                    entries.append(Entry(path: path, top: guesses.map {
                        .init(label: imageNetLabels[$0.index], index: $0.index, probability: $0.probability)
                    }, error: nil))
                } catch {
                    failures += 1
                    FileHandle.standardError.write(Data("skipped \(path): \(error)\n".utf8))
                    entries.append(Entry(path: path, top: nil, error: "\(error)"))
                }
            }
            if json {
                try printJSON(entries)
            } else {
                for e in entries {
                    guard let t = e.top else { continue }
                    print(e.path)
                    for g in t { print(String(format: "  %6.2f%%  %@ (%d)", g.probability * 100, g.label, g.index)) }
                }
            }
        }
        if failures == images.count { throw ExitCode.failure }
    }
}

extension Fit: ExpressibleByArgument {}
