import Foundation

extension FineTuner {
    /// Nominal convolution FLOPs of one training step (forward + backward) on a batch: 1x1 layers
    /// 2 M Cin Cout each for Y, dW and dX; k x k layers 2 Mout Cin k^2 Cout each; depthwise 2 Mout C k^2 each (padding taps included);
    /// no dX for the first layer (the cached input needs none). Batch norm, activations, pooling and
    /// the softmax head are not counted.
    public func convolutionFLOPs(batch: Int) -> (forward: Double, backward: Double) {
        var fwd = 0.0, bwd = 0.0
        for (k, s) in steps.enumerated() {
            let passes = k == 0 ? 1.0 : 2.0
            switch s.layer.op {
            case .pointwise:
                let f = 2.0 * Double(batch * s.inPixels * s.c * s.outC)
                fwd += f; bwd += passes * f
            case .depthwise:
                let f = 2.0 * Double(batch * s.outPixels * s.c * s.layer.kernel! * s.layer.kernel!)
                fwd += f; bwd += passes * f
            case .conv:
                let f = 2.0 * Double(batch * s.outPixels * s.c * s.layer.kernel! * s.layer.kernel! * s.outC)
                fwd += f; bwd += passes * f
            default: break
            }
        }
        return (fwd, bwd)
    }
}

/// Seconds per epoch of fine-tuning on synthetic cached inputs, for `train-head bench-finetune`.
public enum FineTuneBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let rows: Int, batch: Int, threads: Int, lastBlocks: Int
        public let batchNorm: BatchNormMode
        public let gemm: GemmLibrary
        /// Mean over the timed epochs, and the fastest one (the machine is shared: the minimum is
        /// the figure least disturbed by other processes).
        public let secondsPerEpoch: Double
        public let fastestEpochSeconds: Double
        /// Convolution FLOPs of one epoch (`FineTuner.convolutionFLOPs`), forward + backward.
        public let convolutionFLOPsPerEpoch: Double
        /// Of the fastest epoch.
        public var gflops: Double { convolutionFLOPsPerEpoch / fastestEpochSeconds / 1e9 }
        public let finalLoss: Float

        public var description: String {
            String(format: "finetune last %d block(s) + head: %d rows, batch %d, %d threads, BN %@, %@: %.3f s/epoch (fastest %.3f), %.1f GFLOP/s (conv %.2f GFLOP/epoch), loss %.4f",
                   lastBlocks, rows, batch, threads, batchNorm.rawValue, gemm.rawValue, secondsPerEpoch, fastestEpochSeconds, gflops,
                   convolutionFLOPsPerEpoch / 1e9, finalLoss)
        }
    }

    /// EfficientNet-Lite0's last `lastBlocks` blocks + head conv + a softmax head (1280 -> 10) with
    /// `Synthetic` tensors, on `rows` synthetic inputs of the cached shape (`run(network:...)`).
    public static func run(rows: Int = 2048, batch: Int = 64, threads: Int = 2, lastBlocks: Int = 1,
                           batchNorm: BatchNormMode = .frozen, gemm: GemmLibrary = .oneDNN,
                           epochs: Int = 2) throws -> Result {
        let network = try FineTuneNetwork.efficientNetLite0(lastBlocks: lastBlocks)
        return try run(network: network, tensors: Synthetic.tensors(network.requiredTensors()), rows: rows, batch: batch,
                       threads: threads, batchNorm: batchNorm, gemm: gemm, epochs: epochs)
    }

    /// `network` (its blocks, the last one being the head conv + pool) with `tensors` + a softmax head
    /// (outputs -> 10, `Synthetic` tensors), on `rows` synthetic inputs of `network.input`'s shape.
    /// One warm-up epoch, then `epochs` timed epochs (a last partial batch included).
    public static func run(network: FineTuneNetwork, tensors: [String: [Float]], rows: Int, batch: Int = 64,
                           threads: Int = 2, batchNorm: BatchNormMode = .frozen, gemm: GemmLibrary = .oneDNN,
                           epochs: Int = 2) throws -> Result {
        let head = SoftmaxHead(inFeatures: network.outputChannels, classes: 10)
        var options = FineTuneOptions()
        options.threads = threads
        options.batchNorm = batchNorm
        options.gemm = gemm
        let blockSpecs = network.requiredTensors()
        let tuner = try FineTuner(network: network, head: head,
                                  tensors: tensors.merging(Synthetic.tensors(head.requiredTensors(), firstIndex: blockSpecs.count)) { a, _ in a },
                                  options: options)
        let per = network.input.count
        let data = Synthetic.inputs(count: rows * per)
        let labels = (0..<rows).map { Int32($0 % 10) }
        var loss: Float = 0
        func epoch() throws {
            for start in stride(from: 0, to: rows, by: batch) {
                let n = min(batch, rows - start)
                loss = try tuner.trainStep(inputs: Array(data[start * per ..< (start + n) * per]),
                                           labels: Array(labels[start ..< start + n]), batch: n)
            }
        }
        try epoch()
        var times: [Double] = []
        for _ in 0..<epochs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try epoch()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        var flops = 0.0
        for start in stride(from: 0, to: rows, by: batch) {
            let f = tuner.convolutionFLOPs(batch: min(batch, rows - start))
            flops += f.forward + f.backward
        }
        return Result(rows: rows, batch: batch, threads: threads, lastBlocks: network.blocks.count - 1, batchNorm: batchNorm, gemm: gemm,
                      secondsPerEpoch: times.reduce(0, +) / Double(epochs), fastestEpochSeconds: times.min()!,
                      convolutionFLOPsPerEpoch: flops, finalLoss: loss)
    }
}

extension FineTuneNetwork {
    /// A cached network (its blocks, the last one being the head conv + pool) split for training its
    /// last `unfreeze` blocks: the blocks run frozen before them (nil when none) and the trained ones
    /// with the head conv.
    public func splitForTraining(last unfreeze: Int) throws -> (frozen: FineTuneNetwork?, trained: FineTuneNetwork) {
        let frozenCount = blocks.count - 1 - unfreeze
        guard unfreeze >= 1, frozenCount >= 0 else {
            throw FineTuneError.invalidNetwork("--unfreeze \(unfreeze): the cache holds \(blocks.count - 1) block(s) (1...\(blocks.count - 1))")
        }
        let frozen = frozenCount > 0 ? FineTuneNetwork(input: input, blocks: Array(blocks[..<frozenCount])) : nil
        return (frozen, try droppingFirstBlocks(frozenCount))
    }

    /// The network without its first `count` blocks (frozen ones: their output becomes the input),
    /// the input shape being the one the dropped blocks give.
    public func droppingFirstBlocks(_ count: Int) throws -> FineTuneNetwork {
        guard count > 0 else { return self }
        guard count < blocks.count else {
            throw FineTuneError.invalidNetwork("cannot drop \(count) of \(blocks.count) blocks")
        }
        var index: [String: Int] = [:]
        for (i, s) in requiredTensors().enumerated() { index[s.name] = i }
        let step = try FineTuner.compile(self, index: index)[blocks[..<count].reduce(0) { $0 + $1.layers.count }]
        return FineTuneNetwork(input: FeatureShape(channels: step.c, height: step.h, width: step.w),
                               blocks: Array(blocks[count...]))
    }
}
