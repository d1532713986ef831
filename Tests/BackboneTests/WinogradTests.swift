import BackboneEngine
import Backbones
import Foundation
import XCTest

/// fp32 convolutions as Winograd (`ConvolutionAlgorithm.auto`): the features still agree with
/// torchvision's and Keras's on the same weights (the parity fixtures, at the same 1e-4 relative
/// tolerance; measured ~1e-6, against ~3e-7 to 1e-6 direct), and `Network.convolutionWork` predicts
/// exactly which convolutions oneDNN compiles as Winograd. On a CPU where oneDNN has no fp32
/// Winograd kernel (no AVX-512) the parity still runs, and the checks that Winograd ran are skipped.
final class WinogradTests: XCTestCase {
    /// A batch of 8 (the fixtures' 3 images, repeated): oneDNN runs Winograd for inference from 4 images.
    static let batch = 8

    func testVGG16TorchvisionAsWinograd() throws { try check("vgg16", "torchvision", outputs: ["features", "fc7"]) }
    func testVGG16KerasAsWinograd() throws { try check("vgg16", "keras", outputs: ["features", "fc7"]) }
    func testResNet50TorchvisionAsWinograd() throws { try check("resnet50", "torchvision") }
    func testResNet50KerasAsWinograd() throws { try check("resnet50", "keras") }
    func testResNet101KerasAsWinograd() throws { try check("resnet101", "keras") }

    func check(_ backbone: String, _ layout: String, outputs: [String] = ["features"],
               file: StaticString = #filePath, line: UInt = #line) throws {
        let implementations = try ExperimentBackbonesTests.checkParity(backbone, layout, outputs: outputs, batch: Self.batch, file: file, line: line)
        let winograd = Set(implementations.filter { $0.contains("wino") }.map { String($0.prefix { $0 != ":" }) })
        let spec = try Backbones.named(backbone, in: Backbones.experiment)
        let sd = try ExperimentBackbonesTests.stateDict(try ExperimentBackbonesTests.tensors(backbone, layout, classifier: true),
                                                        keras: layout == "keras", values: false)
        let network = try spec.network(from: sd).1.pruned(to: outputs)
        let work = network.convolutionWork(batch: Self.batch, height: spec.inputSize, width: spec.inputSize)
        XCTAssertEqual(Set(work.filter(\.winograd).map(\.layer)), winograd, "predicted vs compiled", file: file, line: line)
        guard ConvolutionAlgorithm.winogradAvailable else { throw XCTSkip("oneDNN has no fp32 Winograd kernel on this CPU") }
        // Only dense 3x3 stride-1 convolutions run as Winograd, never the image's own (VGG16's first);
        // oneDNN 2.6 takes them all at a batch of 4 or more in inference (all of them on the AMD EPYC
        // these tests were written on).
        let threeByThree = network.layers.filter {
            guard case .conv(let c) = $0.op else { return false }
            return c.kernel == (3, 3) && c.stride == 1 && c.groups == 1
        }.map(\.name)
        XCTAssertFalse(winograd.isEmpty, file: file, line: line)
        XCTAssertTrue(winograd.isSubset(of: threeByThree.dropFirst(backbone == "vgg16" ? 1 : 0)), "\(winograd)", file: file, line: line)
        let share = network.winogradShare(batch: Self.batch, height: spec.inputSize, width: spec.inputSize)
        print(String(format: "%@ %@: %d Winograd convolutions, %.3f of the multiply-adds", backbone, layout, winograd.count, share))
    }

    /// `direct` never runs Winograd, nor does a batch of 3, nor bf16; the share follows.
    func testDirectSmallBatchesAndBF16StayDirect() throws {
        let spec = try Backbones.named("vgg16", in: Backbones.experiment)
        let sd = try ExperimentBackbonesTests.stateDict(try ExperimentBackbonesTests.tensors("vgg16", "torchvision", classifier: false),
                                                        keras: false, values: false)
        let network = try spec.network(from: sd).1.pruned(to: ["features"])
        for (batch, precision, algorithm) in [(8, Precision.fp32, ConvolutionAlgorithm.direct), (3, .fp32, .auto)]
            + (EngineISA.current.bf16Convolutions ? [(8, .bf16, .auto)] : []) {
            let net = try CompiledNetwork(network, batch: batch, height: 64, width: 64, precision: precision, algorithm: algorithm)
            XCTAssertEqual(net.implementations.filter { $0.contains("wino") }, [], "batch \(batch) \(precision) \(algorithm)")
            XCTAssertEqual(net.winogradConvolutions, 0)
        }
        XCTAssertEqual(network.winogradShare(batch: 3, height: 64, width: 64), 0)
        guard ConvolutionAlgorithm.winogradAvailable else { throw XCTSkip("oneDNN has no fp32 Winograd kernel on this CPU") }
        // VGG16: 15,346,630,656 multiply-adds per 224 x 224 image, of which the image's convolution
        // (224 x 224 x 3 x 64 x 9 = 86,704,128) stays direct.
        let work = network.convolutionWork(batch: 8, height: 224, width: 224)
        XCTAssertEqual(work.reduce(0) { $0 + $1.macs }, 8 * 15_346_630_656)
        XCTAssertEqual(network.winogradShare(batch: 8, height: 224, width: 224), 1 - 86_704_128.0 / 15_346_630_656, accuracy: 1e-9)
    }
}
