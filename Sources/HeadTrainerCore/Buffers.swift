import CHeadKernels
import COpenBLAS
import Dispatch
import Foundation

/// A zero-initialised, 64-byte aligned Float buffer allocated once and reused every step.
final class FloatBuffer {
    let count: Int
    let p: UnsafeMutablePointer<Float>

    init(_ count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }

    convenience init(_ values: [Float]) {
        self.init(values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(p).deallocate() }

    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
    func fill(_ v: Float) { p.update(repeating: v, count: count) }
    func copy(from other: FloatBuffer) { p.update(from: other.p, count: count) }
    func load(_ values: [Float]) { values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: min(count, values.count)) } }
}

/// Runs a fixed number of independent chunks, on up to `threads` cores (libdispatch).
///
/// Work is always cut into the same chunks whatever the thread count, so results are bit-identical
/// for 1 or N threads (the GEMM backend, OpenBLAS or oneDNN, runs single-threaded inside the
/// chunks). A spinning worker pool was tried and dropped: on an oversubscribed machine (other jobs
/// on the 2 cores) it was 3-4x slower than libdispatch's blocking hand-off.
struct Parallel {
    let threads: Int
    private let pool: WorkerPool?

    init(threads: Int?) {
        self.threads = max(1, min(threads ?? ProcessInfoCores.count, 64))
        pool = self.threads > 1 && WorkerPool.enabled ? WorkerPool(threads: self.threads) : nil
    }

    @inline(__always)
    func run(_ chunks: Int, _ body: (Int) -> Void) {
        if threads > 1 && chunks > 1 {
            if let pool {
                pool.run(chunks, body)
            } else {
                DispatchQueue.concurrentPerform(iterations: chunks) { body($0) }
            }
        } else {
            for c in 0..<chunks { body(c) }
        }
    }

    /// [start, end) of chunk `c` of `n` items cut into `chunks` nearly equal parts, aligned to `align`.
    static func range(_ c: Int, of chunks: Int, _ n: Int, align: Int = 16) -> Range<Int> {
        let per = ((n + chunks - 1) / chunks + align - 1) / align * align
        let lo = min(n, c * per), hi = min(n, lo + per)
        return lo..<hi
    }
}

enum ProcessInfoCores {
    static var count: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}

/// Keeps OpenBLAS single-threaded while the trainer parallelises by itself, restoring the old setting.
struct BLASThreadsGuard {
    let previous: Int32
    init() {
        previous = openblas_get_num_threads()
        openblas_set_num_threads(1)
    }
    func restore() { openblas_set_num_threads(previous) }
}

/// The trainer's own fork-join pool (CHeadKernels/pool.c). A training step has two parallel regions
/// a few hundred microseconds apart; libdispatch wakes its workers through a futex for each.
/// `WORKBENCH_TRAINER_POOL=dispatch` selects libdispatch instead, so the two can be compared:
/// `train-head bench-epoch --threads 2` gave 0.151-0.154 s per epoch with libdispatch and
/// 0.119-0.120 with this pool, three alternating rounds each, when this was written.
final class WorkerPool {
    static let enabled = ProcessInfo.processInfo.environment["WORKBENCH_TRAINER_POOL"] != "dispatch"
    let handle: OpaquePointer

    init?(threads: Int) {
        guard let h = chk_pool_create(Int32(threads)) else { return nil }
        handle = h
    }

    deinit { chk_pool_destroy(handle) }

    func run(_ chunks: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            var task = escapable
            withUnsafeMutablePointer(to: &task) { ctx in
                chk_pool_run(handle, chunks, { ctx, index in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(index))
                }, ctx)
            }
        }
    }
}
