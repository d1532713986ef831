import BackboneEngine
import Backbones
import Foundation
import WeightFormats
import XCTest

/// No backbone runs a oneDNN reference primitive (`ref:` in the implementation oneDNN reports for a
/// primitive descriptor, `dnnl_query_impl_info_str`): a reference kernel is plain C++ loops, and
/// one over the full input cost Keras EfficientNetB0 half its speed (issue #14). Every backbone in
/// every weights layout (torchvision, timm, Keras 2 names, Keras 3 `.weights.h5` names, the PyPI
/// ports of Lite0/1/2), with its classifier, is compiled at its native input size, batch 16 (what
/// `extract bench` runs) in fp32, bf16 and int8. Compiling needs shapes only: the weights are zeros,
/// and int8's calibration gives every other layer's output the range [0, 1] (u8) and the rest [-1, 1] (s8),
/// with int8 depthwise convolutions.
final class PrimitiveChoiceTests: XCTestCase {
    static let batch = 16

    /// (backbone id, layout as the parity tests name it, Keras 3 names).
    static let cases: [(String, String, Bool)] = [
        ("efficientnet_lite0", "pypi", false), ("efficientnet_lite1", "pypi", false), ("efficientnet_lite2", "pypi", false),
        ("vgg16", "torchvision", false), ("vgg16", "timm", false), ("vgg16", "keras", false), ("vgg16", "keras", true),
        ("resnet50", "torchvision", false), ("resnet50", "keras", false), ("resnet50", "keras", true),
        ("resnet101", "torchvision", false), ("resnet101", "keras", false), ("resnet101", "keras", true),
        ("efficientnet_b0", "torchvision", false), ("efficientnet_b0", "timm", false),
        ("efficientnet_b0", "keras", false), ("efficientnet_b0", "keras", true),
    ]

    func testNoReferencePrimitiveFP32() throws { try check(.fp32) }
    func testNoReferencePrimitiveBF16() throws { try skipWithoutBF16(); try check(.bf16) }
    func testNoReferencePrimitiveInt8() throws { try check(.int8) }

    func check(_ precision: Precision) throws {
        // Every layout of every backbone is covered by a case.
        for spec in Backbones.all {
            for layout in spec.layouts {
                XCTAssertTrue(Self.cases.contains { $0.0 == spec.id && $0.1 == layout.name }, "no case for \(spec.id) \(layout.name)")
            }
        }
        for (id, layoutName, keras3) in Self.cases {
            let spec = try Backbones.named(id)
            let lite = EfficientNetLite.Variant.allCases.first { "efficientnet_lite\($0.rawValue)" == id }
            let shapes = try lite.map { EfficientNetLite.expectedTensors($0, classifier: true) }
                ?? ExperimentBackbonesTests.tensors(id, layoutName, classifier: true)
            let sd = try ExperimentBackbonesTests.stateDict(shapes, keras: layoutName == "keras", values: false,
                                                            keras3: keras3)
            let (layout, network) = try spec.network(from: sd)
            XCTAssertEqual(layout.name, layoutName)
            let what = "\(id) \(layoutName)\(keras3 ? " (Keras 3)" : "") \(precision.rawValue)"
            let pruned = network.pruned(to: Array(network.outputs.keys))
            let calibration = Int8Calibration(images: 0, ranges: Dictionary(uniqueKeysWithValues: pruned.layers.enumerated().map {
                ($1.name, [$0 % 2 == 0 ? 0 : -1, 1])
            }), depthwise: true, weightRule: Int8Calibration.localWeightRule)
            let net = try CompiledNetwork(pruned, batch: Self.batch, height: spec.inputSize, width: spec.inputSize,
                                          precision: precision, calibration: calibration)
            let reference = net.implementations.filter { $0.contains(": ref") }
            XCTAssertEqual(reference, [], what)
            print("\(what): \(net.implementations.count) primitives, \(Set(net.implementations.map { $0.split(separator: " ").last! }).sorted())")
        }
    }

    /// Writes the generated weights of the parity tests as Keras 3 `.weights.h5` files (no
    /// classifier), `<backbone>_keras.weights.h5`, into $WORKBENCH_WRITE_WEIGHTS, for
    /// `extract bench --backbone B --weights FILE` (skipped when unset).
    func testWriteGeneratedKerasFiles() throws {
        guard let dir = ProcessInfo.processInfo.environment["WORKBENCH_WRITE_WEIGHTS"], !dir.isEmpty else {
            throw XCTSkip("set WORKBENCH_WRITE_WEIGHTS=DIR to write the generated Keras 3 weight files")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for spec in Backbones.experiment {
            let url = URL(fileURLWithPath: dir).appendingPathComponent("\(spec.id)_keras.weights.h5")
            try KerasFileWriter.writeGenerated(try ExperimentBackbonesTests.tensors(spec.id, "keras", classifier: false), to: url)
            print("wrote \(url.path)")
        }
    }
}
