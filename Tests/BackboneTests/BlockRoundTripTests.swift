import BackboneEngine
import Backbones
import FineTuneCore
import Foundation
import WeightFormats
import XCTest

/// Issue #12's round trip for the experiment backbones, with the generated weights of
/// `ExperimentBackbonesTests` in every layout: the engine's `block_input.*` outputs run through the
/// backbone's block definition (`BackboneSpec.blockNetwork`, tensors by `blockTensors`) in FineTuneCore
/// give the engine's pooled `features` (fp32, relative L2 per image below 1e-5), for every cacheable
/// block count. FineTuneCore runs batch norm unfolded, the engine folded into the convolutions.
final class BlockRoundTripTests: XCTestCase {
    func testEfficientNetB0() throws { for layout in ["torchvision", "timm", "keras"] { try check("efficientnet_b0", layout) } }
    func testResNet50() throws { for layout in ["torchvision", "keras"] { try check("resnet50", layout) } }
    func testResNet101() throws { for layout in ["torchvision", "keras"] { try check("resnet101", layout) } }
    /// (Without the classifier a timm VGG16 file is a torchvision one.)
    func testVGG16() throws { for layout in ["torchvision", "keras"] { try check("vgg16", layout) } }

    func check(_ backbone: String, _ layout: String) throws {
        let spec = try Backbones.named(backbone, in: Backbones.experiment)
        let sd = try ExperimentBackbonesTests.stateDict(try ExperimentBackbonesTests.tensors(backbone, layout, classifier: false),
                                                        keras: layout == "keras")
        let (found, network) = try spec.network(from: sd)
        XCTAssertEqual(found.name, layout)
        let batch = 2, size = spec.inputSize
        let net = try CompiledNetwork(network.pruned(to: ["features"] + spec.blockInputOutputs), batch: batch, height: size, width: size)
        let pixels = (0..<batch * size * size * 3).map { i in
            UInt8(truncatingIfNeeded: (i % 3) * 80 + (i / 3 % size) + (i / (3 * size) % size) / 2 + i / (3 * size * size) * 37)
        }
        pixels.withUnsafeBufferPointer { found.preprocessing.apply(rgb: $0.baseAddress!, count: batch, size: size, into: net.input) }
        try net.run()
        let features = Array(try XCTUnwrap(net.output("features")))
        let dim = spec.featureDimension
        for blocks in 1...spec.blockInputOutputs.count {
            let definition = try spec.blockNetwork(blocks, layout: layout)
            let input = Array(try XCTUnwrap(net.output(spec.blockInputOutputs[blocks - 1])))
            XCTAssertEqual(input.count, batch * definition.input.count, "\(backbone) \(layout) \(blocks)")
            let tuner = try FineTuner(network: definition, head: nil,
                                      tensors: try spec.blockTensors(definition, layout: layout, from: sd))
            let computed = try tuner.features(input, batch: batch)
            for i in 0..<batch {
                var diff = 0.0, norm = 0.0
                for j in i * dim ..< (i + 1) * dim {
                    diff += Double(features[j] - computed[j]) * Double(features[j] - computed[j])
                    norm += Double(features[j]) * Double(features[j])
                }
                let error = (diff / norm).squareRoot()
                print("\(backbone) \(layout) last \(blocks) block(s), image \(i): relative L2 \(error)")
                XCTAssertLessThan(error, 1e-5, "\(backbone) \(layout) last \(blocks) block(s), image \(i)")
            }
        }
    }

    /// `blockTensors` from a Keras 3 `.weights.h5` file (what `extract --cache-blocks` reads: only the
    /// blocks' layers, Keras 3 names included) equals the tensors from the whole loaded file.
    func testBlockTensorsFromAKeras3File() throws {
        let spec = try Backbones.named("efficientnet_b0", in: Backbones.experiment)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blocks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("efficientnet_b0.weights.h5")
        _ = try KerasFileWriter.writeGenerated(EfficientNet.kerasTensors(classifier: false), to: url)
        let definition = try spec.blockNetwork(2, layout: "keras")
        let read = try spec.blockTensors(definition, layout: "keras", weights: url)
        XCTAssertEqual(read, try spec.blockTensors(definition, layout: "keras", from: WeightFiles.load(url)))
        XCTAssertEqual(Set(read.keys), Set(definition.requiredTensors().map(\.name)))
        XCTAssertNotNil(read["block7a_se_reduce.weight"])
    }

    /// The definitions tools/goldens/finetune.py builds in PyTorch (Tests/FineTuneTests/Fixtures) are the backbones' own.
    func testGoldensUseTheBackbonesDefinitions() throws {
        struct Goldens: Decodable { struct Config: Decodable { let name: String; let network: FineTuneNetwork }; let configs: [Config] }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FineTuneTests/Fixtures/finetune_goldens.json")
        let goldens = try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
        var checked = 0
        for c in goldens.configs {
            let parts = c.name.split(separator: "-")
            guard parts.count == 3, let blocks = Int(parts[1]), let id = ["b0": "efficientnet_b0", "resnet50": "resnet50",
                  "resnet50keras": "resnet50", "vgg16": "vgg16"][String(parts[0])] else { continue }
            let layout = parts[0].hasSuffix("keras") ? "keras" : "torchvision"
            XCTAssertEqual(try Backbones.named(id, in: Backbones.experiment).blockNetwork(blocks, layout: layout), c.network, c.name)
            checked += 1
        }
        XCTAssertEqual(checked, 11)
    }
}
