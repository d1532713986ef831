import FeatureStore
import FineTuneCore
import Foundation
import HeadTrainerCore
import WorkbenchSupport

/// `train-head --unfreeze M`: the block cache of the store, read as the fine-tuner needs it.
extension StoreData {
    /// The extraction to fine-tune on and its smallest block cache of at least `unfreeze` blocks:
    /// of extraction `id`, or of the extractions of `backbone`.
    static func blockCache(_ db: FeatureStore, id: Int64? = nil, backbone: String?, unfreeze: Int) throws -> (ExtractionRecord, BlockDefinition) {
        let candidates: [ExtractionRecord]
        if let id {
            candidates = [try extraction(in: db, id: id, backbone: nil)]
        } else {
            let key = BackboneName.key(backbone ?? "")
            candidates = try db.extractions().filter { BackboneName.key($0.settings.backbone) == key }
            if candidates.isEmpty { _ = try extraction(in: db, id: nil, backbone: backbone) }   // throws its error
        }
        let name = candidates.first?.settings.backbone ?? backbone ?? "NAME"
        let extractCommand = "extract --backbone \(name) --data DIR --store \(db.path) --cache-blocks \(unfreeze)"
        var largest = 0
        for e in candidates {
            for n in 1...64 {
                guard let d = try db.blockDefinition(extractionID: e.id, blocks: n) else { continue }
                if n >= unfreeze { return (e, d) }
                largest = max(largest, n)
            }
        }
        let which = id.map { "extraction \($0) (\(name))" } ?? name
        guard largest > 0 else {
            throw Failure(description: "\(db.path) has no block cache for \(which); run `\(extractCommand)` (with the extraction's other settings: --augment, --size, ...) first")
        }
        throw Failure(description: "\(db.path) caches only the last \(largest) block(s) of \(which); --unfreeze \(unfreeze) needs a cache of \(unfreeze): run `\(extractCommand)` (with the extraction's other settings: --augment, --size, ...)")
    }

    /// Train (all copies) and test (copy 0) block inputs of extraction `e`, with the labels, images
    /// and copies of its features, in the features' row order.
    static func loadBlockInputs(_ db: FeatureStore, _ e: ExtractionRecord, _ definition: BlockDefinition) throws -> (train: LabeledFeatures, test: LabeledFeatures?) {
        let (train, test) = try load(db, e)
        let cache = try db.loadBlockInputs(extractionID: e.id, blocks: definition.blocks)
        var row: [FeatureKey: Int] = [:]
        for (i, k) in cache.keys.enumerated() { row[k] = i }
        let count = definition.inputCount
        func inputs(_ f: LabeledFeatures, _ split: String) throws -> LabeledFeatures {
            var values = [Float](repeating: 0, count: f.n * count)
            var missing = 0
            cache.values.withUnsafeBufferPointer { src in
                values.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<f.n {
                        guard let i = row[FeatureKey(imageID: f.imageIDs[r], augIndex: Int(f.augIndex[r]))] else { missing += 1; continue }
                        (dst.baseAddress! + r * count).update(from: src.baseAddress! + i * count, count: count)
                    }
                }
            }
            if missing > 0 {
                let root = (try? db.dataset(id: e.settings.datasetID))??.root ?? "DIR"
                throw Failure(description: "extraction \(e.id) (\(e.settings.backbone)) in \(db.path): \(missing) of \(f.n) \(split) feature rows have no cached block input (\(definition.blocks) block(s)); run `extract --backbone \(e.settings.backbone) --data \(root) --store \(db.path) --cache-blocks \(definition.blocks)` with the extraction's other settings to cache them")
            }
            return LabeledFeatures(dim: count, values: values, labels: f.labels, imageIDs: f.imageIDs, augIndex: f.augIndex,
                                   classNames: f.classNames)
        }
        return (try inputs(train, "train"), try test.map { try inputs($0, "test") })
    }

    /// The blocks `--unfreeze` trains (the last `unfreeze` cached blocks + head conv) and the ones run
    /// frozen before them.
    static func fineTuneBlocks(_ definition: BlockDefinition, config: HeadConfig) throws -> FineTuneBlocks {
        let network: FineTuneNetwork
        do { network = try JSONDecoder().decode(FineTuneNetwork.self, from: Data(definition.definitionJSON.utf8)) } catch {
            throw Failure(description: "the stored definition of the last \(definition.blocks) block(s) is not a block network (\(error)); re-run extract --cache-blocks into a new store")
        }
        let (frozen, trained) = try network.splitForTraining(last: config.unfreeze)
        return FineTuneBlocks(frozen: frozen, trained: trained, tensors: definition.tensors,
                              blockLearningRate: config.effectiveBlockLR, batchNorm: config.bnMode)
    }

    /// Fine-tunes the last `config.unfreeze` blocks with a head on extraction `e`'s block cache
    /// `definition`: the result and what the store keeps of it (`FeatureStore.saveFineTunedHead`).
    static func fineTune(_ db: FeatureStore, _ e: ExtractionRecord, _ definition: BlockDefinition, config: HeadConfig,
                         options: TrainingOptions, sweepID: Int64? = nil, trialKey: String? = nil)
        throws -> (result: FineTuneResult, head: HeadRecord, blocks: FineTunedBlocks) {
        let blocks = try fineTuneBlocks(definition, config: config)
        let (train, test) = try loadBlockInputs(db, e, definition)
        let result = try fineTuneHead(config: config, blocks: blocks, train: train, test: test, options: options)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var shapes: [String: [Int]] = [:]
        for s in blocks.trained.requiredTensors() { shapes[s.name] = s.shape }
        let trained = FineTunedBlocks(cachedBlocks: definition.blocks, unfreeze: config.unfreeze,
                                      definitionJSON: String(decoding: try enc.encode(blocks.trained), as: UTF8.self),
                                      tensors: result.blockTensors, tensorShapes: shapes)
        return (result, try headRecord(result.training, config: config, extraction: e, sweepID: sweepID, trialKey: trialKey), trained)
    }
}
