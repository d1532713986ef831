// The trainer's matrix products, on OpenBLAS or oneDNN.
//
// Every GEMM of the trainer (the blocked Dense1 forward and first-layer gradient of a training
// step, the small output-layer products, evaluation, L-BFGS) goes through `gemm` below, which calls
// one backend for the whole process:
//
// - OpenBLAS (cblas_sgemm) when the kernels of its core (openblas_get_corename()) use the widest
//   vector instructions the CPU has. Debian's DYNAMIC_ARCH build picks the core from the CPU model
//   (or OPENBLAS_CORETYPE), not from its features: on CPUs newer than the build it falls back to
//   its oldest kernels (issue #14: 'Prescott' on a Xeon of family 6 model 207 with AVX-512, 67% of
//   bench-epoch's cycles in sgemm_kernel_PRESCOTT).
// - oneDNN (dnnl_sgemm, gemm.c) when the OpenBLAS core is narrower than the CPU: oneDNN picks its
//   kernels from the CPU's features. It runs single-threaded on the calling thread, like OpenBLAS
//   here (the trainer parallelises by itself).
//
// WORKBENCH_TRAINER_GEMM=openblas|onednn|auto overrides the choice (benchmarks, tests).
//
// Measured on a 2-core AMD EPYC (Zen 5, AVX-512) shared with other jobs (load 10-12), medians of 5
// alternating rounds of `tools/bench/gemm_fallback.sh` (bench-epoch, 11,228 x 1280, s/epoch):
//   hidden 256, batch 32, --threads 1: OpenBLAS 'Prescott' 1.28, OpenBLAS 'Haswell' 0.58, oneDNN 0.34
//                         --threads 2: OpenBLAS 'Prescott' 1.06, OpenBLAS 'Haswell' 0.50, oneDNN 0.34
//   against OpenBLAS 'SkylakeX' (AVX-512, this CPU's widest; OPENBLAS_CORETYPE=SkylakeX set for the
//   command), oneDNN / OpenBLAS: hidden 256 batch 32: 1.13 (--threads 1), 1.10 (--threads 2);
//   hidden 512: 1.06; batch 256: 0.80 (--threads 1).
// So OpenBLAS stays where its core matches the CPU (it is ahead at batch 32), and oneDNN replaces
// a narrower core. dnnl_sgemm's per-call cost, on the trainer's real shapes (~35 calls per step at
// batch 32): `perf record -g train-head bench-epoch --threads 1 --epochs 5` with oneDNN spent 53%
// of samples in its JIT kernels, 5% in libdnnl's driver and 1.5% in libc (its buffers); with
// OpenBLAS 'SkylakeX', 54% in sgemm_small_kernel_*_SKYLAKEX.

import CHeadKernels
import COpenBLAS
import Foundation

public enum GEMMBackend: String, CaseIterable, Codable, Sendable {
    case openblas, onednn
}

/// Widest vector instruction set of the CPU or of a library's kernels (x86-64; other CPUs: `.sse`).
public enum CPUVectorISA: Int, CaseIterable, Comparable, Codable, Sendable, CustomStringConvertible {
    case sse = 0, avx = 1, avx2 = 2, avx512 = 3

    /// This CPU's (CPUID, with OS support).
    public static let current = CPUVectorISA(rawValue: Int(chk_cpu_vector_isa())) ?? .sse

    /// The vector instructions of the kernels of an OpenBLAS core (openblas_get_corename() of a
    /// DYNAMIC_ARCH build, case-insensitive); nil for a name not in the table.
    public init?(openBLASCore name: String) {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": self = .avx512
        case "haswell", "zen": self = .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": self = .avx
        case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
             "nehalem", "athlon", "opteron", "opteron_sse3", "opteron(sse3)", "barcelona", "nano", "bobcat", "unknown":
            self = .sse
        default: return nil
        }
    }

    public static func < (a: CPUVectorISA, b: CPUVectorISA) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["SSE", "AVX", "AVX2", "AVX-512"][rawValue] }
}

/// A backend and why it was chosen.
public struct GEMMChoice: Equatable, Codable, Sendable {
    public var backend: GEMMBackend
    public var reason: String

    /// The automatic choice for OpenBLAS core `openBLASCore` on a CPU with `cpu`: oneDNN when the
    /// core's kernels are narrower than the CPU (an unknown core counts as SSE), else OpenBLAS.
    public static func automatic(openBLASCore: String, cpu: CPUVectorISA) -> GEMMChoice {
        let known = CPUVectorISA(openBLASCore: openBLASCore)
        let core = known ?? .sse
        let coreText = known == nil ? "OpenBLAS core '\(openBLASCore)' is not a known core (taken as SSE)"
                                    : "OpenBLAS core '\(openBLASCore)' has \(core) kernels"
        if core < cpu {
            return GEMMChoice(backend: .onednn, reason: "\(coreText), the CPU has \(cpu): oneDNN picks kernels by CPU features")
        }
        return GEMMChoice(backend: .openblas, reason: "\(coreText), the CPU has \(cpu)")
    }

    /// The choice for a value of WORKBENCH_TRAINER_GEMM (nil or "auto": automatic).
    public static func resolve(setting: String?, openBLASCore: String, cpu: CPUVectorISA) -> GEMMChoice {
        let auto = automatic(openBLASCore: openBLASCore, cpu: cpu)
        switch setting?.lowercased() {
        case nil, "", "auto": return auto
        case let s?:
            if let forced = GEMMBackend(rawValue: s) {
                return GEMMChoice(backend: forced, reason: "WORKBENCH_TRAINER_GEMM=\(s) (automatic: \(auto.backend.rawValue))")
            }
            return GEMMChoice(backend: auto.backend, reason: "WORKBENCH_TRAINER_GEMM='\(setting!)' ignored (use openblas, onednn or auto); \(auto.reason)")
        }
    }
}

/// The process-wide GEMM backend of the trainer.
public enum TrainerGEMM {
    public static var openBLASCore: String { String(cString: openblas_get_corename()) }

    /// Made once, on first use, from WORKBENCH_TRAINER_GEMM, the OpenBLAS core and the CPU.
    static let environmentChoice: GEMMChoice = {
        let setting = ProcessInfo.processInfo.environment["WORKBENCH_TRAINER_GEMM"]
        let c = GEMMChoice.resolve(setting: setting, openBLASCore: openBLASCore, cpu: CPUVectorISA.current)
        if let setting, !["", "auto", "openblas", "onednn"].contains(setting.lowercased()) {
            FileHandle.standardError.write(Data("warning: WORKBENCH_TRAINER_GEMM='\(setting)' is not openblas, onednn or auto; using \(c.backend.rawValue)\n".utf8))
        }
        return c
    }()

    /// The choice in use. Tests and benchmarks may set it while no training runs.
    public static var choice: GEMMChoice = environmentChoice { didSet { backend = choice.backend } }
    /// `choice.backend`, read by every `gemm` call (a plain enum: no reference counting there).
    static var backend: GEMMBackend = environmentChoice.backend
}

/// Row-major C = alpha * op(A) * op(B) + beta * C, on the backend of `TrainerGEMM.choice`.
@inline(__always)
func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    switch TrainerGEMM.backend {
    case .openblas:
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    case .onednn:
        let status = chk_onednn_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        if status != 0 { fatalError("oneDNN sgemm failed (dnnl_status_t \(status)) for \(m) x \(n) x \(k); run with WORKBENCH_TRAINER_GEMM=openblas") }
    }
}
