import COpenBLAS
import Foundation

/// What a dataset's files say about its labels and splits, from content hashes alone (exact) or from
/// cached features (near): the same bytes under two classes (a label conflict), in train and test (a
/// leak), twice in one class (a duplicate); near-identical images across classes or splits.
///
/// Policy for a conflict (`extract --conflicts`, recorded with the dataset): `drop` (the default) keeps
/// the image out of the store's training and evaluation images; `keep-first`/`keep-last` label it with
/// the class of the first/last of its paths in sorted order. A leak is always resolved towards the test
/// split: the image is stored as a test image, so no head trains on what it is tested on.
struct DatasetAudit: Encodable {
    struct File: Hashable {
        let path: String
        let sha256: String
        let className: String
        let split: String
    }

    struct Group: Encodable, Equatable {
        let sha256: String
        let paths: [String]
        let classes: [String]
        let splits: [String]
    }

    struct NearPair: Encodable, Equatable {
        let a: String
        let b: String
        let cosine: Double
    }

    let conflicts: [Group]
    let leaks: [Group]
    let duplicates: [Group]
    var near: [NearPair] = []

    init(_ files: [File]) {
        var bySHA: [String: [File]] = [:]
        for f in files { bySHA[f.sha256, default: []].append(f) }
        var conflicts: [Group] = [], leaks: [Group] = [], duplicates: [Group] = []
        for (sha, group) in bySHA where group.count > 1 {
            let sorted = group.sorted { $0.path < $1.path }
            let g = Group(sha256: sha, paths: sorted.map(\.path), classes: sorted.map(\.className), splits: sorted.map(\.split))
            // An unlabeled file (no class name) conflicts with no class; it is training data for pseudo-labels.
            let classes = Set(sorted.map(\.className).filter { !$0.isEmpty }), splits = Set(sorted.map(\.split))
            if classes.count > 1 { conflicts.append(g) }
            if (splits.contains("train") || splits.contains("unlabeled")) && splits.contains("test") { leaks.append(g) }
            if classes.count == 1 && splits.count == 1 { duplicates.append(g) }
        }
        func order(_ a: Group, _ b: Group) -> Bool { a.paths[0] < b.paths[0] }
        self.conflicts = conflicts.sorted(by: order)
        self.leaks = leaks.sorted(by: order)
        self.duplicates = duplicates.sorted(by: order)
    }

    var isClean: Bool { conflicts.isEmpty && leaks.isEmpty && duplicates.isEmpty && near.isEmpty }

    /// One line for `extract`'s output, nil when there is nothing to say.
    var summary: String? {
        guard !(conflicts.isEmpty && leaks.isEmpty && duplicates.isEmpty) else { return nil }
        return "dataset audit: \(conflicts.count) image(s) under two or more classes, \(leaks.count) in both train and test, "
            + "\(duplicates.count) duplicated within a class (byte-identical files; `extract store audit` lists them)"
    }
}

enum ConflictPolicy: String, CaseIterable {
    case drop, keepFirst = "keep-first", keepLast = "keep-last"
}

/// Near-duplicate pairs from feature vectors: cosine similarity above a threshold, found with a blocked
/// matrix product of the L2-normalised rows (OpenBLAS sgemm over 1,024-row tiles of the upper triangle),
/// never a pair-by-pair loop. Memory: the normalised matrix plus one 1,024 x 1,024 tile.
enum NearDuplicates {
    static let tile = 1024

    /// `rows` x `dim` values, row-major. `keep(i, j)` filters pairs (e.g. only across classes or splits).
    static func find(_ values: [Float], rows: Int, dim: Int, threshold: Float,
                     keep: (Int, Int) -> Bool) -> [(i: Int, j: Int, cosine: Float)] {
        precondition(values.count == rows * dim)
        var unit = values
        for r in 0..<rows {
            var norm: Float = 0
            for k in 0..<dim { norm += unit[r * dim + k] * unit[r * dim + k] }
            let inv = norm > 0 ? 1 / norm.squareRoot() : 0
            for k in 0..<dim { unit[r * dim + k] *= inv }
        }
        var pairs: [(i: Int, j: Int, cosine: Float)] = []
        var block = [Float](repeating: 0, count: tile * tile)
        unit.withUnsafeBufferPointer { u in
            for i0 in stride(from: 0, to: rows, by: tile) {
                let m = min(tile, rows - i0)
                for j0 in stride(from: i0, to: rows, by: tile) {
                    let n = min(tile, rows - j0)
                    // HOT LOOP: block = U[i0..<i0+m] * U[j0..<j0+n]^T
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(dim), 1,
                                u.baseAddress! + i0 * dim, Int32(dim), u.baseAddress! + j0 * dim, Int32(dim),
                                0, &block, Int32(n))
                    for a in 0..<m {
                        let i = i0 + a
                        let start = j0 == i0 ? a + 1 : 0
                        for b in start..<n where block[a * n + b] >= threshold {
                            let j = j0 + b
                            if keep(i, j) { pairs.append((i, j, block[a * n + b])) }
                        }
                    }
                }
            }
        }
        return pairs.sorted { $0.cosine > $1.cosine }
    }
}
