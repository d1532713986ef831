import WorkbenchSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deterministic mutation fuzzer: for each seed file, a fixed number of mutants drawn from a seeded
/// generator (bit flips, interesting values in 1/2/4/8-byte fields, truncation, insertion, deletion,
/// chunk duplication, splices of two seeds), each handed to a reader that must return or throw, never
/// crash, hang or read without bound. Same seed, same inputs, on every machine: a CI run is
/// reproducible, and a failure names the mutant's number to replay.
///
/// If a mutant crashes the process, the input being run is written (from a signal handler, with
/// preallocated memory) to $TMPDIR/fuzz-crash-<target>.bin, to be committed under
/// Tests/FuzzTests/Regressions/<target>/ once fixed. A mutant that runs longer than `hangSeconds` is
/// written the same way and the process aborts.
struct FuzzDriver {
    let target: String
    let seeds: [[UInt8]]
    let mutantsPerSeed: Int
    var seed: UInt64 = 0x5EED_F00D
    var hangSeconds: Double = 20

    /// Runs every seed, every committed regression input and every mutant through `body`; returns the
    /// number of inputs run.
    func run(regressions: [[UInt8]] = [], _ body: ([UInt8]) -> Void) -> Int {
        var rng = SplitMix64(seed: seed ^ UInt64(truncatingIfNeeded: target.hashValueStable))
        var count = 0
        let watchdog = Watchdog(target: target, limit: hangSeconds)
        for input in seeds + regressions {
            watchdog.running(input)
            body(input)
            count += 1
        }
        for seedBytes in seeds {
            for _ in 0..<mutantsPerSeed {
                let other = seeds[Int(rng.next() % UInt64(seeds.count))]
                let mutant = Self.mutate(seedBytes, other: other, rng: &rng)
                watchdog.running(mutant)
                body(mutant)
                count += 1
            }
        }
        watchdog.stop()
        return count
    }

    static let interesting8: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF]
    static let interesting32: [UInt32] = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]

    static func mutate(_ input: [UInt8], other: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        var b = input
        let rounds = 1 + Int(rng.next() % 3)
        for _ in 0..<rounds {
            if b.isEmpty { b = [UInt8(truncatingIfNeeded: rng.next())]; continue }
            let at = Int(rng.next() % UInt64(b.count))
            switch rng.next() % 9 {
            case 0: b[at] ^= UInt8(1) << UInt8(rng.next() % 8)                                     // bit flip
            case 1: b[at] = interesting8[Int(rng.next() % UInt64(interesting8.count))]             // byte value
            case 2, 3:                                                                              // 2/4/8-byte field
                let width = [2, 4, 8][Int(rng.next() % 3)]
                let value = UInt64(interesting32[Int(rng.next() % UInt64(interesting32.count))])
                let bigEndian = rng.next() % 2 == 0
                for i in 0..<width where at + i < b.count {
                    let shift = bigEndian ? (width - 1 - i) * 8 : i * 8
                    b[at + i] = shift < 64 ? UInt8(truncatingIfNeeded: value >> UInt64(shift)) : 0
                }
            case 4: b.removeSubrange(at...)                                                         // truncate
            case 5:                                                                                 // insert
                let n = 1 + Int(rng.next() % 16)
                b.insert(contentsOf: (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            case 6: b.removeSubrange(at ..< min(b.count, at + 1 + Int(rng.next() % 64)))           // delete
            case 7:                                                                                 // duplicate a chunk
                let end = min(b.count, at + 1 + Int(rng.next() % 256))
                let to = Int(rng.next() % UInt64(b.count))
                b.insert(contentsOf: Array(b[at..<end]), at: to)
            default:                                                                                // splice
                guard !other.isEmpty else { continue }
                let from = Int(rng.next() % UInt64(other.count))
                b = Array(b[..<at]) + Array(other[from...])
            }
        }
        return b
    }
}


extension String {
    /// FNV-1a of the UTF-8 bytes (String.hashValue is randomly seeded per process).
    var hashValueStable: Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return Int(truncatingIfNeeded: h)
    }
}

/// Keeps the input being run where a crash handler or the hang timer can write it out.
final class Watchdog: @unchecked Sendable {
    private static let capacity = 64 << 20
    nonisolated(unsafe) private static let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    nonisolated(unsafe) private static var length = 0
    nonisolated(unsafe) private static var path: [CChar] = []
    private let lock = NSLock()
    private var since = Date()
    private var done = false

    init(target: String, limit: Double) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-crash-\(target).bin").path
        Self.path = Array(file.utf8CString)
        for signal in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                Watchdog.dump()
                Glibc.signal(sig, SIG_DFL)
                raise(sig)
            }
            sigaction(signal, &action, nil)
        }
        Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 0.5)
                lock.lock()
                let finished = done, elapsed = Date().timeIntervalSince(since)
                lock.unlock()
                if finished { return }
                if elapsed > limit {
                    Watchdog.dump()
                    fatalError("fuzz \(target): one input ran for more than \(limit) s (written to \(file))")
                }
            }
        }.start()
    }

    func running(_ input: [UInt8]) {
        lock.lock()
        since = Date()
        lock.unlock()
        Self.length = min(input.count, Self.capacity)
        input.withUnsafeBufferPointer { if let base = $0.baseAddress { Self.buffer.update(from: base, count: Self.length) } }
    }

    func stop() {
        lock.lock()
        done = true
        lock.unlock()
    }

    /// Async-signal-safe: open, write, close.
    static func dump() {
        let fd = path.withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        if fd >= 0 {
            _ = write(fd, buffer, length)
            close(fd)
        }
    }
}
