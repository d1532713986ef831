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
    /// and copies of its features, in the features' row order. The cache is streamed from the store
    /// into a temporary file (`RowFile`, float32): memory holds one row at a time, and training reads
    /// each batch from the file.
    static func loadBlockInputs(_ db: FeatureStore, _ e: ExtractionRecord, _ definition: BlockDefinition) throws -> (train: BlockInputs, test: BlockInputs?) {
        let (train, test) = try load(db, e, vectors: false)   // the rows; their inputs come from the cache
        let count = definition.inputCount
        let testRows = test?.n ?? 0
        let file = try RowFile(dim: count, rows: train.n + testRows)
        // Row of each (image, copy) in the file: the train rows, then the test rows.
        var place: [FeatureKey: Int] = [:]
        for (offset, f) in [(0, train), (train.n, test)] {
            guard let f else { continue }
            for r in 0..<f.n { place[FeatureKey(imageID: f.imageIDs[r], augIndex: Int(f.augIndex[r]))] = offset + r }
        }
        var found = [0, 0]
        try db.forEachBlockInput(extractionID: e.id, blocks: definition.blocks) { key, input in
            guard let row = place[key] else { return }
            try file.write(row: row, input.baseAddress!)
            found[row < train.n ? 0 : 1] += 1
        }
        for (s, f) in [train, test].enumerated() {
            guard let f, found[s] < f.n else { continue }
            let root = (try? db.dataset(id: e.settings.datasetID))??.root ?? "DIR"
            throw Failure(description: "extraction \(e.id) (\(e.settings.backbone)) in \(db.path): \(f.n - found[s]) of \(f.n) \(s == 0 ? "train" : "test") feature rows have no cached block input (\(definition.blocks) block(s)); run `extract --backbone \(e.settings.backbone) --data \(root) --store \(db.path) --cache-blocks \(definition.blocks)` with the extraction's other settings to cache them")
        }
        return (BlockInputs(metadata: train, file: file, fileRows: Array(0..<train.n)),
                test.map { BlockInputs(metadata: $0, file: file, fileRows: Array(train.n..<(train.n + testRows))) })
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
    /// `inputs`: the cache as `loadBlockInputs` read it, when the caller shares one read between
    /// trials (a sweep); nil reads it here.
    static func fineTune(_ db: FeatureStore, _ e: ExtractionRecord, _ definition: BlockDefinition, config: HeadConfig,
                         options: TrainingOptions, sweepID: Int64? = nil, trialKey: String? = nil,
                         inputs: (train: BlockInputs, test: BlockInputs?)? = nil)
        throws -> (result: FineTuneResult, head: HeadRecord, blocks: FineTunedBlocks) {
        let blocks = try fineTuneBlocks(definition, config: config)
        let (train, test) = try inputs ?? loadBlockInputs(db, e, definition)
        let result = try fineTuneHead(config: config, blocks: blocks, train: train, test: test, options: options)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var shapes: [String: [Int]] = [:]
        for s in blocks.trained.requiredTensors() { shapes[s.name] = s.shape }
        let trained = FineTunedBlocks(cachedBlocks: definition.blocks, unfreeze: config.unfreeze,
                                      definitionJSON: String(decoding: try enc.encode(blocks.trained), as: UTF8.self),
                                      tensors: result.blockTensors, tensorShapes: shapes)
        return (result, try headRecord(result.training, config: config, features: ExtractionSet(e), sweepID: sweepID, trialKey: trialKey), trained)
    }
}
