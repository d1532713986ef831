import ArgumentParser
import BackboneEngine
import Backbones
import Foundation
import Imaging
import WorkbenchCLI

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a backbone's forward pass: images per second and peak memory.",
        discussion: """
        Runs the compiled backbone on a fixed random batch (after warm-up) for --seconds and reports \
        images/s and the process's peak resident memory. To compare with ONNX Runtime on the same \
        machine in the same run: tools/bench/compare.sh.
        """)

    @Option(help: "Backbone to measure (not needed with --pipeline).") var backbone: String?
    @Option(help: "Use this weights file instead of the cached one.") var weights: String?
    @Option(help: "Threads (default: all cores; --pipeline: 1).") var threads: Int?
    @Flag(help: "Measure the image pipeline instead: decode + augment + pad of the images in --data.") var pipeline = false
    @Option(help: "Dataset folder for --pipeline.") var data: String?
    @Option(help: "Augmented copies per image for --pipeline.") var augment = 1
    @Option(help: "Images per forward pass.") var batch = 16
    @Option(name: .customLong("image-size"), help: "Input height and width (default: the backbone's own).")
    var imageSize: Int?
    @Option(help: ArgumentHelp("fp32, bf16, int8 (calibrated on the random batch: the speed does not depend on the values), or auto (what `extract` would pick on this CPU; see `extract run --help`).",
                               valueName: "fp32|bf16|int8|auto"))
    var precision: PrecisionRequest = .fp32
    @Option(help: ConvolutionAlgorithm.help) var convolution: ConvolutionAlgorithm = .auto
    @Option(help: "Seconds to measure after warm-up.") var seconds = 10.0
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "List the oneDNN implementation chosen for every primitive.") var verbose = false

    func validate() throws {
        if pipeline {
            guard data != nil else { throw ValidationError("--pipeline needs --data DIR") }
        } else if backbone == nil {
            throw ValidationError("--backbone NAME is required (or --pipeline --data DIR)")
        }
        guard batch >= 1, batch <= 1024 else { throw ValidationError("--batch must be between 1 and 1024") }
        if let s = imageSize, s < 32 || s > 1024 { throw ValidationError("--image-size must be between 32 and 1024") }
        try precision.validate()
    }

    struct Report: Encodable {
        let backbone: String, precision: String, precision_reason: String, convolution: String, batch: Int, image_size: Int, threads: Int
        let images_per_second: Double, peak_rss_bytes: Int
        /// How oneDNN's OpenMP threads wait (`OpenMPWaiting`).
        let openmp_wait: String
        /// Convolutions oneDNN runs as Winograd (`--convolution auto`, fp32).
        let winograd_convolutions: Int
    }

    struct PipelineReport: Encodable {
        let images_per_second: Double, threads: Int, images: Int, augment: Int, image_size: Int, images_per_cpu_second: Double
    }

    func run() throws {
        if pipeline { return try failing { try runPipeline() } }
        let threads = EngineThreads.configure(self.threads)
        try failing {
            let spec = try Backbones.named(backbone!)
            let loaded = try LoadedBackbone(spec, weights: weights.map { URL(fileURLWithPath: $0) }, classifier: false)
            let size = imageSize ?? spec.inputSize
            let decision = PrecisionDecision.resolve(self.precision) {
                loaded.winogradShare(batch: batch, size: size, algorithm: convolution)
            }
            let precision = decision.precision
            if self.precision == .auto { decision.announce(quiet: false) }
            var rng = SystemRandomNumberGenerator()
            let calibration = try precision != .int8 ? nil : (0..<batch * size * size * 3).map { _ in UInt8.random(in: 0...255, using: &rng) }
                .withUnsafeBufferPointer { try loaded.calibrateInt8(rgb: $0.baseAddress!, count: batch, size: size) }
            let net = try loaded.compile(batch: batch, size: size, precision: precision, calibration: calibration,
                                         algorithm: convolution)
            for i in 0..<net.inputCount { net.input[i] = Float.random(in: -1...1, using: &rng) }
            for _ in 0..<3 { try net.run() }
            var runs = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var elapsed = 0.0
            while elapsed < seconds || runs < 3 {
                try net.run()
                runs += 1
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            let report = Report(backbone: spec.id, precision: precision.rawValue, precision_reason: decision.reason,
                                convolution: convolution.rawValue, batch: batch, image_size: size,
                                threads: threads, images_per_second: Double(runs * batch) / elapsed,
                                peak_rss_bytes: peakResidentBytes(), openmp_wait: OpenMPWaiting.current,
                                winograd_convolutions: net.winogradConvolutions)
            if verbose { net.implementations.forEach { FileHandle.standardError.write(Data("\($0)\n".utf8)) } }
            if json {
                try printJSON(report)
            } else {
                print(String(format: "%@ %@ batch %d %dx%d, %d threads: %.1f images/s, peak RSS %.0f MiB",
                             spec.id, precision.rawValue, batch, size, size, threads, report.images_per_second,
                             Double(report.peak_rss_bytes) / 1_048_576))
            }
        }
    }

    private func runPipeline() throws {
        let size = imageSize ?? 224
        let r = try PipelineBenchmark.run(dir: URL(fileURLWithPath: data!), augment: augment, size: size,
                                          threads: threads ?? 1)
        let report = PipelineReport(images_per_second: r.imagesPerSecond, threads: r.threads, images: r.images,
                                    augment: augment, image_size: size, images_per_cpu_second: r.imagesPerCPUSecond)
        if json {
            try printJSON(report)
        } else {
            print(String(format: "pipeline: %d images (decode + %d augmented copies + pad to %d) at %.0f images/s on %d threads (%.0f per CPU-second)",
                         r.images, augment, size, r.imagesPerSecond, r.threads, r.imagesPerCPUSecond))
        }
    }
}
