import ArgumentParser
import BackboneEngine
import Foundation

extension PrecisionRequest: ExpressibleByArgument {}

extension PrecisionDecision {
    /// Resolves `--precision` on this machine: `auto` runs `BF16Probe` (the table when it cannot
    /// decide); an explicit `bf16` runs it too, to say on stderr when bf16 is slower here and by how
    /// much, then keeps bf16. `fp32` and `int8` measure nothing.
    static func resolve(_ requested: PrecisionRequest) -> PrecisionDecision {
        let cpu = CPUFeatures.current
        let decision = decide(requested, cpu: cpu) { try BF16Probe.ratio() }
        guard requested == .bf16 else { return decision }
        let measured = try? BF16Probe.ratio()
        if let line = bf16Warning(cpu: cpu, probeRatio: measured) { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
        return PrecisionDecision(precision: .bf16, source: .requested, probeRatio: measured, reason: decision.reason)
    }

    /// One stderr line: the precision used and why.
    func announce(quiet: Bool) {
        if !quiet { FileHandle.standardError.write(Data("precision \(precision.rawValue) (\(reason))\n".utf8)) }
    }
}
