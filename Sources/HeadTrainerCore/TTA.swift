import Foundation

/// Validation and test metrics under test-time augmentation: each image is classified by the mean
/// of the head's softmax over its stored copies 0...copies (copy 0 = the original image).
public struct TTAMetrics: Codable, Hashable, Sendable {
    /// K: augmented copies averaged with the original.
    public var copies: Int
    public var validation: ClassificationMetrics?
    public var test: ClassificationMetrics?
}

/// The rows of copies 0...copies of every image of a split that has a copy 0 row, grouped by image
/// (images in the order of their copy 0 rows). Building it checks that every image has all its copies.
public struct TTAGroups: Sendable {
    /// Copies 0...copies of the images, in data order.
    public let data: LabeledFeatures
    /// Per image: its rows in `data`.
    public let rows: [[Int]]
    /// Per image: its id and label.
    public let imageIDs: [Int64]
    public let labels: [Int32]

    public init(_ all: LabeledFeatures, copies: Int, split: String) throws {
        data = all.subset((0..<all.n).filter { all.augIndex[$0] <= copies })
        var slot: [Int64: Int] = [:]
        var ids: [Int64] = [], labels: [Int32] = []
        for r in 0..<data.n where data.augIndex[r] == 0 {
            slot[data.imageIDs[r]] = ids.count
            ids.append(data.imageIDs[r])
            labels.append(data.labels[r])
        }
        var rows = [[Int]](repeating: [], count: ids.count)
        for r in 0..<data.n {
            if let s = slot[data.imageIDs[r]] { rows[s].append(r) }
        }
        self.rows = rows
        imageIDs = ids
        self.labels = labels
        if ids.isEmpty { throw HeadTrainerError.emptySplit(split: split, reason: "no original (copy 0) rows to score with test-time augmentation") }
        if let s = rows.firstIndex(where: { $0.count != copies + 1 }) {
            let have = self.rows[s].map { Int(data.augIndex[$0]) }.sorted()
            throw HeadTrainerError.emptySplit(split: split, reason: "image \(ids[s]) has copies \(have.map(String.init).joined(separator: ", ")) stored, "
                                              + "but tta \(copies) needs copies 0...\(copies); run `extract --augment \(copies)` with the same backbone and store, "
                                              + "or lower tta")
        }
    }

    /// Per image, the mean of the head's softmax over its copies (images x classes, row-major).
    public func probabilities(_ head: TrainedHead, threads: Int? = nil) throws -> [Float] {
        let all = try head.predict(data, threads: threads)
        let k = head.classCount
        var out: [Float] = []
        out.reserveCapacity(rows.count * k)
        for image in rows {
            out += meanProbabilities(image.flatMap { all[$0 * k ..< ($0 + 1) * k] }, classes: k)
        }
        return out
    }

    public func metrics(_ head: TrainedHead, threads: Int? = nil) throws -> ClassificationMetrics {
        try ClassificationMetrics(probabilities: probabilities(head, threads: threads), labels: labels, classNames: head.classNames)
    }
}

extension TTAMetrics {
    /// One line per split comparing accuracy and log loss with and without TTA.
    public func summary(plain: SplitMetrics) -> String {
        func line(_ name: String, _ without: ClassificationMetrics?, _ with: ClassificationMetrics?) -> String? {
            guard let without, let with else { return nil }
            return String(format: "%@ with tta %d: accuracy %.4f (without %.4f), log loss %.4f (without %.4f)",
                          name, copies, with.accuracy, without.accuracy, with.logLoss, without.logLoss)
        }
        return [line("validation", plain.validation, validation), line("test", plain.test, test)].compactMap { $0 }.joined(separator: "\n")
    }
}
