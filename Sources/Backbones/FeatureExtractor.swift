import BackboneEngine
import Foundation

/// A loaded backbone compiled for one batch size: 8-bit RGB images in, features (and logits) out.
/// The backbone's own preprocessing is applied here and nowhere else.
public final class FeatureExtractor {
    /// The backbone it was compiled from, without its layers: the weights live in the compiled network.
    public let backbone: LoadedBackbone
    public let batch: Int
    public let size: Int
    public let outputs: [String]
    private let net: CompiledNetwork

    /// `calibration`: what `precision: .int8` needs (`LoadedBackbone.calibrateInt8` with the same outputs).
    public init(_ backbone: LoadedBackbone, batch: Int, size: Int? = nil, precision: Precision = .fp32,
                calibration: Int8Calibration? = nil, outputs: [String] = ["features"],
                algorithm: ConvolutionAlgorithm = .auto) throws {
        self.batch = batch
        self.size = size ?? backbone.spec.inputSize
        self.outputs = outputs
        net = try backbone.compile(batch: batch, size: self.size, precision: precision, calibration: calibration, outputs: outputs,
                                   algorithm: algorithm)
        // The compiled primitives hold their own (reordered) weights from here on.
        self.backbone = backbone.withoutLayers()
    }

    /// Dimension of a named output (1280 for Lite0's `features`, 1000 for `logits`).
    public func dimension(_ output: String) -> Int { net.outputShapes[output]?[1] ?? 0 }

    public var implementations: [String] { net.implementations }
    /// Convolutions oneDNN runs as Winograd (`ConvolutionAlgorithm`).
    public var winogradConvolutions: Int { net.winogradConvolutions }
    /// Convolutions of a bf16 network that run in fp32 (`CompiledNetwork.fp32InBF16Layers`).
    public var fp32InBF16Layers: [String] { net.fp32InBF16Layers }

    /// Runs `count` (<= batch) square images, `size` x `size` x 3 RGB bytes each, contiguous.
    /// Returns, per output, `count` rows of that output's dimension, row-major.
    public func run(rgb: UnsafePointer<UInt8>, count: Int) throws -> [String: [Float]] {
        precondition(count >= 1 && count <= batch, "FeatureExtractor.run: count \(count) outside 1...\(batch)")
        // Preprocessing runs between forward passes, while the engine's threads are idle: split it
        // over the cores rather than leave all but one idle.
        let per = 3 * size * size, parts = min(count, ProcessInfo.processInfo.activeProcessorCount)
        let input = net.input, prep = backbone.inputPreprocessing, size = self.size
        DispatchQueue.concurrentPerform(iterations: parts) { k in
            let lo = count * k / parts, hi = count * (k + 1) / parts
            if hi > lo { prep.apply(rgb: rgb + lo * per, count: hi - lo, size: size, into: input + lo * per) }
        }
        if count < batch {
            (net.input + count * per).initialize(repeating: 0, count: (batch - count) * per)
        }
        try net.run()
        var result: [String: [Float]] = [:]
        for name in outputs {
            let d = dimension(name)
            result[name] = Array(net.output(name)!.prefix(count * d))
        }
        return result
    }
}

/// Softmax over each row of `logits` and the top `k` (index, probability) of each.
public func topK(logits: [Float], classes: Int, k: Int) -> [[(index: Int, probability: Float)]] {
    stride(from: 0, to: logits.count, by: classes).map { start in
        let row = logits[start..<start + classes]
        let m = row.max() ?? 0
        let e = row.map { Foundation.exp(Double($0 - m)) }
        let sum = e.reduce(0, +)
        return e.enumerated().sorted { $0.element > $1.element }.prefix(k).map { ($0.offset, Float($0.element / sum)) }
    }
}
