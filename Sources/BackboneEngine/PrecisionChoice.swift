import Foundation

/// What a command asks for: a precision, or `auto` (bf16 only where it is measured or known faster;
/// never int8, which changes the features more: on the 2,400 scenes6 images the lowest cosine to fp32's
/// features is 0.9913-0.9938 for EfficientNet-Lite0/1/2 in int8, 0.9937-0.9988 in bf16, and the median
/// 0.9989-0.9990 against 0.9997-0.9998; `tools/bench/int8_quality.sh --precision int8|bf16`).
public enum PrecisionRequest: String, CaseIterable, Sendable {
    case auto, fp32, bf16, int8
}

/// The CPU as /proc/cpuinfo describes its first processor: vendor, family, model and flags.
public struct CPUFeatures: Equatable, Sendable {
    public var vendor: String
    public var family: Int
    public var model: Int
    public var modelName: String
    public var flags: Set<String>

    public init(vendor: String, family: Int, model: Int, modelName: String = "", flags: Set<String>) {
        self.vendor = vendor; self.family = family; self.model = model; self.modelName = modelName; self.flags = flags
    }

    /// The first processor block of a /proc/cpuinfo text.
    public init(cpuinfo: String) {
        var fields: [String: String] = [:]
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty, !fields.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        self.init(vendor: fields["vendor_id"] ?? "", family: Int(fields["cpu family"] ?? "") ?? 0,
                  model: Int(fields["model"] ?? "") ?? 0, modelName: fields["model name"] ?? "",
                  flags: Set((fields["flags"] ?? "").split(separator: " ").map(String.init)))
    }

    /// This machine's CPU (empty features where /proc/cpuinfo cannot be read).
    public static let current = CPUFeatures(cpuinfo: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")


    public var name: String {
        let n = modelName.isEmpty ? vendor : modelName
        return "\(n) (family \(family), model \(model))"
    }

    /// What the table says of bf16 against fp32 on this CPU: true (faster), false (slower) or nil
    /// (not known), and why. The rows: AMX tiles do bf16 matrix products at several times the FMA
    /// rate; AMD Zen 4 (family 25) and Zen 5 (family 26) with avx512_bf16 do bf16 dot products
    /// (`vdpbf16ps`) at twice the fp32 FMA rate; Intel family 6 model 207 with avx512_bf16 but AMX
    /// hidden (a virtual machine) runs them slower than fp32 FMAs; without avx512_bf16 or AMX oneDNN
    /// has no bf16 dot product and converts (slower).
    public var bf16Table: (faster: Bool?, rule: String) {
        let bf16 = flags.contains("avx512_bf16")
        if flags.contains("amx_bf16") { return (true, "amx_bf16") }
        if vendor == "AuthenticAMD", family == 25 || family == 26, bf16 {
            return (true, "AMD Zen \(family == 25 ? 4 : 5) with avx512_bf16")
        }
        if vendor == "GenuineIntel", family == 6, model == 207, bf16 {
            return (false, "Intel family 6 model 207 with avx512_bf16 and no AMX")
        }
        if !bf16 { return (false, "no avx512_bf16 or amx_bf16") }
        return (nil, "avx512_bf16 on a CPU the table does not know")
    }
}

/// Which precision a command runs at, and what decided it.
public struct PrecisionDecision: Equatable, Sendable {
    public enum Source: String, Sendable {
        /// The user's `--precision fp32|bf16`.
        case requested
        /// `BF16Probe`'s measured ratio.
        case probe
        /// `CPUFeatures.bf16Table` (the probe did not run, failed or was inconclusive).
        case table
        /// A rule of the command itself (e.g. `--cache-blocks` keeps fp32).
        case rule
    }

    public let precision: Precision
    public let source: Source
    /// bf16 speed over fp32 from the probe (> 1: bf16 faster), when it ran.
    public let probeRatio: Double?
    public let reason: String

    public init(precision: Precision, source: Source, probeRatio: Double?, reason: String) {
        self.precision = precision; self.source = source; self.probeRatio = probeRatio; self.reason = reason
    }

    /// A probe ratio at or above this picks bf16, at or below `slowerRatio` fp32; in between the table
    /// decides (and, not knowing the CPU, fp32: bf16 features differ a little from fp32's, worth it
    /// only for speed). The band is wide because a loaded machine pulls the ratio towards 1 (both
    /// precisions then wait on the same stalls): there the table decides. `PrecisionChoiceTests`
    /// print the probe's ratio on the machine that runs them.
    public static let fasterRatio = 1.2
    public static let slowerRatio = 0.75

    /// Whether a probe ratio is clear enough to decide (see `fasterRatio`).
    public static func conclusive(_ ratio: Double) -> Bool { ratio >= fasterRatio || ratio <= slowerRatio }

    /// The speed-up over direct assumed for fp32 convolutions that run as Winograd
    /// (`ConvolutionAlgorithm`): 1.5-2.1x over ResNet50's 3x3 stride-1 shapes at batch 16 on the 2-core
    /// AMD EPYC Zen 5 (oneDNN's `jit_wino_4x3` against `jit:avx512_core`, `tools/bench/verbose_shapes.py`
    /// over `ONEDNN_VERBOSE=1 extract bench`; README); the whole networks: ResNet50 1.19-1.23x, VGG16 2.25-2.28x.
    public static let winogradGain = 2.0

    /// The bf16/fp32 speed ratio of a network from the probe's (or the table's) ratio `r` on direct
    /// convolutions, when a share `s` of fp32's work runs as Winograd at `winogradGain` times the
    /// direct speed and bf16 runs direct: r x (s / gain + 1 - s). VGG16 (s = 1) on a CPU whose bf16
    /// is 2x: 1.0, so fp32 (bf16 measured 0.91-0.92x of Winograd fp32 there); ResNet50 (s = 0.37): 1.6,
    /// so bf16 (measured 1.76-1.83x).
    public static func networkRatio(_ r: Double, winogradShare s: Double) -> Double {
        r * (s / winogradGain + 1 - s)
    }

    /// The ratio the table implies for CPUs it knows to be faster in bf16 (bf16 dot products at twice
    /// the fp32 FMA rate), for `networkRatio`.
    public static let tableFasterRatio = 2.0

    /// The decision for `requested`. `probe` is called only for `auto` (the probe decides when its
    /// ratio, weighed by `winogradShare` (`networkRatio`), is clear; `nil` or an error falls back to
    /// the table); `--precision fp32|bf16` is kept. `isa`: what oneDNN runs here; where it has no
    /// bf16 convolutions `auto` is fp32 without probing (`--precision bf16` is refused before, by
    /// the commands' validation and by `CompiledNetwork`).
    public static func decide(_ requested: PrecisionRequest, cpu: CPUFeatures, isa: EngineISA = .current, winogradShare: Double = 0,
                              probe: () throws -> Double?) -> PrecisionDecision {
        switch requested {
        case .fp32: return PrecisionDecision(precision: .fp32, source: .requested, probeRatio: nil, reason: "--precision fp32")
        case .bf16: return PrecisionDecision(precision: .bf16, source: .requested, probeRatio: nil, reason: "--precision bf16")
        case .int8: return PrecisionDecision(precision: .int8, source: .requested, probeRatio: nil, reason: "--precision int8: \(isa.int8Kernels)")
        case .auto: break
        }
        if let why = isa.bf16Unavailable {
            return PrecisionDecision(precision: .fp32, source: .rule, probeRatio: nil, reason: "\(why), on \(cpu.name)")
        }
        let ratio: Double?, failure: String?
        do { ratio = try probe(); failure = nil } catch { ratio = nil; failure = "\(error)" }
        let s = winogradShare
        let share = s > 0 ? String(format: ", %.0f%% of fp32's convolution work as Winograd", s * 100) : ""
        if let r = ratio, conclusive(networkRatio(r, winogradShare: s)) {
            let n = networkRatio(r, winogradShare: s)
            let weighed = s > 0 ? String(format: " (%.2fx for this network%@)", n, share) : ""
            return PrecisionDecision(precision: n >= fasterRatio ? .bf16 : .fp32, source: .probe, probeRatio: r,
                                     reason: String(format: "probe: bf16 convolutions %.2fx fp32's speed%@", r, weighed))
        }
        let table = cpu.bf16Table
        let faster = table.faster == true && networkRatio(tableFasterRatio, winogradShare: s) >= fasterRatio
        let why = ratio.map { String(format: "probe ratio %.2f inconclusive", networkRatio($0, winogradShare: s)) }
            ?? failure.map { "probe failed: \($0)" } ?? "no probe"
        let kept = table.faster == true && !faster ? String(format: ": bf16 %.2fx for this network", networkRatio(tableFasterRatio, winogradShare: s)) : ""
        return PrecisionDecision(precision: faster ? .bf16 : .fp32, source: .table, probeRatio: ratio,
                                 reason: "table: \(table.rule) on \(cpu.name); \(why)\(share)\(kept)")
    }

    /// The stderr line for an explicit `--precision bf16` where bf16 is slower: from the probe's
    /// ratio when it is conclusive, else from the table; nil when bf16 is not known to be slower.
    /// `winogradShare`: as in `decide` (the probe's ratio is then weighed for this network).
    public static func bf16Warning(cpu: CPUFeatures, probeRatio: Double?, winogradShare: Double = 0) -> String? {
        if let p = probeRatio, case let r = networkRatio(p, winogradShare: winogradShare), conclusive(r) {
            guard r < 1 else { return nil }
            let what = winogradShare > 0 ? "this network runs" : "bf16 convolutions run"
            return String(format: "--precision bf16: on this CPU (%@) %@ at %.2fx fp32's speed (%.0f%% slower, measured by the probe); proceeding in bf16",
                          cpu.name, what, r, (1 - r) * 100)
        }
        guard cpu.bf16Table.faster == false else { return nil }
        return "--precision bf16: on this CPU (\(cpu.name)) bf16 is slower than fp32 (\(cpu.bf16Table.rule)); proceeding in bf16"
    }
}

/// A short measurement of bf16 against fp32 on this CPU: convolutions of a backbone's middle stages
/// (batch 8 at 28x28: 3x3 64 -> 64, 1x1 64 -> 256, 1x1 256 -> 64, 3x3 64 -> 64, pooled; 1.3 GFLOP per run),
/// compiled in both precisions and run alternately; the ratio is fp32's best wall time over bf16's.
/// Best-of-runs keeps it stable when other processes share the cores for part of the probe; a
/// machine loaded throughout pulls the ratio towards 1, where `PrecisionDecision.conclusive` leaves
/// the choice to the table. Not CPU time: Linux adds a thread's time to the process CPU clock only
/// at scheduler ticks and switches, so a run of ~1.5 ms read 1.4 or 2.9 ms of CPU time for the same
/// 1.45 ms of wall time (the other OpenMP thread counted or not), and the probe's ratio jumped
/// between 0.52 and 3.6 from one process to the next where wall times gave 1.9-2.0 (2-core AMD
/// EPYC Zen 5; `WORKBENCH_BF16_PROBE_TRACE=1` prints every run's times on stderr).
/// `WORKBENCH_BF16_RATIO=R` skips the measurement and uses R (tests, and experiments that pretend
/// to be another CPU).
public enum BF16Probe {
    public static func ratio(runs: Int = 20) throws -> Double {
        let env = ProcessInfo.processInfo.environment
        if let forced = env["WORKBENCH_BF16_RATIO"] {
            guard let r = Double(forced), r > 0 else { throw EngineError("WORKBENCH_BF16_RATIO=\(forced) is not a positive number") }
            return r
        }
        var net = Network(name: "bf16-probe", inputChannels: 64)
        // Deterministic values in [-0.5, 0.5); they do not matter to the timing.
        func value(_ i: Int) -> Float { Float((i &* 7919) % 1000) / 1000 - 0.5 }
        func conv(_ out: Int, _ inp: Int, _ k: Int) -> Convolution {
            Convolution(outChannels: out, kernel: k, padding: .same, weights: (0..<out * inp * k * k).map { value($0) * 0.1 },
                        bias: [Float](repeating: 0, count: out), activation: .relu)
        }
        var x = "input"
        for (i, (out, inp, k)) in [(64, 64, 3), (256, 64, 1), (64, 256, 1), (64, 64, 3)].enumerated() {
            x = net.add("conv\(i)", .conv(conv(out, inp, k)), inputs: [x])
        }
        net.outputs["features"] = net.add("pool", .globalAveragePool, inputs: [x])
        // Direct fp32 (no Winograd): the ratio is the dot products'; `networkRatio` weighs in Winograd.
        let nets = try [Precision.fp32, .bf16].map {
            try CompiledNetwork(net, batch: 8, height: 28, width: 28, precision: $0, algorithm: .direct)
        }
        for n in nets {
            for i in 0..<n.inputCount { n.input[i] = value(i) }
            try n.run()   // warm-up: first-touch of buffers and JIT caches
        }
        let trace = env["WORKBENCH_BF16_PROBE_TRACE"] == "1"
        var best = [UInt64.max, .max]
        let deadline = DispatchTime.now().uptimeNanoseconds + 300_000_000   // at most ~0.3 s when the cores are busy
        for run in 0..<runs where run < 2 || DispatchTime.now().uptimeNanoseconds < deadline {
            for (i, n) in nets.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try n.run()
                let t = DispatchTime.now().uptimeNanoseconds - t0
                best[i] = min(best[i], t)
                if trace {
                    let line = String(format: "bf16 probe: run %d %@ %.3f ms\n", run, i == 0 ? "fp32" : "bf16", Double(t) / 1e6)
                    FileHandle.standardError.write(Data(line.utf8))
                }
            }
        }
        return Double(best[0]) / Double(best[1])
    }
}
