import Foundation

/// What an extraction stores: a backbone's default feature (`vgg16`) or another named output of
/// its network (`vgg16:fc7`). The store's backbone column holds this name, so features of two
/// outputs are two extractions that never mix, and `predict` (and `train-head export --format onnx`)
/// recomputes the same output.
public struct FeatureSource {
    public static let defaultOutput = "features"
    public let spec: BackboneSpec
    public let output: String

    public init(spec: BackboneSpec, output: String) {
        self.spec = spec
        self.output = output
    }

    /// Parses a stored name, e.g. `resnet50` or `vgg16:fc7`.
    public init(stored: String) throws {
        let parts = stored.split(separator: ":", maxSplits: 1).map(String.init)
        spec = try Backbones.named(parts.first ?? stored)
        output = parts.count == 2 ? parts[1] : Self.defaultOutput
    }

    public var storedName: String { output == Self.defaultOutput ? spec.id : "\(spec.id):\(output)" }
    /// Outputs other than the pooled features live in the classifier (VGG16's fc7).
    public var needsClassifier: Bool { output != Self.defaultOutput }

    /// Loads the backbone with what this output needs; a file without that output is a clear error.
    public func load(weights: URL?) throws -> LoadedBackbone {
        let loaded = try LoadedBackbone(spec, weights: weights, classifier: needsClassifier)
        guard loaded.network.outputs[output] != nil else {
            let offered = loaded.network.outputs.keys.filter { $0 != "logits" && !$0.hasPrefix("block_input.") }.sorted()
            let withClassifier = WeightsRegistry.published(for: spec.id).filter { $0.note.contains("with classifier") }.map(\.fileName)
            throw BackboneError.missingOutput("\(loaded.weightsFile.path) gives \(spec.id) the outputs \(offered.joined(separator: ", ")), not '\(output)'"
                                              + (needsClassifier ? "; \(output) needs a weights file with the classifier"
                                                 + (withClassifier.isEmpty ? "" : " (\(withClassifier.joined(separator: ", ")))") : ""))
        }
        return loaded
    }
}
