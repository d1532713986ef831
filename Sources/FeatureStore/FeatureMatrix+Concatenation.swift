import Foundation

/// Rows one matrix has and another lacks, found while concatenating matrices.
public struct MissingFeatureRows: Error, Equatable, Sendable {
    /// Per input matrix (in the order given): how many of the other inputs' (image, copy) rows it lacks,
    /// and the first such row.
    public struct Gap: Equatable, Sendable {
        public let input: Int
        public let count: Int
        public let example: FeatureKey
    }
    public let gaps: [Gap]
    /// Rows in the union of all inputs.
    public let unionRows: Int
}

extension FeatureMatrix {
    /// The per-row concatenation of matrices of one dataset: row (image, copy) of the result is that
    /// row of `parts[0]`, then of `parts[1]`, ... (`dim` is the sum of theirs). Rows are matched by
    /// (image id, augmentation index), never by position; labels, paths and the row order are those
    /// of `parts[0]` and `extractionID` is its id. A row missing in any input throws
    /// `MissingFeatureRows` (every input's count), so features of different images are never mixed.
    public static func concatenating(_ parts: [FeatureMatrix]) throws -> FeatureMatrix {
        guard var out = parts.first else { preconditionFailure("concatenating no matrices") }
        guard parts.count > 1 else { return out }
        let first = parts[0]
        if !parts.allSatisfy({ $0.imageIDs == first.imageIDs && $0.augIndex == first.augIndex }) {
            let keys = parts.map { m in zip(m.imageIDs, m.augIndex).map { FeatureKey(imageID: $0, augIndex: $1) } }
            let union = Set(keys.joined())
            let order = { (a: FeatureKey, b: FeatureKey) in (a.imageID, a.augIndex) < (b.imageID, b.augIndex) }
            let gaps = keys.enumerated().compactMap { i, k -> MissingFeatureRows.Gap? in
                let missing = union.subtracting(k)
                return missing.min(by: order).map { .init(input: i, count: missing.count, example: $0) }
            }
            throw MissingFeatureRows(gaps: gaps, unionRows: union.count)
        }
        let dims = parts.map(\.dim)
        let width = dims.reduce(0, +)
        out.dim = width
        out.values = [Float](unsafeUninitializedCapacity: first.rows * width) { buffer, initialized in
            var offset = 0
            for (p, m) in parts.enumerated() {
                m.values.withUnsafeBufferPointer { src in
                    for r in 0..<first.rows {
                        let from = src.baseAddress! + r * dims[p]
                        (buffer.baseAddress! + r * width + offset).update(from: from, count: dims[p])
                    }
                }
                offset += dims[p]
            }
            initialized = first.rows * width
        }
        return out
    }
}
