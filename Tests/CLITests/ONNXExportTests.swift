import FeatureStore
import Foundation
import HeadTrainerCore
import XCTest

/// `train-head export --format onnx` (issue 16) on a small EfficientNet-Lite0 store: the file's
/// structure read back with an independent protobuf reader (below), the head's tensors inside it,
/// errors; and `extract predict` against the probabilities onnxruntime computed from an exported
/// model (Fixtures/onnx, written by tools/goldens/export_onnx.py).
final class ONNXExportTests: XCTestCase {
    /// A protobuf message as its fields: number -> values in order (a varint, 4 bytes for a fixed32,
    /// or the bytes of a length-delimited field). Enough of the wire format to read ONNX.
    struct Message {
        enum Value { case varint(UInt64), bytes(Data) }
        var fields: [Int: [Value]] = [:]

        init(_ data: Data) throws {
            let b = [UInt8](data)
            var i = 0
            func varint() throws -> UInt64 {
                var v: UInt64 = 0, shift: UInt64 = 0
                while true {
                    guard i < b.count, shift < 64 else { throw CocoaError(.coderReadCorrupt) }
                    let byte = b[i]; i += 1
                    v |= UInt64(byte & 0x7f) << shift
                    if byte < 0x80 { return v }
                    shift += 7
                }
            }
            while i < b.count {
                let key = try varint()
                let value: Value
                switch key & 7 {
                case 0: value = .varint(try varint())
                case 2:
                    let n = Int(try varint())
                    guard n >= 0, i + n <= b.count else { throw CocoaError(.coderReadCorrupt) }
                    value = .bytes(Data(b[i..<(i + n)])); i += n
                case 5:
                    guard i + 4 <= b.count else { throw CocoaError(.coderReadCorrupt) }
                    value = .bytes(Data(b[i..<(i + 4)])); i += 4
                default: throw CocoaError(.coderReadCorrupt)
                }
                fields[Int(key >> 3), default: []].append(value)
            }
        }

        func ints(_ f: Int) -> [Int] {
            (fields[f] ?? []).flatMap { v -> [Int] in
                switch v {
                case .varint(let x): return [Int(Int64(bitPattern: x))]
                case .bytes(let d): return (try? Message.packed(d)) ?? []
                }
            }
        }
        func int(_ f: Int) -> Int? { ints(f).first }
        func data(_ f: Int) -> [Data] { (fields[f] ?? []).compactMap { if case .bytes(let d) = $0 { return d }; return nil } }
        func strings(_ f: Int) -> [String] { data(f).map { String(decoding: $0, as: UTF8.self) } }
        func string(_ f: Int) -> String? { strings(f).first }
        func messages(_ f: Int) throws -> [Message] { try data(f).map(Message.init) }
        func message(_ f: Int) throws -> Message? { try messages(f).first }

        static func packed(_ d: Data) throws -> [Int] {
            var out: [Int] = []
            var v: UInt64 = 0, shift: UInt64 = 0
            for byte in d {
                v |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { out.append(Int(Int64(bitPattern: v))); v = 0; shift = 0 } else { shift += 7 }
            }
            guard shift == 0 else { throw CocoaError(.coderReadCorrupt) }
            return out
        }
    }

    /// A graph input or output: name, element type, dims (-1 for a symbolic one).
    func valueInfo(_ m: Message) throws -> (name: String, type: Int, dims: [Int]) {
        let tensor = try XCTUnwrap(try m.message(2)?.message(1))
        let dims = try XCTUnwrap(try tensor.message(2)).messages(1).map { $0.int(1) ?? -1 }
        return (m.string(1) ?? "", tensor.int(1) ?? 0, dims)
    }

    func floats(_ d: Data) -> [Float] {
        stride(from: 0, to: d.count, by: 4).map { o in
            Float(bitPattern: UInt32(d[d.startIndex + o]) | UInt32(d[d.startIndex + o + 1]) << 8
                  | UInt32(d[d.startIndex + o + 2]) << 16 | UInt32(d[d.startIndex + o + 3]) << 24)
        }
    }

    /// What the tests look at in an exported model, after the checks every export must pass: IR
    /// version 8, opset 17, input uint8 [N, 224, 224, 3] `image`, output float [N, 2] `probabilities`,
    /// initializers with raw data of their declared size and unique names, supported op types only, in
    /// an order where every node's inputs exist before it runs, ending in Softmax.
    struct ReadModel { let classNames: String?; let initializers: [String: (dims: [Int], values: [Float])]; let nodes: [Message] }

    func read(_ url: URL) throws -> ReadModel {
        // ModelProto: ir_version 8, opset_import {domain "", version 17}, graph; class names in metadata_props.
        let model = try Message(try Data(contentsOf: url))
        XCTAssertEqual(model.int(1), 8)
        let opsets = try model.messages(8)
        XCTAssertEqual(opsets.count, 1)
        XCTAssertEqual(opsets.first?.string(1) ?? "", "")
        XCTAssertEqual(opsets.first?.int(2), 17)
        let metadata = try model.messages(14).map { ($0.string(1) ?? "", $0.string(2) ?? "") }
        let graph = try XCTUnwrap(try model.message(7))

        // Input uint8 [N, 224, 224, 3] `image`, output float [N, 2] `probabilities`.
        let inputs = try graph.messages(11).map(valueInfo), outputs = try graph.messages(12).map(valueInfo)
        XCTAssertEqual(inputs.map(\.name), ["image"])
        XCTAssertEqual(inputs.first?.type, 2)
        XCTAssertEqual(inputs.first?.dims, [-1, 224, 224, 3])
        XCTAssertEqual(outputs.map(\.name), ["probabilities"])
        XCTAssertEqual(outputs.first?.type, 1)
        XCTAssertEqual(outputs.first?.dims, [-1, 2])

        // Initializers: raw little-endian data of the declared size, named once each.
        var initializers: [String: (dims: [Int], values: [Float])] = [:]
        for t in try graph.messages(5) {
            let name = try XCTUnwrap(t.string(8)), dims = t.ints(1), type = try XCTUnwrap(t.int(2))
            let raw = try XCTUnwrap(t.data(9).first)
            XCTAssertEqual(raw.count, dims.reduce(1, *) * (type == 7 ? 8 : 4), name)
            XCTAssertNil(initializers[name], "initializer \(name) twice")
            initializers[name] = (dims, type == 1 ? floats(raw) : [])
        }
        let nodes = try graph.messages(1)
        let ops = nodes.map { $0.string(4) ?? "" }
        XCTAssertTrue(Set(ops).isSubset(of: ["Cast", "Transpose", "Gather", "Sub", "Div", "Conv", "Add", "Mul", "Relu", "Clip", "Sigmoid",
                                             "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Gemm", "BatchNormalization", "Softmax"]),
                      "\(Set(ops))")
        XCTAssertEqual(ops.last, "Softmax")
        var available = Set(initializers.keys).union(["image"])
        for n in nodes {
            for i in n.strings(1) { XCTAssertTrue(available.contains(i), "\(n.string(3) ?? "") reads \(i) before it exists") }
            available.formUnion(n.strings(2))
        }
        XCTAssertTrue(available.contains("probabilities"))
        return ReadModel(classNames: metadata.first { $0.0 == "class_names" }?.1, initializers: initializers, nodes: nodes)
    }

    /// A Lite0 store (fp32) of 2 x 3 scenes6 training images, 1 test image each.
    func lite0Store(_ extra: [String] = []) throws -> URL {
        let data = try CLI.smallDataset()
        let store = data.deletingLastPathComponent().appendingPathComponent("f.sqlite")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--precision", "fp32", "--data", data.path,
                                        "--store", store.path, "--quiet"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return store
    }

    /// Trains a head on `store` with `args`, exports it as ONNX: its id, file and what `read` saw.
    func trainAndExport(_ store: URL, _ args: [String]) throws -> (id: Int64, url: URL, model: ReadModel) {
        let train = try CLI.run("train-head", ["--store", store.path, "--backbone", "efficientnet_lite0", "--val-split", "0.34", "--json"] + args)
        XCTAssertEqual(train.status, 0, train.stderr)
        struct Trained: Decodable { let head_id: Int64 }
        let id = try JSONDecoder().decode(Trained.self, from: Data(train.stdout.utf8)).head_id
        let out = store.deletingLastPathComponent().appendingPathComponent("head\(id).onnx")
        let r = try CLI.run("train-head", ["export", "--store", store.path, "--head", "\(id)", "--format", "onnx", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (id, out, try read(out))
    }

    func testExportedModelHasTheBackboneTheHeadAndOnlySupportedOps() throws {
        let store = try lite0Store()
        let (id, out, m) = try trainAndExport(store, ["--hidden", "4", "--epochs", "2"])
        let head = try TrainedHead(encoded: try FeatureStore(path: store.path, mode: .readOnly).head(id: id).weights)
        XCTAssertEqual(m.classNames, "forest\nsea")
        let initializers = m.initializers, nodes = m.nodes
        // The head's tensors, as the store holds them (our kernels are [in, out], Gemm's B unTransposed).
        let hidden = try XCTUnwrap(head.weights.hidden)
        XCTAssertEqual(initializers["head.hidden.kernel"]?.dims, [1280, 4])
        XCTAssertEqual(initializers["head.hidden.kernel"]?.values, hidden.kernel)
        XCTAssertEqual(initializers["head.hidden.bias"]?.values, hidden.bias)
        XCTAssertEqual(initializers["head.out.kernel"]?.dims, [4, 2])
        XCTAssertEqual(initializers["head.out.kernel"]?.values, head.weights.output.kernel)
        XCTAssertEqual(initializers["head.out.bias"]?.values, head.weights.output.bias)
        let bn1 = try XCTUnwrap(head.weights.inputBatchNorm)
        let scale = try XCTUnwrap(initializers["head.bn1.scale"]?.values)
        XCTAssertEqual(scale.count, 1280)
        XCTAssertEqual(scale[7], bn1.gamma[7] / (bn1.movingVariance[7] + bn1.epsilon).squareRoot(), accuracy: 1e-6)
        if let t = head.temperature, t != 1 { XCTAssertEqual(initializers["head.temperature"]?.values, [Float(t)]) }
        // Lite0's preprocessing ((x - 127) / 128 on RGB) and its 49 convolutions (BN folded: weight + bias each).
        XCTAssertEqual(initializers["preprocess.mean"]?.values, [127, 127, 127])
        XCTAssertEqual(initializers["preprocess.std"]?.values, [128, 128, 128])
        XCTAssertEqual(initializers["backbone/stem.weight"]?.dims, [32, 3, 3, 3])
        XCTAssertEqual(initializers["backbone/head.weight"]?.dims, [1280, 320, 1, 1])
        XCTAssertEqual(initializers.keys.filter { $0.hasPrefix("backbone/") }.count, 49 * 2)

        let ops = nodes.map { $0.string(4) ?? "" }
        XCTAssertEqual(ops.filter { $0 == "Conv" }.count, 49)
        // TensorFlow SAME on the stride-2 stem at 224: the extra pixel at the bottom and right.
        let stem = try XCTUnwrap(nodes.first { $0.string(3) == "backbone/stem" })
        let pads = try stem.messages(5).first { $0.string(1) == "pads" }
        XCTAssertEqual(pads?.ints(8), [0, 0, 1, 1])

        // Weights missing from this machine: the error names the file looked for and the fix.
        let empty = try CLI.temporaryDirectory()
        let missing = try CLI.run("train-head", ["export", "--store", store.path, "--head", "\(id)", "--format", "onnx", "--out", out.path + "2"],
                                  environment: ["WORKBENCH_WEIGHTS_DIR": empty.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains(empty.appendingPathComponent("efficientnet-lite0-57934424.pth").path), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("--weights FILE"), missing.stderr)
        let wrong = try CLI.run("train-head", ["export", "--store", store.path, "--head", "\(id)", "--format", "onnx", "--out", out.path + "2",
                                                "--weights", empty.appendingPathComponent("lite0.pth").path])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("lite0.pth"), wrong.stderr)
    }

    /// A fine-tuned head (`--cache-blocks 1`, `--unfreeze 1`): the backbone stops at the input of
    /// `_blocks.15`, then the trained block and the 1x1 head convolution with the head's own tensors
    /// (unfolded batch norm with the running statistics), then the head.
    func testFineTunedHeadExportsItsTrainedBlocks() throws {
        let store = try lite0Store(["--cache-blocks", "1"])
        let (id, _, m) = try trainAndExport(store, ["--hidden", "0", "--epochs", "1", "--unfreeze", "1"])
        let blocks = try XCTUnwrap(try FeatureStore(path: store.path, mode: .readOnly).fineTunedBlocks(headID: id))
        let expand = try XCTUnwrap(m.initializers["blocks/_blocks.15._expand_conv.weight"])
        XCTAssertEqual(expand.dims, [1152, 192, 1, 1])
        XCTAssertEqual(expand.values, blocks.tensors["_blocks.15._expand_conv.weight"])
        XCTAssertEqual(m.initializers["blocks/_bn1.running_var"]?.values, blocks.tensors["_bn1.running_var"])
        // 45 backbone convolutions (stem, blocks 0-14) with folded BN; 4 in the blocks (expand, depthwise, project, head) with BN nodes.
        XCTAssertEqual(m.initializers.keys.filter { $0.hasPrefix("backbone/") }.count, 45 * 2)
        let ops = m.nodes.map { $0.string(4) ?? "" }
        XCTAssertEqual(ops.filter { $0 == "Conv" }.count, 49)
        XCTAssertEqual(ops.filter { $0 == "BatchNormalization" }.count, 4)
        XCTAssertEqual(ops.filter { $0 == "GlobalAveragePool" }.count, 1)
    }

    /// onnxruntime's probabilities from the exported model (fixture) == `extract predict`'s, with the
    /// fixture's head in a store of the same extraction settings (Lite0, 224, pad, fp32).
    func testPredictMatchesOnnxRuntimeOnTheExportedModel() throws {
        guard FileManager.default.fileExists(atPath: CLI.scenes6.path) else { throw XCTSkip("scenes6 not beside the repo") }
        struct Expected: Decodable { let images: [String]; let class_names: [String]; let probabilities: [[Float]] }
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "onnx", withExtension: nil, subdirectory: "Fixtures"))
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
        let blob = try Data(contentsOf: fixtures.appendingPathComponent("head.bin"))
        let store = try lite0Store()
        let id = try FeatureStore(path: store.path, mode: .readWrite).saveHead(
            HeadRecord(extractionID: 1, config: "{}", classNames: expected.class_names, weights: blob, metrics: "{}", curves: "{}"))
        let r = try CLI.run("extract", ["predict", "--store", store.path, "--head", "\(id)", "--json", "--top", "\(expected.class_names.count)"]
                            + expected.images.map { CLI.scenes6.appendingPathComponent($0).path })
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Ranked: Decodable { struct Top: Decodable { let index: Int; let probability: Float }; let top: [Top] }
        let rows = try JSONDecoder().decode([Ranked].self, from: Data(r.stdout.utf8))
        XCTAssertEqual(rows.count, expected.probabilities.count)
        for (row, want) in zip(rows, expected.probabilities) {
            XCTAssertEqual(row.top.count, want.count)
            for t in row.top { XCTAssertEqual(t.probability, want[t.index], accuracy: 1e-4, "class \(t.index)") }
        }
    }
}

extension ConcatenatedBackbonesTests {
    func testOnnxExportOfAHeadOnTwoBackbonesSaysWhatIsSupported() throws {
        let (store, _) = try syntheticStore()
        let ab = try trainJSON(store, ["--backbone", "tiny_a+tiny_b", "--hidden", "0"])
        let r = try CLI.run("train-head", ["export", "--store", store.path, "--head", "\(ab.head_id)", "--format", "onnx",
                                            "--out", store.deletingLastPathComponent().appendingPathComponent("ab.onnx").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("runs 2 backbones (tiny_a+tiny_b)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("exports heads on one backbone"), r.stderr)
    }
}
