import ArgumentParser
import Foundation
import Imaging
import WorkbenchCLI

struct PreviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Write augmented copies of a few images as PNG files, to see what a policy does before extracting.")
    @Option(help: "Dataset folder.") var data: String
    @Option(help: "Augmented copies per image.") var augment = 8
    @Option(help: "How many images.") var images = 4
    @Option(help: "Augmentation policy JSON file (default: the standard six).") var policy: String?
    @Option(name: .customLong("image-size"), help: "Output size.") var imageSize = 224
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Output folder.") var out: String

    func run() throws {
        try failing {
            let p = try policy.map { try AugmentationPolicy.fromJSON(Data(contentsOf: URL(fileURLWithPath: $0))) } ?? .standard
            let files = try Preview.write(dataset: URL(fileURLWithPath: data), out: URL(fileURLWithPath: out),
                                          augment: augment, images: images, size: imageSize, policy: p, seed: seed)
            print("wrote \(files.count) PNG files to \(out)")
        }
    }
}
