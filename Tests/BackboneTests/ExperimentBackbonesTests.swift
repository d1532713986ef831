import BackboneEngine
import Backbones
import Foundation
import Imaging
import WeightFormats
import XCTest

/// The experiment backbones (VGG16, ResNet50/101, EfficientNet-B0) in both weight layouts against
/// their reference frameworks: torchvision 0.29 and keras.applications (Keras 3 / TensorFlow 2.21).
///
/// Approach (see tools/goldens/experiment.py): the weights are a deterministic function of
/// (tensor name, index) that the script and `GeneratedWeights` below compute identically, so the
/// multi-hundred-megabyte files are regenerated here instead of committed. The script loaded them
/// into the reference models through the frameworks' own file loaders and committed summaries of
/// the outputs (a 64-value sample, the L2 norm and 32 random +-1 projections of every output vector)
/// in Fixtures/experiment. Here the same tensors, named and shaped as the files store them, go into
/// an in-memory `StateDict` and through the backbone's own layout detection, validation and build
/// (`BackboneSpec.network(from:)`, the code `LoadedBackbone` runs after reading a file). Inputs are
/// the committed 224x224 PNGs of the Lite0 goldens, preprocessed by the layout's `Preprocessing`.
final class ExperimentBackbonesTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    static let tolerance = 1e-4

    // MARK: Parity with the references

    func testVGG16Torchvision() throws { try Self.checkParity("vgg16", "torchvision", outputs: ["features", "fc7"]) }
    func testVGG16Keras() throws { try Self.checkParity("vgg16", "keras", outputs: ["features", "fc7"]) }
    func testResNet50Torchvision() throws { try Self.checkParity("resnet50", "torchvision") }
    func testResNet50Keras() throws { try Self.checkParity("resnet50", "keras") }
    func testResNet101Torchvision() throws { try Self.checkParity("resnet101", "torchvision") }
    func testResNet101Keras() throws { try Self.checkParity("resnet101", "keras") }
    func testEfficientNetB0Torchvision() throws { try Self.checkParity("efficientnet_b0", "torchvision") }
    func testEfficientNetB0Keras() throws { try Self.checkParity("efficientnet_b0", "keras") }

    // timm (references: tools/goldens/experiment.py timm, timm 1.0.31)
    func testVGG16Timm() throws { try Self.checkParity("vgg16", "timm", outputs: ["features", "fc7"]) }
    func testEfficientNetB0Timm() throws { try Self.checkParity("efficientnet_b0", "timm") }

    // Keras 3 `.weights.h5` names (`layers/conv2d_3/vars/0` + the layer names Keras records):
    // same models and weights as the Keras 2 files, so the same references.
    func testVGG16Keras3() throws { try Self.checkParity("vgg16", "keras", outputs: ["features", "fc7"], keras3: true) }
    func testResNet50Keras3() throws { try Self.checkParity("resnet50", "keras", keras3: true) }
    func testResNet101Keras3() throws { try Self.checkParity("resnet101", "keras", keras3: true) }
    func testEfficientNetB0Keras3() throws { try Self.checkParity("efficientnet_b0", "keras", keras3: true) }

    /// A real Keras 3 `.weights.h5` file (written here with libhdf5, classifier included) through
    /// the public path: `LoadedBackbone` with `classifier: false` never reads the classifier, and
    /// `FeatureExtractor` on 8-bit pixels matches Keras.
    func testEfficientNetB0Keras3FileEndToEnd() throws {
        let spec = try Backbones.named("efficientnet_b0", in: Backbones.experiment)
        let shapes = EfficientNet.kerasTensors(classifier: true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keras3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("efficientnet_b0.weights.h5")
        let paths = try KerasFileWriter.writeGenerated(shapes, to: url)

        let features = try LoadedBackbone(spec, weights: url, classifier: false)
        XCTAssertEqual(features.layout.name, "keras")
        XCTAssertEqual(Set(features.skippedTensors.map(\.name)), [paths["predictions/kernel"]!, paths["predictions/bias"]!])
        XCTAssertNil(features.network.outputs["logits"])
        try checkExtractor(features, fixture: "efficientnet_b0_keras", what: "keras3 file")
        let full = try LoadedBackbone(spec, weights: url, classifier: true)
        XCTAssertEqual(full.skippedTensors.count, 0)
        XCTAssertNotNil(full.network.outputs["logits"])
    }

    /// The published Keras "notop" files have no fc1/fc2/predictions: same features, no fc7. The
    /// tensors are spelled as in the original Keras 1 VGG16 file (`block1_conv1/block1_conv1_W_1:0`).
    func testVGG16KerasWithoutTop() throws {
        try Self.checkParity("vgg16", "keras", outputs: ["features"], classifier: false, spelling: { key in
            let parts = key.split(separator: "/")
            return "\(parts[0])/\(parts[0])_\(parts[1] == "kernel" ? "W" : "b")_1:0"
        })
    }

    /// Other spellings of the same tensors: the bare Keras 2 `weight_names` (`layer/weight:0`), and
    /// Keras 3's legacy writer (`layer/layer/weight`, a depthwise kernel called `kernel`).
    func testEfficientNetB0KerasAcceptsOtherNameSpellings() throws {
        try Self.checkParity("efficientnet_b0", "keras", spelling: { key in
            let layer = key.split(separator: "/")[0]
            return key.hasSuffix("depthwise_kernel") ? "\(layer)/\(layer)/kernel" : "\(key):0"
        })
    }

    /// End to end through the public path (`LoadedBackbone` reading a real file, `FeatureExtractor`
    /// preprocessing 8-bit pixels) on the files `tools/goldens/experiment.py --weights-dir DIR`
    /// wrote (torch, timm, keras: also Keras 3's own `.weights.h5`), each loaded with and without
    /// its classifier: set WORKBENCH_EXPERIMENT_WEIGHTS=DIR (not committed: several GB).
    func testGeneratedWeightFilesEndToEnd() throws {
        guard let dir = ProcessInfo.processInfo.environment["WORKBENCH_EXPERIMENT_WEIGHTS"], !dir.isEmpty else {
            throw XCTSkip("set WORKBENCH_EXPERIMENT_WEIGHTS to the --weights-dir of tools/goldens/experiment.py")
        }
        var checked = 0
        for spec in Backbones.experiment {
            // (file suffix, layout, fixture layout): Keras 3's own save_weights file has the Keras references.
            for (suffix, layoutName, fixtureLayout) in [("torchvision.pth", "torchvision", "torchvision"),
                                                        ("timm.pth", "timm", "timm"), ("keras.h5", "keras", "keras"),
                                                        ("keras.weights.h5", "keras", "keras")] {
                let url = URL(fileURLWithPath: dir).appendingPathComponent("\(spec.id)_\(suffix)")
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                for classifier in [true, false] {
                    let loaded = try LoadedBackbone(spec, weights: url, classifier: classifier)
                    XCTAssertEqual(loaded.layout.name, layoutName, url.lastPathComponent)
                    XCTAssertEqual(loaded.skippedTensors.isEmpty, classifier, url.lastPathComponent)
                    try checkExtractor(loaded, fixture: "\(spec.id)_\(fixtureLayout)",
                                       what: "\(url.lastPathComponent) classifier \(classifier)",
                                       only: classifier ? nil : ["features"])
                }
                checked += 1
            }
        }
        if checked == 0 { throw XCTSkip("no generated weight files readable in \(dir)") }
    }

    /// Runs `loaded` through `FeatureExtractor` on the fixture's images (8-bit pixels) and
    /// compares every output the fixture has (or `only` those).
    func checkExtractor(_ loaded: LoadedBackbone, fixture name: String, what: String, only: [String]? = nil,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let fixtureURL = Self.fixtures.appendingPathComponent("experiment/\(name).json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: fixtureURL))
        let outputs = only ?? fixture.outputs.keys.sorted()
        let extractor = try FeatureExtractor(loaded, batch: fixture.images.count, outputs: outputs)
        var pixels: [UInt8] = []
        for image in fixture.images {
            pixels += try ImageCodec.decode(file: Self.fixtures.appendingPathComponent(image)).pixels
        }
        let result = try pixels.withUnsafeBufferPointer {
            try extractor.run(rgb: $0.baseAddress!, count: fixture.images.count)
        }
        for output in outputs {
            let ref = try XCTUnwrap(fixture.outputs[output], file: file, line: line)
            let values = try XCTUnwrap(result[output], file: file, line: line)
            for i in 0..<fixture.images.count {
                let e = Self.errors(Array(values[i * ref.dimension ..< (i + 1) * ref.dimension]), ref, image: i)
                XCTAssertLessThanOrEqual(max(e.sample, e.norm, e.projections), Self.tolerance,
                                         "\(what) \(output) of \(fixture.images[i])", file: file, line: line)
            }
        }
        print("checked \(what) (\(outputs.joined(separator: ", ")))")
    }

    // MARK: Layout detection and preprocessing

    /// The scene experiment's mistake (dividing pixels by 255 before Keras models that expect
    /// 0-255) cannot happen: callers hand over 8-bit pixels only, and how they become input is
    /// fixed by the weights' layout. Keras VGG16/ResNet are caffe (BGR, mean subtracted, 0-255
    /// scale); Keras EfficientNet takes raw 0-255 RGB (it normalizes inside the network);
    /// torchvision weights get ImageNet mean/std on 0-1.
    func testPreprocessingFollowsTheLayout() throws {
        XCTAssertEqual(Backbones.experiment.map(\.id), ["vgg16", "resnet50", "resnet101", "efficientnet_b0"])
        let layouts = ["vgg16": ["timm", "torchvision", "keras"], "efficientnet_b0": ["torchvision", "timm", "keras"]]
        for spec in Backbones.experiment {
            XCTAssertEqual(spec.layouts.map(\.name), layouts[spec.id] ?? ["torchvision", "keras"], spec.id)
            for layout in spec.layouts {
                switch (spec.id, layout.name) {
                case (_, "torchvision"), (_, "timm"):
                    XCTAssertEqual(layout.preprocessing, .imagenet, spec.id)
                case ("efficientnet_b0", "keras"):
                    XCTAssertEqual(layout.preprocessing, .rawRGB, spec.id)
                default:
                    XCTAssertEqual(layout.preprocessing, .caffe, spec.id)
                }
                if layout.name == "keras" {
                    // 0-255 units reach the network: no division by 255 anywhere.
                    XCTAssertEqual(layout.preprocessing.std, [1, 1, 1], "\(spec.id) \(layout.name)")
                }
            }
        }
        XCTAssertEqual(Preprocessing.caffe.order, .bgr)
        XCTAssertEqual(Preprocessing.rawRGB.mean, [0, 0, 0])
    }

    /// ResNet50 weights given for ResNet101 (and the other way round) are recognized as no layout
    /// of that backbone, instead of failing later on a long list of tensors.
    func testWrongDepthIsRejected() throws {
        let r50 = try Self.stateDict(ResNet.torchvisionTensors(.resnet50, classifier: true), keras: false, values: false)
        let r101 = try Backbones.named("resnet101", in: Backbones.experiment)
        XCTAssertThrowsError(try r101.network(from: r50)) { error in
            XCTAssertTrue("\(error)".contains("does not look like ResNet101"), "\(error)")
        }
        let k101 = try Self.stateDict(ResNet.kerasTensors(.resnet101, classifier: false), keras: true, values: false)
        let r50spec = try Backbones.named("resnet50", in: Backbones.experiment)
        XCTAssertThrowsError(try r50spec.network(from: k101))
    }

    /// A misshaped tensor is reported by name before anything is built.
    func testMisshapedTensorIsNamed() throws {
        var sd = try Self.stateDict(EfficientNet.torchvisionTensors(classifier: false), keras: false, values: false)
        sd.insert(WeightTensor(name: "features.3.0.block.1.0.weight", shape: [144, 1, 3, 3], sourceDType: .float32,
                               values: [Float](repeating: 0, count: 144 * 9)))
        let spec = try Backbones.named("efficientnet_b0", in: Backbones.experiment)
        XCTAssertThrowsError(try spec.network(from: sd)) { error in
            XCTAssertTrue("\(error)".contains("features.3.0.block.1.0.weight"), "\(error)")
        }
    }

    // MARK: Helpers

    struct Fixture: Decodable {
        struct Output: Decodable {
            let dimension: Int
            let sample_stride: Int
            let samples: [[Double]]
            let norms: [Double]
            let projections: [[Double]]
        }
        let backbone: String
        let layout: String
        let images: [String]
        let outputs: [String: Output]
    }

    /// Canonical tensor shapes of a backbone in a layout (Keras: `layer/weight` keys).
    static func tensors(_ backbone: String, _ layout: String, classifier: Bool) throws -> [String: [Int]] {
        let keras = layout == "keras"
        switch (backbone, layout) {
        case ("vgg16", "timm"): return VGG.timmTensors(classifier: classifier)
        case ("efficientnet_b0", "timm"): return EfficientNet.timmTensors(classifier: classifier)
        default: break
        }
        switch backbone {
        case "vgg16": return keras ? VGG.kerasTensors(classifier: classifier) : VGG.torchvisionTensors(classifier: classifier)
        case "resnet50", "resnet101":
            let depth: ResNet.Depth = backbone == "resnet50" ? .resnet50 : .resnet101
            return keras ? ResNet.kerasTensors(depth, classifier: classifier)
                : ResNet.torchvisionTensors(depth, classifier: classifier)
        case "efficientnet_b0":
            return keras ? EfficientNet.kerasTensors(classifier: classifier)
                : EfficientNet.torchvisionTensors(classifier: classifier)
        default: throw XCTSkip("no tensor list for \(backbone)")
        }
    }

    /// A state dict as the weights file would hold it. Keras keys are spelled `layer/layer/weight:0`
    /// (what `KerasHDF5` names the tensors of a Keras 2 file: layer group / weight_names entry)
    /// unless `spelling` says otherwise, and
    /// EfficientNet's Normalization layer gets its int64 `count` (which the layout ignores).
    /// `keras3`: Keras 3 `.weights.h5` names (`layers/<class>_n/vars/<i>`, see `KerasFileWriter`)
    /// with the layer names the reader reports.
    static func stateDict(_ shapes: [String: [Int]], keras: Bool, values: Bool = true,
                   spelling: ((String) -> String)? = nil, keras3: Bool = false) throws -> StateDict {
        var list: [WeightTensor] = []
        var layerNames: [String: String] = [:]
        var spelling = spelling
        if keras3 {
            let (paths, names) = try KerasFileWriter.keras3Paths(shapes)
            layerNames = names
            spelling = { paths[$0] ?? $0 }
        }
        for key in shapes.keys.sorted() {
            let shape = shapes[key]!
            let count = shape.reduce(1, *)
            let name = keras ? (spelling?(key) ?? "\(key.split(separator: "/")[0])/\(key):0") : key
            if key.hasSuffix("num_batches_tracked") {
                list.append(WeightTensor(name: name, shape: shape, sourceDType: .int64, values: [0]))
                continue
            }
            let data = values ? try GeneratedWeights.values(key, shape: shape, in: shapes, keras: keras)
                : [Float](repeating: 0, count: count)
            list.append(WeightTensor(name: name, shape: shape, sourceDType: .float32, values: data))
        }
        if keras, shapes["normalization/mean"] != nil {
            let name = spelling?("normalization/count") ?? "normalization/normalization/count:0"
            list.append(WeightTensor(name: name, shape: [], sourceDType: .int64, values: [0]))
        }
        return try StateDict(file: URL(fileURLWithPath: "/generated/weights"), orderedTensors: list, kerasLayerNames: layerNames)
    }

    /// `batch`: run this many images (the fixture's, repeated; default: the fixture's count, 3, which
    /// oneDNN never runs as Winograd). Returns the compiled network's implementations.
    @discardableResult
    static func checkParity(_ backbone: String, _ layoutName: String, outputs: [String] = ["features"],
                     classifier: Bool = true, spelling: ((String) -> String)? = nil, keras3: Bool = false,
                     batch: Int? = nil, algorithm: ConvolutionAlgorithm = .auto,
                     file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let fixtureURL = Self.fixtures.appendingPathComponent("experiment/\(backbone)_\(layoutName).json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: fixtureURL))
        let spec = try Backbones.named(backbone, in: Backbones.experiment)
        let sd = try Self.stateDict(try Self.tensors(backbone, layoutName, classifier: classifier), keras: layoutName == "keras",
                               spelling: spelling, keras3: keras3)
        let (layout, network) = try spec.network(from: sd)
        XCTAssertEqual(layout.name, layoutName, file: file, line: line)

        let count = fixture.images.count
        var pixels: [UInt8] = []
        for image in fixture.images {
            let img = try ImageCodec.decode(file: Self.fixtures.appendingPathComponent(image))
            XCTAssertEqual(img.width, spec.inputSize, file: file, line: line)
            XCTAssertEqual(img.height, spec.inputSize, file: file, line: line)
            pixels += img.pixels
        }
        let batch = batch ?? count, one = pixels.count / count
        pixels = (0..<batch).flatMap { pixels[($0 % count) * one ..< ($0 % count + 1) * one] }
        let net = try CompiledNetwork(network.pruned(to: outputs), batch: batch, height: spec.inputSize,
                                      width: spec.inputSize, algorithm: algorithm)
        pixels.withUnsafeBufferPointer {
            layout.preprocessing.apply(rgb: $0.baseAddress!, count: batch, size: spec.inputSize, into: net.input)
        }
        try net.run()

        for name in outputs {
            let ref = try XCTUnwrap(fixture.outputs[name], "fixture has no \(name)", file: file, line: line)
            let out = try XCTUnwrap(net.output(name), "network has no \(name)", file: file, line: line)
            XCTAssertEqual(out.count, batch * ref.dimension, file: file, line: line)
            guard out.count == batch * ref.dimension else { continue }
            for b in 0..<batch {
                let i = b % count
                let f = Array(out[b * ref.dimension ..< (b + 1) * ref.dimension])
                let e = Self.errors(f, ref, image: i)
                let what = "\(backbone) \(layoutName) \(name) of \(fixture.images[i])\(batch == count ? "" : " (\(b) of a batch of \(batch))")"
                print(String(format: "%@: sample %.2e, norm %.2e, projections %.2e", what, e.sample, e.norm, e.projections))
                XCTAssertLessThanOrEqual(e.sample, Self.tolerance, "\(what): sample relative L2", file: file, line: line)
                XCTAssertLessThanOrEqual(e.norm, Self.tolerance, "\(what): norm", file: file, line: line)
                XCTAssertLessThanOrEqual(e.projections, Self.tolerance, "\(what): projections", file: file, line: line)
            }
        }
        return net.implementations
    }

    /// Relative errors of one output vector against the fixture's summaries.
    static func errors(_ f: [Float], _ ref: Fixture.Output, image i: Int) -> (sample: Double, norm: Double, projections: Double) {
        var num = 0.0, den = 0.0
        for (k, r) in ref.samples[i].enumerated() {
            let d = Double(f[k * ref.sample_stride]) - r
            num += d * d
            den += r * r
        }
        let norm = f.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        var sq = 0.0
        for (j, p) in ref.projections[i].enumerated() {
            let signs = GeneratedWeights.projection(j, dimension: ref.dimension)
            var s = 0.0
            for k in 0..<ref.dimension { s += signs[k] * Double(f[k]) }
            sq += (s - p) * (s - p)
        }
        let rms = (sq / Double(ref.projections[i].count)).squareRoot()
        return ((num / den).squareRoot(), abs(norm - ref.norms[i]) / ref.norms[i], rms / ref.norms[i])
    }
}

extension Backbones {
    /// A spec by id from a list (the experiment backbones may not be in `Backbones.all` yet).
    static func named(_ id: String, in specs: [BackboneSpec]) throws -> BackboneSpec {
        try XCTUnwrap(specs.first { $0.id == id }, "no backbone \(id)")
    }
}

/// The weights generator of tools/goldens/experiment.py, bit for bit:
/// `value = Float(offset + scale * r)`, `r = 2 * ((z >> 11) * 2^-53) - 1`, `z = splitmix64(fnv1a(key) + i * golden)`.
enum GeneratedWeights {
    static func fnv1a(_ key: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    @inline(__always)
    static func r(_ h: UInt64, _ i: Int) -> Double {
        var z = h &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return 2.0 * (Double(z >> 11) * 0x1p-53) - 1.0
    }

    /// (offset, scale) of a tensor, from its key and its siblings (same rules as the script).
    static func rule(_ key: String, shape: [Int], in shapes: [String: [Int]], keras: Bool) throws -> (Double, Double) {
        func kernel(_ fanIn: Int) -> (Double, Double) { (0, (6.0 / Double(fanIn)).squareRoot()) }
        func bias(_ fanIn: Int) -> (Double, Double) { (0, 1.0 / Double(fanIn).squareRoot()) }
        let fixed: [String: (Double, Double)] = ["gamma": (1, 0.25), "beta": (0, 0.1), "mean": (0, 0.1),
                                                 "variance": (1, 0.5), "input_mean": (0.45, 0.05),
                                                 "input_variance": (0.06, 0.02)]
        if keras {
            let slash = key.lastIndex(of: "/")!
            let layer = String(key[..<slash]), weight = String(key[key.index(after: slash)...])
            switch weight {
            case "kernel": return kernel(shape.dropLast().reduce(1, *))
            case "depthwise_kernel": return kernel(shape[0] * shape[1])
            case "bias":
                let k = try XCTUnwrap(shapes["\(layer)/kernel"] ?? shapes["\(layer)/depthwise_kernel"])
                return bias(k.dropLast().reduce(1, *))
            default:
                let kind = ["gamma": "gamma", "beta": "beta", "moving_mean": "mean", "moving_variance": "variance",
                            "mean": "input_mean", "variance": "input_variance"][weight]
                return try XCTUnwrap(kind.flatMap { fixed[$0] }, "no rule for \(key)")
            }
        }
        let dot = key.lastIndex(of: ".")!
        let prefix = String(key[..<dot]), last = String(key[key.index(after: dot)...])
        let isBN = shapes["\(prefix).running_mean"] != nil
        switch last {
        case "running_mean": return fixed["mean"]!
        case "running_var": return fixed["variance"]!
        case "weight": return isBN ? fixed["gamma"]! : kernel(shape.dropFirst().reduce(1, *))
        case "bias":
            return isBN ? fixed["beta"]! : bias(try XCTUnwrap(shapes["\(prefix).weight"]).dropFirst().reduce(1, *))
        default: throw XCTSkip("no generator rule for \(key)")
        }
    }

    static func values(_ key: String, shape: [Int], in shapes: [String: [Int]], keras: Bool) throws -> [Float] {
        let (offset, scale) = try rule(key, shape: shape, in: shapes, keras: keras)
        let h = fnv1a(key)
        let count = shape.reduce(1, *)
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Float(offset + scale * r(h, i)) }
            initialized = count
        }
    }

    nonisolated(unsafe) private static var projections: [String: [Double]] = [:]
    private static let lock = NSLock()

    /// Signs of projection `j` over `dimension` values: -1 where r("projection/j", i) < 0, else +1.
    static func projection(_ j: Int, dimension: Int) -> [Double] {
        lock.lock()
        defer { lock.unlock() }
        let key = "\(j)/\(dimension)"
        if let p = projections[key] { return p }
        let h = fnv1a("projection/\(j)")
        let p = (0..<dimension).map { r(h, $0) < 0 ? -1.0 : 1.0 }
        projections[key] = p
        return p
    }
}
