import ArgumentParser
import BackboneEngine
import Foundation

extension PrecisionRequest: ExpressibleByArgument {}
extension ConvolutionAlgorithm: ExpressibleByArgument {}

extension ConvolutionAlgorithm {
    /// `--convolution`'s help, shared by `extract run` and `extract bench`.
    static let help = ArgumentHelp(
        "How fp32 convolutions compute. auto: oneDNN runs dense 3x3 stride-1 convolutions (not the image's own) of batches of 4 or more as Winograd where it has the kernel (AVX-512 CPUs): ResNet50 1.19-1.23x and VGG16 2.25-2.28x the speed of direct on the 2-core AMD EPYC of README's benchmarks, at 1.4x and 2.1x the peak memory; the features agree with direct's within ~1e-6 relative L2, so both add to the same extraction. direct: every convolution direct (bf16 and int8 always are).",
        valueName: "auto|direct")
}

extension PrecisionRequest {
    /// Refuses `--precision bf16` where oneDNN has no bf16 convolutions, before any work starts.
    func validate() throws {
        if self == .bf16, let why = EngineISA.current.bf16Unavailable {
            throw ValidationError("--precision bf16: \(why). Use --precision fp32, or auto (fp32 here)")
        }
    }
}

extension PrecisionDecision {
    /// Resolves `--precision` on this machine: `auto` runs `BF16Probe` (the table when it cannot
    /// decide); an explicit `bf16` runs it too, to say on stderr when bf16 is slower here and by how
    /// much, then keeps bf16. `fp32` and `int8` measure nothing. `winogradShare`: the share of the
    /// fp32 network's work that runs as Winograd (`LoadedBackbone.winogradShare`; 0 under `--convolution direct`).
    static func resolve(_ requested: PrecisionRequest, winogradShare: () -> Double) -> PrecisionDecision {
        let cpu = CPUFeatures.current
        guard requested == .auto || requested == .bf16 else { return decide(requested, cpu: cpu) { nil } }
        let share = winogradShare()
        let decision = decide(requested, cpu: cpu, winogradShare: share) { try BF16Probe.ratio() }
        guard requested == .bf16 else { return decision }
        let measured = try? BF16Probe.ratio()
        if let line = bf16Warning(cpu: cpu, probeRatio: measured, winogradShare: share) {
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        return PrecisionDecision(precision: .bf16, source: .requested, probeRatio: measured, reason: decision.reason)
    }

    /// One stderr line: the precision used and why.
    func announce(quiet: Bool) {
        if !quiet { FileHandle.standardError.write(Data("precision \(precision.rawValue) (\(reason))\n".utf8)) }
    }
}
