import ArgumentParser
import FeatureStore
import Foundation
import HeadTrainerCore
import WeightFormats
import WorkbenchCLI

/// `train-head export`: a head to use outside this tool.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a head to a file other tools read: safetensors + a JSON sidecar, or one ONNX model from image to probabilities.",
        discussion: """
        --format safetensors writes the head's tensors under torch.nn names and layouts (bn1, hidden, bn2, \
        out; Linear weights [out, in]) and, next to it (same name, .json), what they need besides \
        themselves: class names, the layers in order with their batch-norm eps, the temperature \
        (`extract predict` divides the logits by it), and the input: the backbone, weights SHA-256, \
        preprocessing, size and fit of the extraction whose pooled features the head takes. A fine-tuned \
        head (`--unfreeze`) also gets its trained blocks' tensors (prefix `blocks.`), their definition, \
        and the backbone output they start from. README shows the 15 lines of PyTorch that apply it.

        --format onnx writes one ONNX model (opset 17, IR version 8) from an image to class \
        probabilities: input `image`, uint8 [N, S, S, 3] RGB (HWC, as NumPy/PIL/OpenCV hold a decoded \
        image; S is the extraction's image size), already resized to S x S as the extraction did (its \
        fit, in the model's metadata: pad keeps the aspect and pads with black around the centered image, \
        stretch resizes each axis, center-crop covers the square and cuts its center; OpenCV INTER_AREA when \
        shrinking both axes, else INTER_LINEAR); output \
        `probabilities`, float [N, classes] in the order of the model's `class_names` metadata. Inside: \
        the backbone's preprocessing (per-channel (pixel - mean) / std, BGR order if the weights want \
        it), the backbone up to the output the head reads (weights from the cache, or --weights FILE, \
        the file the head was trained on), a fine-tuned head's frozen and trained blocks, the head \
        (inference batch norm, no dropout), then softmax(logits / temperature), the temperature \
        `extract predict` applies by default. It computes in fp32 (an extraction in bf16 predicts slightly differently). \
        Heads on concatenated backbones (a+b) are not supported.

        Examples:
          train-head export --store features.sqlite --head 3 --out head3.safetensors
          train-head export --store features.sqlite --head 3 --format onnx --out head3.onnx
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case safetensors, onnx }

    @Option(help: "Feature store holding the head.") var store = "features.sqlite"
    @Option(help: "Head id (see `train-head report` or `extract store info`).") var head: Int64
    @Option(help: "safetensors or onnx.") var format: Format = .safetensors
    @Option(help: "Output file; for safetensors, the sidecar is the same path with the extension .json.") var out: String
    @Option(help: "onnx: the backbone weights file the head was trained on, instead of the cached one (`extract weights fetch` fills the cache).")
    var weights: String?

    struct Sidecar: Encodable {
        struct Input: Encodable {
            let kind: String, backbone: String, extraction_id: Int64, dimension: Int, image_size: Int
            let preprocessing: String, fit: String, precision: String, weights_sha256: String
        }
        struct Blocks: Encodable { let cached_blocks: Int, unfreeze: Int, backbone_output: String, definition: String }
        let head_id: Int64, class_names: [String], layers: [ExportedHead.Layer], temperature: Double
        let input: Input
        let finetuned_blocks: Blocks?
    }

    func validate() throws {
        if weights != nil && format != .onnx {
            throw ValidationError("--weights applies to --format onnx (the safetensors export holds the head only)")
        }
    }

    func run() throws {
        try failing {
            let db = try StoreData.open(store)
            let record = try db.head(id: head)
            let trained = try TrainedHead(encoded: record.weights, source: "head \(head) in \(store)")
            if format == .onnx { return try writeONNX(db: db, trained: trained) }
            guard let e = try db.extraction(id: record.extractionID) else {
                throw StoreData.Failure(description: "head \(head) refers to extraction \(record.extractionID), which \(store) no longer has")
            }
            var exported = ExportedHead(trained)
            let blocks = try db.fineTunedBlocks(headID: head)
            var sidecarBlocks: Sidecar.Blocks? = nil
            if let blocks {
                for name in blocks.tensors.keys.sorted() {
                    exported.tensors.append((name: "blocks." + name, shape: blocks.tensorShapes[name] ?? [blocks.tensors[name]!.count],
                                             values: blocks.tensors[name]!))
                }
                sidecarBlocks = Sidecar.Blocks(cached_blocks: blocks.cachedBlocks, unfreeze: blocks.unfreeze,
                                               backbone_output: "input of the last \(blocks.cachedBlocks) block(s), NCHW (extract --cache-blocks \(blocks.cachedBlocks)); the first \(blocks.cachedBlocks - blocks.unfreeze) run with the backbone's own weights",
                                               definition: blocks.definitionJSON)
            }
            let s = e.settings
            let sidecar = Sidecar(head_id: head, class_names: trained.classNames, layers: exported.layers,
                                  temperature: trained.temperature ?? 1,
                                  input: .init(kind: blocks == nil ? "pooled features" : "block input", backbone: s.backbone,
                                               extraction_id: e.id, dimension: trained.inputDim, image_size: s.imageSize,
                                               preprocessing: s.preprocessing, fit: s.fit, precision: s.precision,
                                               weights_sha256: s.weightsSHA256),
                                  finetuned_blocks: sidecarBlocks)
            let url = URL(fileURLWithPath: out)
            let json = url.deletingPathExtension().appendingPathExtension("json")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try Safetensors.encode(exported.tensors, metadata: ["format": "pt"]).write(to: url, options: .atomic)
                try encoder.encode(sidecar).write(to: json, options: .atomic)
            } catch let error as CocoaError {
                throw StoreData.Failure(description: "cannot write \(url.path) or \(json.path): \(error.localizedDescription)")
            }
            print("wrote \(url.path) (\(exported.tensors.count) tensors) and \(json.path)")
        }
    }

    func writeONNX(db: FeatureStore, trained: TrainedHead) throws {
        let model = try ONNXExport.model(db: db, headID: head, trained: trained, weights: weights.map { URL(fileURLWithPath: $0) })
        let data = ONNX.encode(model)
        let url = URL(fileURLWithPath: out)
        do { try data.write(to: url, options: .atomic) } catch {
            throw StoreData.Failure(description: "cannot write \(url.path): \(error.localizedDescription)")
        }
        print("wrote \(url.path) (\(data.count) bytes, \(model.graph.nodes.count) nodes, \(model.graph.initializers.count) initializers)")
    }
}
