import CDNNL
import Foundation

/// What oneDNN's kernels can do on this CPU: its effective instruction set (the CPU's, capped by
/// `ONEDNN_MAX_CPU_ISA`). The one place the engine asks; /proc/cpuinfo (`CPUFeatures`) says what the
/// CPU is, this says what oneDNN 2.6 will run on it. `ONEDNN_MAX_CPU_ISA=AVX2` makes a CPU with
/// AVX-512 behave as an AVX2-only one (Haswell to Zen 3), `AVX512_CORE` as an AVX-512 one without
/// VNNI or bf16 (Skylake-X); `make test` runs the backbone and command-line tests again under
/// `AVX2`, and the int8 ones under `AVX512_CORE`.
public struct EngineISA: Equatable, Sendable {
    /// oneDNN's `dnnl_cpu_isa_t` bits.
    public let bits: UInt32

    public init(bits: UInt32) { self.bits = bits }

    /// Some of oneDNN's levels, for tests and for pretending to be another CPU.
    public static let avx2 = EngineISA(bits: UInt32(dnnl_cpu_isa_avx2.rawValue))
    public static let avx2VNNI = EngineISA(bits: UInt32(dnnl_cpu_isa_avx2_vnni.rawValue))
    public static let avx512Core = EngineISA(bits: UInt32(dnnl_cpu_isa_avx512_core.rawValue))
    public static let avx512CoreBF16 = EngineISA(bits: UInt32(dnnl_cpu_isa_avx512_core_bf16.rawValue))

    /// This process's (fixed at oneDNN's first use).
    public static let current = EngineISA(bits: UInt32(dnnl_get_effective_cpu_isa().rawValue))

    private func has(_ isa: dnnl_cpu_isa_t) -> Bool { bits & UInt32(isa.rawValue) == UInt32(isa.rawValue) }

    /// AVX-512 kernels (16-channel blocks); else AVX2 ones (8-channel blocks).
    public var avx512: Bool { has(dnnl_cpu_isa_avx512_core) }

    /// bf16 convolutions: oneDNN 2.6 has them from `avx512_core` up (natively with avx512_bf16 or
    /// AMX, converting otherwise); on AVX2 it has none ("no implementation" for every bf16 convolution).
    public var bf16Convolutions: Bool { avx512 }

    /// int8 dot products in one instruction (`vpdpbusd`: avx512_core_vnni, avx2_vnni, AMX).
    /// Without, oneDNN multiplies u8 by s8 with `vpmaddubsw`, which adds pairs of products into a
    /// saturating 16-bit integer: 2 x 255 x 127 = 64,770 overflows 32,767, so 8-bit weights lose
    /// large sums (oneDNN's "Nuances of int8 Computations"); see `Int8WeightRule`.
    public var vnni: Bool { has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni) }

    /// Which int8 kernels oneDNN runs here, for `--precision int8`'s reason: with VNNI (`vpdpbusd`,
    /// one instruction per 4 products), or two-step AVX-512/AVX2 sequences whose 16-bit sums
    /// would saturate with 8-bit weights, so weights are limited (`Int8WeightRule.pairs16`).
    public var int8Kernels: String {
        vnni ? "oneDNN's VNNI int8 kernels (\(name))"
            : "no VNNI for oneDNN here (\(name)): int8 runs its AVX-512/AVX2 kernels without it, slower, and with weights limited to 7 bits or to pairs summing to 128 levels (a little further from fp32)"
    }

    /// How int8 convolutions round their weights here (`Int8WeightRule`).
    public var int8WeightRule: Int8WeightRule { vnni ? .full : .pairs16 }

    /// oneDNN's name for it, as `ONEDNN_MAX_CPU_ISA` spells it.
    public var name: String {
        let known: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "AVX512_CORE_AMX"), (dnnl_cpu_isa_avx512_core_bf16, "AVX512_CORE_BF16"),
            (dnnl_cpu_isa_avx512_core_vnni, "AVX512_CORE_VNNI"), (dnnl_cpu_isa_avx512_core, "AVX512_CORE"),
            (dnnl_cpu_isa_avx2_vnni, "AVX2_VNNI"), (dnnl_cpu_isa_avx2, "AVX2"), (dnnl_cpu_isa_avx, "AVX"),
            (dnnl_cpu_isa_sse41, "SSE41"),
        ]
        return known.first { has($0.0) }?.1 ?? "ALL"
    }

    /// Why a network in `precision` (int8: its convolutions' weights rounded by `weights`) cannot
    /// compile here, nil when it can.
    public func cannotRun(_ precision: Precision, weights: Int8WeightRule = .full) -> String? {
        switch precision {
        case .bf16: return bf16Unavailable
        case .int8 where !weights.runs(on: self):
            return "its int8 weights use 8 bits, whose sums oneDNN's int8 kernels on this CPU (\(name), no VNNI) would saturate"
        default: return nil
        }
    }

    /// Why `--precision bf16` cannot run here, nil when it can.
    public var bf16Unavailable: String? {
        bf16Convolutions ? nil
            : "oneDNN has no bf16 convolutions on this CPU (its instruction set here: \(name); bf16 needs AVX-512)"
    }
}

/// How an int8 network rounds the weights of its non-depthwise convolutions, for the kernels that run it.
public enum Int8WeightRule: String, Codable, Sendable {
    /// Up to 127 levels per output channel: VNNI kernels add products in 32 bits.
    case full
    /// For kernels without VNNI, which add each pair of u8 x s8 products (adjacent input channels,
    /// at one kernel position) into a saturating 16-bit integer: the positive weights of a pair,
    /// and the negative ones, sum to at most 128 levels (255 x 128 = 32,640 fits), up to 127 each;
    /// convolutions of s8 inputs get 63 levels, which oneDNN's kernels without VNNI halve as they
    /// reorder them (`scale_adjust` 0.5; doubled first, so the halving is exact). Depthwise ones of
    /// u8 inputs keep 127 (their kernels widen to 32 bits). The same rule on VNNI kernels gives
    /// the same features, bit for bit on the 2-core AMD EPYC Zen 5 (`Int8ExtractTests`). Lite1 on the 2,400 scenes6 images, lowest cosine of int8 to fp32
    /// features: 0.9714 with 63 levels everywhere, 0.9869 (VNNI kernels) with 63 levels for the
    /// u8-input convolutions only, 0.9912 with 63 for the s8-input ones only, 0.9928 with `full`
    /// (exploratory switches, tenth session).
    case pairs16

    /// Whether a network compiled with this rule computes exactly on `isa`'s kernels: `pairs16`
    /// everywhere (VNNI too: the same features), `full` only with VNNI.
    public func runs(on isa: EngineISA) -> Bool { self == .pairs16 || isa.vnni }

    /// The most a positive (or negative) pair may sum to under `pairs16`.
    static let pairLimit: Float = 128
}
