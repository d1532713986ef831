import FeatureStore
import FineTuneCore

/// A fine-tuned head's blocks as the store keeps them: the block cache they start from and the
/// network they run, built in one place for every reader (`extract predict`, `train-head
/// export-onnx`, the report's predictions), so none can pair the two records differently.
public struct StoredFineTunedBlocks {
    /// How many of the backbone's last blocks the cache holds the input of.
    public let cachedBlocks: Int
    /// Values of one cached block input.
    public let inputCount: Int
    /// The frozen blocks (the cache's tensors) then the trained ones (the head's tensors).
    public let path: FineTunedBlockPath
}

extension FeatureStore {
    /// The blocks of head `headID`, trained on extraction `extractionID`'s block cache; nil for a head
    /// on pooled features. A cache the store no longer has is an error naming it
    /// (`fineTunedHeadBlocks`), as is a definition that does not decode.
    public func storedFineTunedBlocks(headID: Int64, extractionID: Int64) throws -> StoredFineTunedBlocks? {
        guard let (trained, cache) = try fineTunedHeadBlocks(headID: headID, extractionID: extractionID) else { return nil }
        let path = try FineTunedBlockPath(cachedDefinitionJSON: cache.definitionJSON, cachedTensors: cache.tensors, unfreeze: trained.unfreeze,
                                          trainedDefinitionJSON: trained.definitionJSON, trainedTensors: trained.tensors)
        return StoredFineTunedBlocks(cachedBlocks: trained.cachedBlocks, inputCount: cache.inputCount, path: path)
    }
}
