import Foundation
import WeightFormats
import XCTest

/// `WeightFiles.index` (names, shapes, element types; no values) and `WeightFiles.load(_:include:)`
/// (only the tensors asked for): what lets a backbone leave a 470 MB classifier on disk.
final class SelectiveLoadingTests: XCTestCase {
    static let files = ["tiny.safetensors", "tiny_keras2.safetensors", "tiny_keras2.h5", "tiny_keras3.weights.h5",
                        "tiny_keras_legacy.h5", "tiny_zip.pt", "tiny_zip64.pt", "tiny_legacy.pt", "tiny_wrapped.pt"]

    /// The index lists exactly what a full load returns, in the same order, with no value read.
    func testIndexDescribesEveryTensorWithoutReadingValues() throws {
        for file in Self.files {
            let url = try FormatFixtures.url(file)
            let full = try WeightFiles.load(url)
            let index = try WeightFiles.index(url)
            XCTAssertEqual(index.format, try WeightFiles.detectFormat(url), file)
            XCTAssertEqual(index.names, full.names, file)
            for name in full.names {
                let t = try full.tensor(name)
                XCTAssertEqual(index.shape(of: name), t.shape, "\(file) \(name)")
                XCTAssertEqual(index.tensors.first { $0.name == name }?.sourceDType, t.sourceDType, "\(file) \(name)")
            }
            let nothing = try WeightFiles.load(url, include: { _ in false })
            XCTAssertEqual(nothing.count, 0, file)
            XCTAssertEqual(nothing.loadedBytes, 0, file)
            XCTAssertEqual(nothing.skipped.map(\.name), full.names, file)
        }
    }

    /// Skipped tensors are absent from the state dict (their values never became Float32 arrays),
    /// listed in `skipped` in file order; the others are bit-identical to a full load.
    func testSkippedTensorsAreNeverMaterialized() throws {
        for file in Self.files {
            let url = try FormatFixtures.url(file)
            let full = try WeightFiles.load(url)
            guard full.count >= 2 else { continue }
            let skip = Set(full.names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
            var asked: [String] = []
            let part = try WeightFiles.load(url, include: { asked.append($0); return !skip.contains($0) })
            XCTAssertEqual(asked, full.names, "\(file): include is asked once per tensor, in file order")
            XCTAssertEqual(part.names, full.names.filter { !skip.contains($0) }, file)
            XCTAssertEqual(part.skipped.map(\.name), full.names.filter { skip.contains($0) }, file)
            for name in skip {
                XCTAssertNil(part.tensors[name], "\(file): \(name) was read")
                XCTAssertEqual(part.skipped.first { $0.name == name }?.shape, try full.tensor(name).shape, file)
            }
            for name in part.names {
                XCTAssertEqual(try part.tensor(name), try full.tensor(name), "\(file) \(name)")
            }
            let expectedBytes = part.names.reduce(0) { $0 + (full.tensors[$1]?.values.count ?? 0) * 4 }
            XCTAssertEqual(part.loadedBytes, expectedBytes, file)
            XCTAssertLessThan(part.loadedBytes, full.loadedBytes, file)
        }
    }

    /// Each reader's own entry point honours `include` the same way as the dispatcher.
    func testReadersTakeIncludeDirectly() throws {
        let keep: (String) -> Bool = { $0.hasSuffix("bias") || $0.hasSuffix("/1") }
        let h5 = try FormatFixtures.url("tiny_keras2.h5")
        XCTAssertEqual(try KerasHDF5.load(h5, include: keep).names, try WeightFiles.load(h5, include: keep).names)
        let pt = try FormatFixtures.url("tiny_zip.pt")
        XCTAssertEqual(try PyTorchCheckpoint.load(pt, include: keep).names, try WeightFiles.load(pt, include: keep).names)
        let st = try FormatFixtures.url("tiny.safetensors")
        XCTAssertEqual(try Safetensors.load(st, include: keep).names, try WeightFiles.load(st, include: keep).names)
    }

    /// Keras 3 `.weights.h5`: the layer names Keras writes on the `vars` groups are reported, so
    /// that `layers/conv2d/vars/0` can be mapped to the layer it belongs to.
    func testKeras3LayerNamesAreRecorded() throws {
        let url = try FormatFixtures.url("tiny_keras3.weights.h5")
        let sd = try WeightFiles.load(url)
        XCTAssertEqual(sd.kerasLayerNames["layers/depthwise_conv2d/vars"], "dw")
        XCTAssertEqual(sd.kerasLayerNames["layers/normalization/vars"], "norm")
        XCTAssertEqual(try WeightFiles.index(url).kerasLayerNames, sd.kerasLayerNames)
        XCTAssertNil(sd.kerasLayerNames["optimizer/vars"], "the optimizer is not part of the weights")
        XCTAssertEqual(try WeightFiles.load(try FormatFixtures.url("tiny_keras2.h5")).kerasLayerNames, [:])
    }
}
