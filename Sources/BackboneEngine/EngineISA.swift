import CDNNL
import Foundation

/// What oneDNN's kernels can do on this CPU: its effective instruction set (the CPU's, capped by
/// `ONEDNN_MAX_CPU_ISA`). The one place the engine asks; /proc/cpuinfo (`CPUFeatures`) says what the
/// CPU is, this says what oneDNN 2.6 will run on it. `ONEDNN_MAX_CPU_ISA=AVX2` makes a CPU with
/// AVX-512 behave as an AVX2-only one (Haswell to Zen 3), `AVX512_CORE` as an AVX-512 one without
/// VNNI or bf16 (Skylake-X); `make test` runs the suite so as well.
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
    /// large sums (oneDNN's "Nuances of int8 Computations"). See `int8WeightLevels`.
    public var vnni: Bool { has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni) }

    /// The largest |quantized weight| an int8 (non-depthwise) convolution can use here without
    /// saturating: 127 with VNNI; 63 without (2 x 255 x 63 = 32,130 fits 16 bits). Lite0's int8 features
    /// under `ONEDNN_MAX_CPU_ISA=AVX2` with 127: cosine to fp32 0.88-0.99 on the `Int8Tests` fixtures.
    public var int8WeightLevels: Int { vnni ? 127 : 63 }

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

    /// Why a network in `precision` (int8: its convolutions' weights rounded to `weightLevels` levels)
    /// cannot compile here, nil when it can.
    public func cannotRun(_ precision: Precision, weightLevels: Int = 127) -> String? {
        switch precision {
        case .bf16: return bf16Unavailable
        case .int8 where weightLevels > int8WeightLevels:
            return "its int8 weights have \(weightLevels) levels, which oneDNN's int8 kernels on this CPU (\(name), no VNNI) would saturate"
        default: return nil
        }
    }

    /// Why `--precision bf16` cannot run here, nil when it can.
    public var bf16Unavailable: String? {
        bf16Convolutions ? nil
            : "oneDNN has no bf16 convolutions on this CPU (its instruction set here: \(name); bf16 needs AVX-512)"
    }
}
