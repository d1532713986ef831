import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How long oneDNN's OpenMP threads spin before they sleep.
///
/// libgomp (the OpenMP runtime of Debian's oneDNN, and of our trainer's loops) spins a thread that
/// waits for work 300,000 times by default before it sleeps. On a machine whose cores are busy
/// with other work, or with our own image decoders, that spinning holds a core that the thread's
/// partner, or the decoders, need. `tools/bench/openmp_wait.sh` on this 2-core AMD EPYC while other
/// jobs kept the load at 9 (Lite0 forward, medians of 2 alternating rounds): default 15.7 img/s,
/// GOMP_SPINCOUNT=100000 22.5, 10000 56.4, 1000 71.6, OMP_WAIT_POLICY=passive 77.9. On the quiet
/// machine a thousand spins still cover the short gap between two primitives of one forward pass:
/// 363.8 img/s against the default's 364.7, where `passive` gives 347.7.
///
/// libgomp reads its settings once, when it is loaded, before any of our code runs; so the programs
/// set `GOMP_SPINCOUNT` and start themselves again (`exec`, same arguments, same process id). A
/// user's own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is kept as it is.
public enum OpenMPWaiting {
    public static let spinCount = "1000"

    /// The setting this process runs with, for benchmark reports: `GOMP_SPINCOUNT=1000`,
    /// `OMP_WAIT_POLICY=passive`, or `libgomp default` (spins 300,000 times).
    public static var current: String {
        let env = ProcessInfo.processInfo.environment
        return [("OMP_WAIT_POLICY", env["OMP_WAIT_POLICY"]), ("GOMP_SPINCOUNT", env["GOMP_SPINCOUNT"])]
            .compactMap { k, v in v.map { "\(k)=\($0)" } }.joined(separator: " ").nonEmpty ?? "libgomp default"
    }

    /// Call first thing in `main`. Returns only when nothing had to change or `exec` failed (then
    /// the program runs on with libgomp's defaults).
    public static func apply() {
        let env = ProcessInfo.processInfo.environment
        guard env["OMP_WAIT_POLICY"] == nil, env["GOMP_SPINCOUNT"] == nil else { return }
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        #if os(Linux)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        #endif
    }
}

private extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
