import Foundation
import HeadTrainerCore
import XCTest

/// The C kernels' instruction-set variants (AVX-512, AVX2, baseline) must train bit-identically.
final class KernelVariantTests: XCTestCase {
    func testAllVariantsTrainIdentically() throws {
        let variants = HeadKernelVariant.supported
        let saved = HeadKernelVariant.active
        defer { HeadKernelVariant.active = saved }
        // 21 features and 100 hidden units: exercises the 16-lane loops and their scalar tails.
        let train = syntheticFeatures(dim: 21, seed: 9)
        var cfg = HeadConfig { $0.hidden = 100; $0.dropout = 0.2; $0.l2 = 1e-3; $0.batchnorm = true; $0.lr = 3e-3; $0.batchSize = 16; $0.epochs = 3; $0.patience = 0 }
        cfg.seed = 5
        var linear = cfg; linear.hidden = 0; linear.solver = .adam
        for c in [cfg, linear] {
            var results: [(HeadKernelVariant, HeadWeights)] = []
            for v in variants {
                HeadKernelVariant.active = v
                XCTAssertEqual(HeadKernelVariant.active, v)
                let r = try trainHead(config: c, train: train, test: nil, options: TrainingOptions(threads: 2))
                results.append((v, r.head.weights))
            }
            for (v, w) in results.dropFirst() {
                XCTAssertEqual(w, results[0].1, "\(v) differs from \(results[0].0) (hidden \(c.hidden))")
            }
        }
    }
}
