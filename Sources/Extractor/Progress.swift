import Foundation

/// Progress of a long run on stderr: a live bar on a terminal, otherwise one log line every few
/// seconds; nothing with `--quiet`.
final class Progress {
    let total: Int
    let label: String
    let quiet: Bool
    private let terminal = isatty(STDERR_FILENO) != 0
    private let start = Date()
    private var lastPrint = Date.distantPast
    private(set) var done = 0
    private(set) var skipped = 0

    init(total: Int, label: String, quiet: Bool) {
        self.total = total
        self.label = label
        self.quiet = quiet
    }

    var elapsed: Double { Date().timeIntervalSince(start) }
    var rate: Double { elapsed > 0 ? Double(done) / elapsed : 0 }

    func advance(by n: Int, skipped s: Int = 0) {
        done += n
        skipped += s
        let now = Date()
        guard !quiet, now.timeIntervalSince(lastPrint) >= (terminal ? 0.25 : 5) else { return }
        lastPrint = now
        emit(final: false)
    }

    func finish() {
        if !quiet { emit(final: true) }
    }

    private func emit(final: Bool) {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let eta = rate > 0 ? Double(max(total - done, 0)) / rate : 0
        let stats = String(format: "%d/%d  %.1f img/s  ETA %@  skipped %d", done, total, rate, Self.clock(eta), skipped)
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(stats)\u{1B}[K\(final ? "\n" : "")".utf8))
        } else {
            FileHandle.standardError.write(Data("\(label): \(stats)\n".utf8))
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
