import Foundation
@testable import HeadTrainerCore
import XCTest

/// The trainer's two GEMM backends (OpenBLAS, oneDNN) and the automatic choice between them.
final class GEMMBackendTests: XCTestCase {
    func testAutomaticChoiceFollowsOpenBLASCoreAndCPU() {
        func pick(_ core: String, _ cpu: CPUVectorISA) -> GEMMBackend { GEMMChoice.automatic(openBLASCore: core, cpu: cpu).backend }
        // A generic core on a CPU with wider vectors (what DYNAMIC_ARCH does on an unknown CPU model).
        XCTAssertEqual(pick("Prescott", .avx512), .onednn)
        XCTAssertEqual(pick("Prescott", .avx2), .onednn)
        XCTAssertEqual(pick("Core2", .avx), .onednn)
        XCTAssertEqual(pick("Sandybridge", .avx2), .onednn)
        XCTAssertEqual(pick("Haswell", .avx512), .onednn)
        // The core uses what the CPU has.
        XCTAssertEqual(pick("Haswell", .avx2), .openblas)
        XCTAssertEqual(pick("Zen", .avx2), .openblas)
        XCTAssertEqual(pick("SkylakeX", .avx512), .openblas)
        XCTAssertEqual(pick("COOPERLAKE", .avx512), .openblas)
        XCTAssertEqual(pick("Prescott", .sse), .openblas)
        XCTAssertEqual(pick("Sandybridge", .avx), .openblas)
        // A name not in the table counts as SSE: oneDNN wherever the CPU has more; OpenBLAS elsewhere
        // (e.g. ARM cores, where the CPU level is .sse).
        XCTAssertEqual(pick("SomeFutureCore", .avx2), .onednn)
        XCTAssertEqual(pick("NEOVERSEN1", .sse), .openblas)
        // The reason names the core and the CPU level.
        let c = GEMMChoice.automatic(openBLASCore: "Prescott", cpu: .avx512)
        XCTAssert(c.reason.contains("Prescott") && c.reason.contains("AVX-512"), c.reason)
    }

    func testSettingOverridesTheAutomaticChoice() {
        func resolve(_ s: String?) -> GEMMChoice { GEMMChoice.resolve(setting: s, openBLASCore: "Prescott", cpu: .avx512) }
        XCTAssertEqual(resolve(nil).backend, .onednn)
        XCTAssertEqual(resolve("auto").backend, .onednn)
        XCTAssertEqual(resolve("openblas").backend, .openblas)
        XCTAssertEqual(resolve("OneDNN").backend, .onednn)
        XCTAssertEqual(GEMMChoice.resolve(setting: "onednn", openBLASCore: "SkylakeX", cpu: .avx512).backend, .onednn)
        let bad = resolve("mkl")
        XCTAssertEqual(bad.backend, .onednn)
        XCTAssert(bad.reason.contains("'mkl' ignored"), bad.reason)
    }

    /// Trains with `backend` forced, restoring the process's choice afterwards.
    private func train(_ backend: GEMMBackend, _ cfg: HeadConfig, _ data: LabeledFeatures, threads: Int) throws -> TrainingResult {
        let saved = TrainerGEMM.choice
        defer { TrainerGEMM.choice = saved }
        TrainerGEMM.choice = GEMMChoice(backend: backend, reason: "test")
        return try trainHead(config: cfg, train: data, test: nil, options: TrainingOptions(threads: threads))
    }

    /// Both backends train the same heads. Not bit-identical: the libraries sum each dot product
    /// (up to 200 terms here) in different orders, a few float32 ulps apart, and a ReLU whose input
    /// is near 0 may switch between them. Measured on this test's data (AVX-512 CPU, 4 epochs): each
    /// tensor's difference within 1.2e-6 of its L2 norm, epoch losses within 1e-7 relative (the
    /// linear heads came out identical; against OpenBLAS's 'Prescott' kernels the converged L-BFGS
    /// loss, 1.2e-4, differed by 4e-10). Tolerances: 1e-5 of the norm, and 1e-6 of the loss or of
    /// 1 nat when it is smaller, about 10x the measured differences, leaving room for other CPUs'
    /// kernels.
    func testBackendsTrainAlikeAndEachIsThreadIndependent() throws {
        let data = syntheticFeatures(dim: 200, imagesPerClass: 40, seed: 21)
        let hidden = HeadConfig {
            $0.hidden = 96; $0.dropout = 0.2; $0.l2 = 1e-4; $0.batchnorm = true; $0.lr = 3e-3
            $0.batchSize = 32; $0.epochs = 4; $0.patience = 0; $0.seed = 3
        }
        var linear = hidden; linear.hidden = 0; linear.solver = .adam
        var lbfgs = linear; lbfgs.solver = .lbfgs
        for cfg in [hidden, linear, lbfgs] {
            let name = "hidden \(cfg.hidden), \(cfg.solver)"
            let o = try train(.openblas, cfg, data, threads: 1)
            let d = try train(.onednn, cfg, data, threads: 1)
            // Each backend alone: identical for any thread count (fixed work chunks).
            XCTAssertEqual(try train(.onednn, cfg, data, threads: 2).head.weights, d.head.weights, name)
            XCTAssertEqual(try train(.openblas, cfg, data, threads: 2).head.weights, o.head.weights, name)

            for (a, b) in zip(o.head.weights.blobs, d.head.weights.blobs) {
                let norm = a.values.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
                let diff = zip(a.values, b.values).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                XCTAssertLessThanOrEqual(diff, 1e-5 * max(norm, 1e-6), "\(name): \(a.name) differs by \(diff) (norm \(norm))")
            }
            XCTAssertEqual(o.curves.epochs.count, d.curves.epochs.count, name)
            for (x, y) in zip(o.curves.epochs, d.curves.epochs) {
                XCTAssertEqual(x.trainLoss, y.trainLoss, accuracy: 1e-6 * max(abs(x.trainLoss), 1), "\(name) epoch \(x.epoch)")
                XCTAssertEqual(x.validationLoss ?? 0, y.validationLoss ?? 0, accuracy: 1e-6 * max(abs(x.validationLoss ?? 0), 1),
                               "\(name) epoch \(x.epoch)")
            }
            XCTAssertEqual(o.metrics.train.accuracy, d.metrics.train.accuracy, accuracy: 0.01, name)
        }
    }
}
