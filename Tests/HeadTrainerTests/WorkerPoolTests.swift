import Foundation
@testable import HeadTrainerCore
import XCTest

/// The trainer's fork-join pool (CHeadKernels/pool.c): every chunk of every job runs exactly once,
/// whatever the thread count, the job size (up to 32 chunks: home chunks first, then stealing;
/// more: claimed in order) or how uneven the chunks are.
final class WorkerPoolTests: XCTestCase {
    func testEveryChunkRunsOnce() throws {
        for threads in [2, 3, 4] {
            let pool = try XCTUnwrap(WorkerPool(threads: threads))
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64)
            defer { counts.deallocate() }
            for job in 0..<4000 {
                let n = [1, 2, 4, 5, 31, 32, 33, 64][job % 8]
                counts.initialize(repeating: 0, count: n)
                pool.run(n) { i in
                    // Uneven chunks, so threads run out of their home chunks at different times.
                    if (i * 7919 + job) % 5 == 0 { sched_yield() }
                    counts[i] += 1
                }
                let ran = Array(UnsafeBufferPointer(start: counts, count: n))
                XCTAssertEqual(ran, [Int](repeating: 1, count: n), "threads \(threads), job \(job), \(n) chunks")
                if ran != [Int](repeating: 1, count: n) { return }
            }
        }
    }
}
