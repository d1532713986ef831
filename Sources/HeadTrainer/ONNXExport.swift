import Backbones
import FeatureStore
import FineTuneCore
import Foundation
import HeadTrainerCore
import StoredFineTune

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
        if let path = tuned?.path {
            if let frozen = path.frozen { x = try b.blocks(frozen, tensors: path.frozenTensors, input: x, prefix: "frozen_blocks") }
            x = try b.blocks(path.trained, tensors: path.trainedTensors, input: x, prefix: "blocks")
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
    /// frozen (cache tensors) and trained (head tensors) networks, as `extract predict` runs them;
    /// nil for a head on pooled features.
    static func fineTuned(db: FeatureStore, headID: Int64, extraction e: ExtractionRecord, spec: BackboneSpec) throws -> (output: String, path: FineTunedBlockPath)? {
        guard let stored = try db.storedFineTunedBlocks(headID: headID, extractionID: e.id) else { return nil }
        return (try spec.blockInputOutput(blocks: stored.cachedBlocks, head: headID), stored.path)
    }
}
