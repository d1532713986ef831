import Backbones
import FeatureStore
import FineTuneCore
import Foundation
import HeadTrainerCore

/// `train-head export --format onnx`: one model from image bytes to class probabilities, the same
/// computation as `extract predict` on an image already resized to the extraction's size and fit:
/// the backbone's preprocessing, the backbone up to the output the head reads (loaded from its
/// weights file as predict loads it), a fine-tuned head's frozen and trained blocks, the head, the
/// calibration temperature and softmax.
enum ONNXExport {
    /// The model for head `headID` of `db`; `weights` replaces the cached backbone weights file.
    static func model(db: FeatureStore, headID: Int64, trained: TrainedHead, weights: URL?) throws -> ONNX.Model {
        let record = try db.head(id: headID)
        let extractions = try db.extractions(of: record)
        guard extractions.count == 1, let e = extractions.first else {
            throw ONNXExportError("head \(headID) runs \(extractions.count) backbones (\(extractions.map(\.settings.backbone).joined(separator: "+"))); "
                                  + "--format onnx exports heads on one backbone (pooled features, another named output, or fine-tuned blocks); "
                                  + "--format safetensors exports this head")
        }
        let s = e.settings
        let source = try FeatureSource(stored: s.backbone)
        let loaded = try source.load(weights: weights)
        guard loaded.weightsSHA256 == s.weightsSHA256 else {
            throw ONNXExportError("head \(headID) was trained on \(s.backbone) weights \(s.weightsSHA256.prefix(12))…, "
                                  + "but \(loaded.weightsFile.path) is \(loaded.weightsSHA256.prefix(12))…; pass the same weights with --weights")
        }
        let tuned = try fineTuned(db: db, headID: headID, extraction: e, spec: source.spec)
        let output = tuned?.output ?? source.output

        var b = ONNXGraphBuilder()
        let prep = loaded.inputPreprocessing
        let input = b.imageInput(size: s.imageSize, mean: prep.mean, std: prep.std, bgr: prep.order == .bgr)
        let network = loaded.network.pruned(to: [output])
        let produced = try b.backbone(network, input: input)
        guard let tensor = network.outputs[output].flatMap({ produced[$0] }) else {
            throw ONNXExportError("\(s.backbone) has no output \(output) to export")
        }
        var x = tensor
        if let tuned {
            if let frozen = tuned.frozen { x = try b.blocks(frozen, tensors: tuned.frozenTensors, input: x, prefix: "frozen_blocks") }
            x = try b.blocks(tuned.trained, tensors: tuned.trainedTensors, input: x, prefix: "blocks")
        }
        x = b.flatten(x, name: "features")
        guard b.shapes[x] == [trained.inputDim] else {
            throw ONNXExportError("\(s.backbone) gives \(b.shapes[x]![0]) features but head \(headID) takes \(trained.inputDim)")
        }
        b.head(x, trained)

        var model = ONNX.Model(graph: b.graph)
        model.graph.name = "head \(headID): \(s.backbone)" + (tuned == nil ? "" : " fine-tuned") + " -> \(trained.classCount) classes"
        model.docString = "Input image: uint8 [N, \(s.imageSize), \(s.imageSize), 3] RGB, resized with fit \(s.fit) as the extraction was; "
            + "output probabilities: float [N, \(trained.classCount)] (softmax of logits / temperature \(trained.temperature ?? 1))."
        model.metadata = [("class_names", trained.classNames.joined(separator: "\n")), ("backbone", s.backbone),
                          ("weights_sha256", s.weightsSHA256), ("image_size", "\(s.imageSize)"), ("fit", s.fit),
                          ("preprocessing", "\(prep)"), ("temperature", "\(trained.temperature ?? 1)")]
        return model
    }

    /// A fine-tuned head's blocks: where they start (the block cache's backbone output) and the
    /// frozen (cache tensors) and trained (head tensors) networks, as `extract predict` runs them.
    struct FineTuned { let output: String; let frozen: FineTuneNetwork?; let frozenTensors: [String: [Float]]
                       let trained: FineTuneNetwork; let trainedTensors: [String: [Float]] }

    static func fineTuned(db: FeatureStore, headID: Int64, extraction e: ExtractionRecord, spec: BackboneSpec) throws -> FineTuned? {
        guard let blocks = try db.fineTunedBlocks(headID: headID) else { return nil }
        guard let cache = try db.blockDefinition(extractionID: e.id, blocks: blocks.cachedBlocks) else {
            throw ONNXExportError("head \(headID) was fine-tuned on the cache of the last \(blocks.cachedBlocks) block(s) of extraction \(e.id), which \(db.path) no longer has")
        }
        guard spec.blockInputOutputs.indices.contains(blocks.cachedBlocks - 1) else {
            throw ONNXExportError("head \(headID) was fine-tuned on the last \(blocks.cachedBlocks) block(s) of \(spec.id), which this version cannot cut there")
        }
        let decoder = JSONDecoder()
        let cached = try decoder.decode(FineTuneNetwork.self, from: Data(cache.definitionJSON.utf8))
        let trained = try decoder.decode(FineTuneNetwork.self, from: Data(blocks.definitionJSON.utf8))
        return FineTuned(output: spec.blockInputOutputs[blocks.cachedBlocks - 1], frozen: try cached.splitForTraining(last: blocks.unfreeze).frozen,
                         frozenTensors: cache.tensors, trained: trained, trainedTensors: blocks.tensors)
    }
}
