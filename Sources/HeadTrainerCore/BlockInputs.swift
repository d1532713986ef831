import FineTuneCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Float32 rows of one width in an unlinked temporary file, read and written by row with
/// `pread`/`pwrite` (safe from several threads at once).
///
/// Fine-tuning keeps its block inputs here rather than in memory: Lite0's last-block input is 9,408
/// floats (37.6 KB), ResNet50's 100,352 (401 KB), so the full scenes dataset with 2 augmented copies
/// would need 1.6 GB and 17 GB of RAM. A training step reads its batch's rows; the kernel's page
/// cache keeps what fits, and nothing of it counts against the process. The file disappears with
/// the process, however it ends.
public final class RowFile: @unchecked Sendable {
    /// Floats per row.
    public let dim: Int
    public let rows: Int
    private let fd: Int32
    private var rowBytes: Int { dim * 4 }

    /// A file of `rows` rows (zeros until written) in `directory` (default: `$TMPDIR`, else /tmp).
    public init(dim: Int, rows: Int, directory: String? = nil) throws {
        precondition(dim > 0 && rows >= 0)
        self.dim = dim
        self.rows = rows
        let dir = directory ?? ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(dir)/train-head-block-inputs-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        func failure(_ what: String) -> HeadTrainerError {
            .io(path: dir, detail: "cannot \(what) a temporary file for \(rows) block inputs of \(dim * 4) bytes (\(String(cString: strerror(errno)))); set TMPDIR to a directory with \(Self.megabytes(dim * 4 * rows)) MB free")
        }
        guard fd >= 0 else { throw failure("create") }
        unlink(String(cString: template))
        self.fd = fd
        guard ftruncate(fd, off_t(dim * 4 * rows)) == 0 else { close(fd); throw failure("size") }
    }

    deinit { close(fd) }

    static func megabytes(_ bytes: Int) -> Int { (bytes + (1 << 20) - 1) >> 20 }

    /// Writes row `row` from `values` (`dim` floats).
    public func write(row: Int, _ values: UnsafePointer<Float>) throws {
        try transfer(row: row, UnsafeMutableRawPointer(mutating: values), writing: true)
    }

    /// Reads row `row` into `out` (`dim` floats).
    public func read(row: Int, into out: UnsafeMutablePointer<Float>) throws {
        try transfer(row: row, UnsafeMutableRawPointer(out), writing: false)
    }

    private func transfer(row: Int, _ p: UnsafeMutableRawPointer, writing: Bool) throws {
        precondition(row >= 0 && row < rows, "row \(row) of \(rows)")
        var done = 0
        while done < rowBytes {
            let offset = off_t(row * rowBytes + done)
            let n = writing ? pwrite(fd, p + done, rowBytes - done, offset) : pread(fd, p + done, rowBytes - done, offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw HeadTrainerError.io(path: "(temporary block-input file)", detail: "cannot \(writing ? "write" : "read") row \(row) (\(n < 0 ? String(cString: strerror(errno)) : "end of file")); check the free space of TMPDIR")
            }
            done += n
        }
    }
}

/// Block inputs of some rows, for `fineTuneHead`: their labels, images and copies (`rows`, whose
/// one value per row is a placeholder) and which row of `file` holds each one's input.
public struct BlockInputs: Sendable {
    public private(set) var rows: LabeledFeatures
    public private(set) var fileRows: [Int]
    public let file: RowFile

    /// `metadata`'s labels, images and copies, with row `i`'s input in row `fileRows[i]` of `file`.
    public init(metadata: LabeledFeatures, file: RowFile, fileRows: [Int]) {
        precondition(metadata.n == fileRows.count)
        rows = LabeledFeatures(dim: 1, values: [Float](repeating: 0, count: metadata.n), labels: metadata.labels,
                               imageIDs: metadata.imageIDs, augIndex: metadata.augIndex, classNames: metadata.classNames)
        self.file = file
        self.fileRows = fileRows
    }

    /// `data`'s values moved to a new file (tests, and callers that have them in memory).
    public init(_ data: LabeledFeatures) throws {
        let file = try RowFile(dim: data.dim, rows: data.n)
        try data.values.withUnsafeBufferPointer { v in
            for r in 0..<data.n { try file.write(row: r, v.baseAddress! + r * data.dim) }
        }
        self.init(metadata: data, file: file, fileRows: Array(0..<data.n))
    }

    public var n: Int { fileRows.count }
    public var dim: Int { file.dim }

    /// Reads row `i`'s input into `out` (`dim` floats).
    public func read(_ i: Int, into out: UnsafeMutablePointer<Float>) throws {
        try file.read(row: fileRows[i], into: out)
    }

    /// The given rows, in that order (the file is shared, not copied).
    public func subset(_ indices: [Int]) -> BlockInputs {
        var copy = self
        copy.rows = rows.subset(indices)
        copy.fileRows = indices.map { fileRows[$0] }
        return copy
    }

    /// Runs `body` over the rows in batches of at most `batch`, with their inputs read into one buffer:
    /// `body(inputs, first row, count)`.
    func forEachBatch(_ batch: Int, _ body: (UnsafeMutablePointer<Float>, Int, Int) throws -> Void) throws {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: batch * dim)
        defer { buffer.deallocate() }
        var lo = 0
        while lo < n {
            let b = min(batch, n - lo)
            for i in 0..<b { try read(lo + i, into: buffer + i * dim) }
            try body(buffer, lo, b)
            lo += b
        }
    }
}

/// `data`'s rows run through `runner` (inference), in batches of 64: the features, in memory.
func runBlocks(_ runner: FineTuner, on data: BlockInputs, split: String) throws -> LabeledFeatures {
    let out = runner.outputShape.count
    try checkWidth(runner, data.dim, split: split)
    var values = [Float](repeating: 0, count: data.n * out)
    try values.withUnsafeMutableBufferPointer { y in
        try data.forEachBatch(64) { x, lo, b in runner.outputs(x, batch: b, into: y.baseAddress! + lo * out) }
    }
    var features = data.rows
    features.dim = out
    features.values = values
    return features
}

/// `data`'s rows run through `runner` (the blocks that stay frozen), into a new file.
func runFrozenBlocks(_ runner: FineTuner, on data: BlockInputs, split: String) throws -> BlockInputs {
    let out = runner.outputShape.count
    try checkWidth(runner, data.dim, split: split)
    let file = try RowFile(dim: out, rows: data.n)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: 64 * out)
    defer { y.deallocate() }
    try data.forEachBatch(64) { x, lo, b in
        runner.outputs(x, batch: b, into: y)
        for i in 0..<b { try file.write(row: lo + i, y + i * out) }
    }
    return BlockInputs(metadata: data.rows, file: file, fileRows: Array(0..<data.n))
}

func checkWidth(_ runner: FineTuner, _ dim: Int, split: String) throws {
    let d = runner.network.input.count
    guard dim == d else {
        throw HeadTrainerError.incompatible(what: "\(split) block inputs", detail: "\(dim) values per row, the blocks take \(d) (\(runner.network.input))")
    }
}
