import BackboneEngine
import Backbones
import Foundation
import XCTest

/// A 1x1 convolution with the 3x3 depthwise convolution after it fused into one oneDNN primitive
/// (`Builder.fusableDepthwise`) computes what the two compute apart. The unfused reference is the
/// same network with each fused 1x1 output also made a network output, which keeps it from fusing.
/// (The parity tests check the fused networks against PyTorch and Keras.)
final class DepthwiseFusionTests: XCTestCase {
    func testFusedPairsComputeWhatTheUnfusedOnesDo() throws {
        // torchvision pads 1 on every side: stride-2 pairs fuse too; Keras pads stride 2 at the
        // bottom and right only (SAME), which oneDNN's fused depthwise cannot: stride-1 pairs only.
        for (layoutName, stride2Fuses) in [("torchvision", true), ("keras", false)] {
            let spec = try Backbones.named("efficientnet_b0", in: Backbones.experiment)
            let sd = try ExperimentBackbonesTests.stateDict(try ExperimentBackbonesTests.tensors("efficientnet_b0", layoutName, classifier: false),
                                                            keras: layoutName == "keras")
            let network = try spec.network(from: sd).1.pruned(to: ["features"])
            for precision in [Precision.fp32] + (EngineISA.current.bf16Convolutions ? [.bf16] : []) {
                let fused = try CompiledNetwork(network, batch: 2, height: 224, width: 224, precision: precision)
                let pairs = Self.fusedPairs(fused)
                print("\(layoutName) \(precision): \(pairs)")
                // b1: B0's first stride-2 3x3 block; b2: its first stride-1 one. (bf16 fuses fewer pairs:
                // oneDNN's bf16 1x1 kernel declines some shapes, which then run apart.)
                if precision == .fp32 {
                    XCTAssertEqual(pairs.contains("b1.expand+b1.depthwise"), stride2Fuses, "\(layoutName): \(pairs)")
                    XCTAssertTrue(pairs.contains("b2.expand+b2.depthwise"), "\(layoutName): \(pairs)")
                }
                if !stride2Fuses { XCTAssertFalse(pairs.contains("b1.expand+b1.depthwise"), "\(layoutName) \(precision): \(pairs)") }
                var plain = network
                for p in pairs { plain.outputs["kept \(p.prefix { $0 != "+" })"] = String(p.prefix { $0 != "+" }) }
                let unfused = try CompiledNetwork(plain, batch: 2, height: 224, width: 224, precision: precision)
                XCTAssertEqual(Self.fusedPairs(unfused), [])
                for net in [fused, unfused] {
                    for i in 0..<net.inputCount { net.input[i] = Float((i &* 7919) % 1000) / 500 - 1 }
                    try net.run()
                }
                let a = Array(fused.output("features")!), b = Array(unfused.output("features")!)
                XCTAssertEqual(a.count, b.count)
                let diff = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
                let norm = b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
                XCTAssertLessThan(diff / norm, precision == .fp32 ? 1e-6 : 1e-2, "\(layoutName) \(precision)")
                print(String(format: "%@ %@: relative L2 fused vs unfused %.2e", layoutName, precision.rawValue, diff / norm))
            }
        }
    }

    /// The fused pairs a compiled network lists (`b2.expand+b2.depthwise: jit_1x1:avx512_core`).
    static func fusedPairs(_ net: CompiledNetwork) -> [String] {
        net.implementations.map { String($0.prefix { $0 != ":" }) }.filter { $0.contains("+") }
    }
}
