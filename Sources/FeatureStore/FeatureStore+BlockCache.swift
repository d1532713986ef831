import Foundation
import GRDB

/// The last blocks of an extraction's backbone, as `extract --cache-blocks N` stores them: the
/// architecture (opaque JSON, a `FineTuneNetwork` for the fine-tuner), the shape of one input and
/// the blocks' tensors (PyTorch state-dict names, float32).
public struct BlockDefinition: Equatable, Sendable {
    public var blocks: Int
    public var definitionJSON: String
    /// Channels, height, width of one cached input.
    public var inputShape: [Int]
    /// How the inputs are stored (f16 halves the cache; f32 keeps the engine's values exactly).
    public var dtype: FeatureDType
    public var tensors: [String: [Float]]
    public var tensorShapes: [String: [Int]]

    public init(blocks: Int, definitionJSON: String, inputShape: [Int], dtype: FeatureDType = .f16,
                tensors: [String: [Float]], tensorShapes: [String: [Int]]) {
        self.blocks = blocks; self.definitionJSON = definitionJSON; self.inputShape = inputShape; self.dtype = dtype
        self.tensors = tensors; self.tensorShapes = tensorShapes
    }

    public var inputCount: Int { inputShape.reduce(1, *) }

}

/// Named float32 tensors as the store keeps them: `tensor_index`, JSON [{"name", "shape"}] with names
/// sorted, and `tensors`, their little-endian values concatenated in that order.
enum StoredTensors {
    struct IndexEntry: Codable { var name: String; var shape: [Int] }

    static func encode(_ tensors: [String: [Float]], shapes: [String: [Int]]) throws -> (index: String, blob: Data) {
        let names = tensors.keys.sorted()
        let index = names.map { IndexEntry(name: $0, shape: shapes[$0] ?? [tensors[$0]!.count]) }
        var blob = Data()
        for n in names { blob.append(VectorCodec.encode(tensors[n]!, as: .f32)) }
        return (String(decoding: try JSONEncoder().encode(index), as: UTF8.self), blob)
    }

    /// `what` names the row in errors ("block definition of extraction 3 (2 blocks)").
    static func decode(index: String, blob: Data, path: String, what: String) throws -> (tensors: [String: [Float]], shapes: [String: [Int]]) {
        let entries: [IndexEntry]
        do { entries = try JSONDecoder().decode([IndexEntry].self, from: Data(index.utf8)) } catch {
            throw StoreError.corrupt(path: path, reason: "\(what): tensor_index is not a list of {name, shape}")
        }
        var tensors: [String: [Float]] = [:], shapes: [String: [Int]] = [:]
        var offset = 0
        for e in entries {
            let bytes = e.shape.reduce(1, *) * 4
            guard bytes >= 0, offset + bytes <= blob.count else {
                throw StoreError.corrupt(path: path, reason: "\(what): tensor \(e.name) runs past the end of the stored tensors (\(blob.count) bytes)")
            }
            tensors[e.name] = VectorCodec.decode(blob.subdata(in: blob.startIndex + offset ..< blob.startIndex + offset + bytes), as: .f32)
            shapes[e.name] = e.shape
            offset += bytes
        }
        return (tensors, shapes)
    }
}

/// The blocks of a fine-tuned head (`train-head --unfreeze M` on a cache of `cachedBlocks` blocks):
/// the trained last `unfreeze` blocks' architecture (a `FineTuneNetwork` as JSON) and tensors.
public struct FineTunedBlocks: Equatable, Sendable {
    public var cachedBlocks: Int
    public var unfreeze: Int
    public var definitionJSON: String
    public var tensors: [String: [Float]]
    public var tensorShapes: [String: [Int]]
    public init(cachedBlocks: Int, unfreeze: Int, definitionJSON: String, tensors: [String: [Float]], tensorShapes: [String: [Int]]) {
        self.cachedBlocks = cachedBlocks; self.unfreeze = unfreeze; self.definitionJSON = definitionJSON
        self.tensors = tensors; self.tensorShapes = tensorShapes
    }
}

/// One batch of block inputs, stored with the batch's features (`insertFeatures(extractionID:rows:blockInputs:)`).
public struct BlockInputRows: Sendable {
    public var blocks: Int
    /// `values.count` must equal the definition's input count (C x H x W); stored in its dtype.
    public var rows: [FeatureRow]
    public init(blocks: Int, rows: [FeatureRow]) { self.blocks = blocks; self.rows = rows }
}

/// Cached block inputs read back: `keys[i]`'s input is `values[i * count ..< (i + 1) * count]`.
public struct BlockInputMatrix: Sendable {
    public var definition: BlockDefinition
    public var keys: [FeatureKey]
    public var values: [Float]
}

extension FeatureStore {
    /// Records the blocks of an extraction; a definition already stored for (extraction, blocks) is kept.
    public func saveBlockDefinition(extractionID: Int64, _ d: BlockDefinition) throws {
        try requireWritable("store a block definition")
        _ = try requireExtraction(extractionID)
        guard d.inputShape.count == 3, d.inputShape.allSatisfy({ $0 > 0 }), d.blocks >= 1 else {
            throw StoreError.invalidArgument(path: path, reason: "block definition of extraction \(extractionID): input shape \(d.inputShape) must be 3 positive sizes and blocks \(d.blocks) >= 1")
        }
        let (index, blob) = try StoredTensors.encode(d.tensors, shapes: d.tensorShapes)
        try write("storing the block definition of extraction \(extractionID)") { db in
            try db.execute(sql: """
                INSERT INTO block_definitions(extraction_id, blocks, definition, input_channels, input_height, input_width, dtype, tensor_index, tensors)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(extraction_id, blocks) DO NOTHING
                """, arguments: [extractionID, d.blocks, d.definitionJSON, d.inputShape[0], d.inputShape[1], d.inputShape[2],
                                 d.dtype.rawValue, index, blob])
        }
    }

    /// The stored definition of an extraction's last `blocks` blocks, or nil.
    public func blockDefinition(extractionID: Int64, blocks: Int) throws -> BlockDefinition? {
        try read("reading the block definition of extraction \(extractionID)") { db in
            guard try Schema.hasBlockCache(db) else { return nil }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT definition, input_channels, input_height, input_width, tensor_index, tensors, dtype
                FROM block_definitions WHERE extraction_id = ? AND blocks = ?
                """, arguments: [extractionID, blocks]) else { return nil }
            let (tensors, shapes) = try StoredTensors.decode(index: row[4], blob: row[5], path: path,
                                                             what: "block definition of extraction \(extractionID) (\(blocks) blocks)")
            let dtype = FeatureDType(rawValue: row[6]) ?? .f16
            return BlockDefinition(blocks: blocks, definitionJSON: row[0], inputShape: [row[1], row[2], row[3]], dtype: dtype,
                                   tensors: tensors, tensorShapes: shapes)
        }
    }

    /// The (image, copy) pairs whose input to the last `blocks` blocks is stored.
    public func existingBlockInputKeys(extractionID: Int64, blocks: Int) throws -> Set<FeatureKey> {
        try read("reading the block input keys of extraction \(extractionID)") { db in
            guard try Schema.hasBlockCache(db) else { return [] }
            let rows = try Row.fetchCursor(db, sql: "SELECT image_id, aug_index FROM block_inputs WHERE extraction_id = ? AND blocks = ?",
                                           arguments: [extractionID, blocks])
            var keys = Set<FeatureKey>()
            while let row = try rows.next() { keys.insert(FeatureKey(imageID: row[0], augIndex: row[1])) }
            return keys
        }
    }

    /// All cached inputs of an extraction's last `blocks` blocks, ordered by image and copy.
    public func loadBlockInputs(extractionID: Int64, blocks: Int) throws -> BlockInputMatrix {
        var keys: [FeatureKey] = [], values: [Float] = []
        let definition = try forEachBlockInput(extractionID: extractionID, blocks: blocks) { key, input in
            keys.append(key)
            values += input
        }
        return BlockInputMatrix(definition: definition, keys: keys, values: values)
    }

    /// Streams the cached inputs of an extraction's last `blocks` blocks, ordered by image and copy:
    /// `body` gets each (image, copy) with its input decoded to float32 in a buffer reused for the
    /// next row (one row in memory at a time). Returns the definition.
    @discardableResult
    public func forEachBlockInput(extractionID: Int64, blocks: Int,
                                  _ body: (FeatureKey, UnsafeBufferPointer<Float>) throws -> Void) throws -> BlockDefinition {
        guard let definition = try blockDefinition(extractionID: extractionID, blocks: blocks) else {
            throw StoreError.invalidArgument(path: path, reason: "extraction \(extractionID) has no cache of its last \(blocks) block(s); run extract --cache-blocks \(blocks) with the same settings")
        }
        let count = definition.inputCount, bytes = count * definition.dtype.bytesPerValue
        var buffer = [Float](repeating: 0, count: count)
        try read("loading the block inputs of extraction \(extractionID)") { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT image_id, aug_index, vector FROM block_inputs WHERE extraction_id = ? AND blocks = ?
                ORDER BY image_id, aug_index
                """, arguments: [extractionID, blocks])
            while let row = try rows.next() {
                let key = FeatureKey(imageID: row[0], augIndex: row[1])
                try buffer.withUnsafeMutableBufferPointer { out in
                    let ok = try row.withUnsafeData(atIndex: 2) { (blob: Data?) -> Bool in
                        guard let blob, blob.count == bytes else { return false }
                        blob.withUnsafeBytes { VectorCodec.decode($0, as: definition.dtype, into: out) }
                        return true
                    }
                    guard ok else {
                        throw StoreError.invalidArgument(path: path, reason: "block input of image \(key.imageID) copy \(key.augIndex) in extraction \(extractionID) is not \(bytes) bytes (\(definition.dtype.rawValue) x \(definition.inputShape)); re-run extract --cache-blocks \(blocks) into a new store")
                    }
                    try body(key, UnsafeBufferPointer(out))
                }
            }
        }
        return definition
    }

    /// Saves a fine-tuned head: its row in heads and its trained blocks, in one transaction.
    @discardableResult
    public func saveFineTunedHead(_ head: HeadRecord, blocks: FineTunedBlocks) throws -> Int64 {
        let label = try checkHead(head)
        guard try blockDefinition(extractionID: head.extractionID, blocks: blocks.cachedBlocks) != nil else {
            throw StoreError.invalidArgument(path: path, reason: "fine-tuned head for extraction \(head.extractionID): the store has no cache of its last \(blocks.cachedBlocks) block(s)")
        }
        let (index, blob) = try StoredTensors.encode(blocks.tensors, shapes: blocks.tensorShapes)
        return try write("saving the fine-tuned \(label)") { db in
            let id = try saveHead(head, in: db)
            try db.execute(sql: """
                INSERT OR REPLACE INTO finetuned_blocks(head_id, extraction_id, cached_blocks, unfreeze, definition, tensor_index, tensors)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, head.extractionID, blocks.cachedBlocks, blocks.unfreeze, blocks.definitionJSON, index, blob])
            return id
        }
    }

    /// The trained blocks of head `headID`, or nil for a head on pooled features (kind `frozen`).
    public func fineTunedBlocks(headID: Int64) throws -> FineTunedBlocks? {
        try read("reading the fine-tuned blocks of head \(headID)") { db in
            guard try Schema.hasFineTunedHeads(db) else { return nil }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT cached_blocks, unfreeze, definition, tensor_index, tensors FROM finetuned_blocks WHERE head_id = ?
                """, arguments: [headID]) else { return nil }
            let (tensors, shapes) = try StoredTensors.decode(index: row[3], blob: row[4], path: path, what: "fine-tuned blocks of head \(headID)")
            return FineTunedBlocks(cachedBlocks: row[0], unfreeze: row[1], definitionJSON: row[2], tensors: tensors, tensorShapes: shapes)
        }
    }

    /// A fine-tuned head's trained blocks with the block cache they were trained on (extraction
    /// `extractionID`'s cache of `cachedBlocks`); nil for a head on pooled features. A cache the store
    /// no longer has is an error naming it.
    public func fineTunedHeadBlocks(headID: Int64, extractionID: Int64) throws -> (blocks: FineTunedBlocks, cache: BlockDefinition)? {
        guard let blocks = try fineTunedBlocks(headID: headID) else { return nil }
        guard let cache = try blockDefinition(extractionID: extractionID, blocks: blocks.cachedBlocks) else {
            throw StoreError.invalidArgument(path: path, reason: "head \(headID) was fine-tuned on the cache of the last \(blocks.cachedBlocks) block(s) of extraction \(extractionID), which the store no longer has")
        }
        return (blocks, cache)
    }

    /// Ids of the heads of kind `finetuned` (with trained blocks).
    public func fineTunedHeadIDs() throws -> Set<Int64> {
        try read("reading the fine-tuned heads") { db in
            guard try Schema.hasFineTunedHeads(db) else { return [] }
            return try Int64.fetchSet(db, sql: "SELECT head_id FROM finetuned_blocks")
        }
    }

    /// Bytes of cached block inputs per extraction (their blobs).
    func blockCacheBytes(_ db: Database) throws -> [Int64: Int] {
        guard try Schema.hasBlockCache(db) else { return [:] }
        var bytes: [Int64: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT extraction_id, sum(length(vector)) FROM block_inputs GROUP BY extraction_id") {
            bytes[row[0]] = row[1]
        }
        return bytes
    }
}
