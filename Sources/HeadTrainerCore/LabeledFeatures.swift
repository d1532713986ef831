import Foundation

/// A split of cached backbone features held in memory: `n` rows of `dim` floats (row-major),
/// one label per row, and for each row the image it came from and which augmented copy it is
/// (copy 0 is the original image). The trainer never touches the feature store; the caller
/// (the `train-head` command) fills these arrays from it.
public struct LabeledFeatures: Sendable {
    public var dim: Int
    /// Row-major `n * dim` features.
    public var values: [Float]
    /// Class index per row, in `0..<classCount`.
    public var labels: [Int32]
    /// Source image per row; all augmented copies of one image share it.
    public var imageIDs: [Int64]
    /// Augmentation copy per row (0 = original).
    public var augIndex: [Int32]
    /// Names of all classes, index = label. Also fixes `classCount`.
    public var classNames: [String]

    public var n: Int { labels.count }
    public var classCount: Int { classNames.count }

    public init(dim: Int, values: [Float], labels: [Int32], imageIDs: [Int64], augIndex: [Int32], classNames: [String]) {
        self.dim = dim; self.values = values; self.labels = labels
        self.imageIDs = imageIDs; self.augIndex = augIndex; self.classNames = classNames
    }

    /// Rows without augmentation: image id = row index, copy 0.
    public init(dim: Int, values: [Float], labels: [Int32], classNames: [String]) {
        self.init(dim: dim, values: values, labels: labels,
                  imageIDs: (0..<labels.count).map { Int64($0) },
                  augIndex: [Int32](repeating: 0, count: labels.count), classNames: classNames)
    }

    /// Checks shapes, labels and finiteness; `split` names the data in error messages.
    public func validate(split: String) throws {
        if dim < 1 { throw HeadTrainerError.dimensionMismatch(split: split, what: "dim", expected: 1, actual: dim) }
        if values.count != n * dim {
            throw HeadTrainerError.dimensionMismatch(split: split, what: "values (n*dim = \(n)*\(dim))", expected: n * dim, actual: values.count)
        }
        if imageIDs.count != n { throw HeadTrainerError.dimensionMismatch(split: split, what: "imageIDs", expected: n, actual: imageIDs.count) }
        if augIndex.count != n { throw HeadTrainerError.dimensionMismatch(split: split, what: "augIndex", expected: n, actual: augIndex.count) }
        if n == 0 { throw HeadTrainerError.emptySplit(split: split, reason: "no rows were given; extract features for this split first") }
        let k = classCount
        for (r, y) in labels.enumerated() where y < 0 || Int(y) >= k {
            throw HeadTrainerError.labelOutOfRange(split: split, row: r, label: y, classCount: k)
        }
        try values.withUnsafeBufferPointer { p in
            // Hot-ish scan: one pass over all features; checks a whole row with one comparison chain.
            for r in 0..<n {
                let row = p.baseAddress! + r * dim
                var sum: Float = 0
                for j in 0..<dim { sum += row[j] * 0 }   // NaN/Inf * 0 = NaN; finite * 0 = 0.
                if !sum.isFinite || sum != 0 {
                    for j in 0..<dim where !row[j].isFinite {
                        throw HeadTrainerError.nonFiniteFeature(split: split, row: r, column: j, imageID: imageIDs[r])
                    }
                }
            }
        }
    }

    /// The rows at `rows`, in that order (features, labels, ids and copies).
    public func subset(_ rows: [Int]) -> LabeledFeatures {
        var v = [Float](repeating: 0, count: rows.count * dim)
        v.withUnsafeMutableBufferPointer { dst in
            values.withUnsafeBufferPointer { src in
                for (i, r) in rows.enumerated() {
                    (dst.baseAddress! + i * dim).update(from: src.baseAddress! + r * dim, count: dim)
                }
            }
        }
        return LabeledFeatures(dim: dim, values: v, labels: rows.map { labels[$0] },
                               imageIDs: rows.map { imageIDs[$0] }, augIndex: rows.map { augIndex[$0] },
                               classNames: classNames)
    }
}
