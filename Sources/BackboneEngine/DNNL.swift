import CDNNL
import Foundation

/// Thin, throwing wrappers over oneDNN's C API (oneDNN 2.6, Debian's libdnnl-dev).

public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws {
    guard status == dnnl_success else {
        throw EngineError("oneDNN could not \(what()): \(statusName(status))")
    }
}

func statusName(_ s: dnnl_status_t) -> String {
    switch s {
    case dnnl_out_of_memory: return "out of memory"
    case dnnl_invalid_arguments: return "invalid arguments"
    case dnnl_unimplemented: return "no implementation for these shapes/formats/data types"
    case dnnl_iterator_ends: return "iterator ends"
    case dnnl_runtime_error: return "runtime error"
    case dnnl_not_required: return "not required"
    default: return "status \(s.rawValue)"
    }
}

/// The CPU engine and the one in-order stream every network runs on.
final class DNNLContext: @unchecked Sendable {
    static let shared: DNNLContext = {
        do { return try DNNLContext() } catch { fatalError("oneDNN CPU engine unavailable: \(error)") }
    }()

    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    private init() throws {
        var e: dnnl_engine_t?
        try check(dnnl_engine_create(&e, dnnl_cpu, 0), "create the CPU engine")
        var s: dnnl_stream_t?
        try check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "create a stream")
        engine = e!
        stream = s!
    }
}

/// 64-byte aligned memory owned by Swift (activations, weights, scratchpad).
final class AlignedBuffer {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) throws {
        var p: UnsafeMutableRawPointer?
        let size = max(byteCount, 64)
        guard posix_memalign(&p, 64, size) == 0, let ptr = p else {
            throw EngineError("could not allocate \(size) bytes")
        }
        memset(ptr, 0, size)
        pointer = ptr
        self.byteCount = size
    }

    deinit { free(pointer) }
}

enum MD {
    static func make(_ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims.map { dnnl_dim_t($0) }
        try check(dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, type, tag), "describe a \(dims) tensor")
        return md
    }

    static func plainTag(rank: Int) -> dnnl_format_tag_t {
        switch rank {
        case 1: return dnnl_a
        case 2: return dnnl_ab
        case 3: return dnnl_abc
        case 4: return dnnl_abcd
        default: return dnnl_abcde
        }
    }

    /// Which of the 4-d layouts the engine uses `md` (of `dims`) is in, nil for another: so a tensor
    /// of other dims can be described in the same one.
    static func tag(of md: dnnl_memory_desc_t, dims: [Int]) -> dnnl_format_tag_t? {
        guard dims.count == 4 else { return nil }
        return [dnnl_abcd, dnnl_acdb, dnnl_aBcd8b, dnnl_aBcd16b].first { t in
            (try? make(dims, md.data_type, t)).map { equal($0, md) } ?? false
        }
    }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var m = md
        return dnnl_memory_desc_get_size(&m)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    static func query(_ pd: OpaquePointer, _ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t? {
        guard let p = dnnl_primitive_desc_query_md(pd, what, index) else { return nil }
        return p.pointee
    }

    static func implementation(_ pd: OpaquePointer) -> String {
        var s: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) == dnnl_success, let c = s else { return "?" }
        return String(cString: c)
    }
}

/// Threads of the engine. oneDNN here is built on GNU OpenMP, which reads its settings once, before
/// the first primitive runs: call `configure` first thing in a command.
public enum EngineThreads {
    /// Sets OMP_NUM_THREADS (default: all cores) and returns the count. Unless the user chose a wait
    /// policy, it also shortens OpenMP's spin at barriers (GOMP_SPINCOUNT=10000). Measured with
    /// `extract bench --backbone efficientnet_lite0` while another process held one of the two cores:
    /// 38 images/s with the default spin, 110 with GOMP_SPINCOUNT=1000 or OMP_WAIT_POLICY=passive; on a
    /// quiet machine 1,000-50,000 spins all gave 207-214. A full scenes6 extraction (`extract ... --json`)
    /// ran at 190 images/s with 10,000 spins against 174-181 with 1,000, 300,000 or passive waiting.
    @discardableResult
    public static func configure(_ threads: Int?) -> Int {
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        setenv("OMP_NUM_THREADS", String(n), 1)
        let env = ProcessInfo.processInfo.environment
        if env["OMP_WAIT_POLICY"] == nil && env["GOMP_SPINCOUNT"] == nil { setenv("GOMP_SPINCOUNT", "10000", 1) }
        return n
    }
}
