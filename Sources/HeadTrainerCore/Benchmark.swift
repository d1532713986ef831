import Foundation

/// Timing entry points for the `train-head bench`-style command.
public enum HeadBenchmark {
    /// Seconds per training epoch (training steps only, no validation pass) of a head trained on
    /// `rows` x `dim` random features with `classes` balanced random labels, averaged over `epochs`
    /// epochs after one warm-up epoch. Default head = the spec's default (BN, 256, dropout 0.2, ...).
    public static func run(rows: Int = 11_228, dim: Int = 1280, classes: Int = 6, epochs: Int = 3,
                           config: HeadConfig = HeadConfig(), threads: Int? = nil) -> Double {
        let r = detailed(rows: rows, dim: dim, classes: classes, epochs: epochs, config: config, threads: threads)
        return r.secondsPerEpoch
    }

    public struct Report: Codable, Sendable {
        public var rows: Int, dim: Int, classes: Int, epochs: Int, threads: Int
        public var stepsPerEpoch: Int
        public var secondsPerEpoch: Double
        public var microsecondsPerStep: Double
        /// The GEMM backend used, why, and what the choice was made from.
        public var gemm: GEMMBackend
        public var gemmReason: String
        public var openBLASCore: String
        public var cpuISA: String
        enum CodingKeys: String, CodingKey {
            case rows, dim, classes, epochs, threads, gemm
            case stepsPerEpoch = "steps_per_epoch", secondsPerEpoch = "seconds_per_epoch", microsecondsPerStep = "us_per_step"
            case gemmReason = "gemm_reason", openBLASCore = "openblas_corename", cpuISA = "cpu_isa"
        }
    }

    public static func detailed(rows: Int = 11_228, dim: Int = 1280, classes: Int = 6, epochs: Int = 3,
                                config: HeadConfig = HeadConfig(), threads: Int? = nil) -> Report {
        let rows = max(rows, 1), dim = max(dim, 1), classes = max(classes, 2), epochs = max(epochs, 1)
        var rng = HeadRNG(seed: 7, stream: 99)
        // Non-negative, ReLU6-like features (what an EfficientNet-Lite pool produces).
        let x = (0..<(rows * dim)).map { _ in max(0, rng.nextFloat() * 2 - 0.6) }
        let y = (0..<rows).map { Int32($0 % classes) }
        var cfg = config
        if cfg.hidden == 0 && cfg.solver == .auto { cfg.solver = .adam }
        if cfg.solver == .lbfgs { cfg.solver = .adam }
        var initRNG = HeadRNG(seed: cfg.seed, stream: RNGStream.initialization)
        let w = HeadWeights.initial(config: cfg, inputs: dim, classes: classes, rng: &initRNG)
        let blas = BLASThreadsGuard()
        defer { blas.restore() }
        let net = HeadNetwork(config: cfg, weights: w, maxBatch: cfg.batchSize, threads: threads)
        var order = Array(0..<rows)
        var shuffle = HeadRNG(seed: 1, stream: RNGStream.shuffle)
        func epoch() {
            shuffle.shuffle(&order)
            x.withUnsafeBufferPointer { xs in
                y.withUnsafeBufferPointer { ys in
                    order.withUnsafeBufferPointer { ord in
                        var lo = 0
                        while lo < rows {
                            let hi = min(rows, lo + cfg.batchSize)
                            _ = net.trainStep(data: xs.baseAddress!, labels: ys.baseAddress!, rows: UnsafeBufferPointer(rebasing: ord[lo..<hi]))
                            lo = hi
                        }
                    }
                }
            }
        }
        epoch()   // warm-up: page faults, BLAS buffers, thread pool
        let t0 = monotonicSeconds()
        for _ in 0..<epochs { epoch() }
        let per = (monotonicSeconds() - t0) / Double(epochs)
        let steps = (rows + cfg.batchSize - 1) / cfg.batchSize
        return Report(rows: rows, dim: dim, classes: classes, epochs: epochs, threads: net.par.threads,
                      stepsPerEpoch: steps, secondsPerEpoch: per, microsecondsPerStep: per / Double(steps) * 1e6,
                      gemm: TrainerGEMM.choice.backend, gemmReason: TrainerGEMM.choice.reason,
                      openBLASCore: TrainerGEMM.openBLASCore, cpuISA: CPUVectorISA.current.description)
    }
}
