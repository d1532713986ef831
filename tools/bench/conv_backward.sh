#!/usr/bin/env bash
# One training step of a full 3x3 convolution (forward, backward data, backward weights) on the shapes
# the fine-tuned blocks have: ResNet50's 3x3 512->512 on 7x7 and VGG16's 512->512 on 14x14, batch 64,
# stride 1, padding 1, NHWC activations. Two ways, alternately, 2 threads (OMP_NUM_THREADS=2):
#   im2col   patches [chunk * H * W, 9 * 512] + dnnl_sgemm (Y = P W'^T, dW' = dY^T P, dP = dY W', col2im),
#            what FineTuneCore does (ConvolutionGeometry), chunks of ~2,048 rows;
#   primitives  oneDNN's convolution_forward (forward_training), convolution_backward_data and
#            convolution_backward_weights, NHWC src/dst, weights in the layout oneDNN picks (format
#            `any`; the reorders a training step needs for it are not timed, favouring oneDNN).
# Prints the best of 5 steps per shape and way, in ms and GFLOP/s (3 x 2 M K N per step).
#   tools/bench/conv_backward.sh
set -euo pipefail
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
printf 'module CB [system] { header "shim.h" link "dnnl" export * }\n' > "$dir/module.modulemap"
printf '#include <oneapi/dnnl/dnnl.h>\n' > "$dir/shim.h"
cat > "$dir/main.swift" <<'SWIFT'
import CB
import Foundation
func ok(_ s: dnnl_status_t, _ what: String) { precondition(s == dnnl_success, "\(what): \(s)") }
func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: n); for i in 0..<n { p[i] = Float(i % 13) * 0.01 - 0.06 }; return p
}
var engine: dnnl_engine_t?, stream: dnnl_stream_t?
ok(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine"); ok(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
func md(_ dims: [Int64], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
    var m = dnnl_memory_desc_t(); ok(dnnl_memory_desc_init_by_tag(&m, Int32(dims.count), dims, dnnl_f32, tag), "md"); return m
}
func mem(_ pd: OpaquePointer, _ q: dnnl_query_t) -> dnnl_memory_t {
    var m: dnnl_memory_t?; ok(dnnl_memory_create(&m, dnnl_primitive_desc_query_md(pd, q, 0), engine, UnsafeMutableRawPointer(bitPattern: -1)), "mem"); return m!
}
func time(_ body: () -> Void) -> Double {
    var best = Double.infinity
    for _ in 0..<6 { let t0 = Date(); body(); best = min(best, Date().timeIntervalSince(t0)) }   // first one warms up
    return best
}
for (n, hw) in [(64, 7), (64, 14)] {
    let c = 512, k = 3, rows = n * hw * hw, cols = k * k * c
    let flops = 3 * 2 * Double(rows) * Double(cols) * Double(c)
    // oneDNN primitives.
    let src = md([Int64(n), Int64(c), Int64(hw), Int64(hw)], dnnl_nhwc), anyW = md([Int64(c), Int64(c), 3, 3], dnnl_format_tag_any)
    var s = src, w = anyW, d = src, fd = dnnl_convolution_desc_t()
    ok(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &s, &w, nil, &d, [1, 1], [1, 1], [1, 1]), "fwd desc")
    var fpd: OpaquePointer?; ok(dnnl_primitive_desc_create(&fpd, &fd, nil, engine, nil), "fwd pd")
    var bd = dnnl_convolution_desc_t(); var s2 = src, w2 = anyW, d2 = src
    ok(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &s2, &w2, &d2, [1, 1], [1, 1], [1, 1]), "bwd data desc")
    var bpd: OpaquePointer?; ok(dnnl_primitive_desc_create(&bpd, &bd, nil, engine, fpd), "bwd data pd")
    var wd = dnnl_convolution_desc_t(); var s3 = src, w3 = anyW, d3 = src
    ok(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &s3, &w3, nil, &d3, [1, 1], [1, 1], [1, 1]), "bwd w desc")
    var wpd: OpaquePointer?; ok(dnnl_primitive_desc_create(&wpd, &wd, nil, engine, fpd), "bwd w pd")
    var fp: dnnl_primitive_t?, bp: dnnl_primitive_t?, wp: dnnl_primitive_t?
    ok(dnnl_primitive_create(&fp, fpd), "fwd"); ok(dnnl_primitive_create(&bp, bpd), "bwd"); ok(dnnl_primitive_create(&wp, wpd), "bwd w")
    let x = mem(fpd!, dnnl_query_src_md), wt = mem(fpd!, dnnl_query_weights_md), y = mem(fpd!, dnnl_query_dst_md)
    let dy = mem(bpd!, dnnl_query_diff_dst_md), dx = mem(bpd!, dnnl_query_diff_src_md), wb = mem(bpd!, dnnl_query_weights_md)
    let dw = mem(wpd!, dnnl_query_diff_weights_md)
    var info: UnsafePointer<CChar>?
    ok(dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &info), "info"); let fImpl = String(cString: info!)
    ok(dnnl_primitive_desc_query(bpd, dnnl_query_impl_info_str, 0, &info), "info"); let bImpl = String(cString: info!)
    ok(dnnl_primitive_desc_query(wpd, dnnl_query_impl_info_str, 0, &info), "info"); let wImpl = String(cString: info!)
    let prim = time {
        var a = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: x), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: wt), dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: y)]
        ok(dnnl_primitive_execute(fp, stream, 3, &a), "run fwd")
        a = [dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_DST, memory: dy), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: wb), dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_SRC, memory: dx)]
        ok(dnnl_primitive_execute(bp, stream, 3, &a), "run bwd")
        a = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: x), dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_DST, memory: dy), dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_WEIGHTS, memory: dw)]
        ok(dnnl_primitive_execute(wp, stream, 3, &a), "run bwd w")
        ok(dnnl_stream_wait(stream), "wait")
    }
    // im2col + sgemm (single-threaded patch copies, as a lower bound on FineTuneCore's two-part split).
    let chunk = max(1, 2048 / (hw * hw)), inp = buf(rows * c), out = buf(rows * c), gout = buf(rows * c), gin = buf(rows * c)
    let wm = buf(c * cols), gw = buf(c * cols), p = buf(chunk * hw * hw * cols)
    func im2col(_ x: UnsafePointer<Float>, _ nb: Int) {
        for b in 0..<nb { for oy in 0..<hw { for ox in 0..<hw { for ky in 0..<3 { for kx in 0..<3 {
            let iy = oy - 1 + ky, ix = ox - 1 + kx, dst = p + ((b * hw + oy) * hw + ox) * cols + (ky * 3 + kx) * c
            if iy < 0 || iy >= hw || ix < 0 || ix >= hw { dst.update(repeating: 0, count: c) } else { dst.update(from: x + ((b * hw + iy) * hw + ix) * c, count: c) }
        } } } } }
    }
    func col2im(_ dx: UnsafeMutablePointer<Float>, _ nb: Int) {
        dx.update(repeating: 0, count: nb * hw * hw * c)
        for b in 0..<nb { for oy in 0..<hw { for ox in 0..<hw { for ky in 0..<3 { for kx in 0..<3 {
            let iy = oy - 1 + ky, ix = ox - 1 + kx
            if iy < 0 || iy >= hw || ix < 0 || ix >= hw { continue }
            let d = dx + ((b * hw + iy) * hw + ix) * c, s = p + ((b * hw + oy) * hw + ox) * cols + (ky * 3 + kx) * c
            for ch in 0..<c { d[ch] += s[ch] }
        } } } } }
    }
    func sgemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ nn: Int, _ kk: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
               _ cc: UnsafeMutablePointer<Float>, _ ldc: Int, _ beta: Float) {
        ok(dnnl_sgemm(CChar(UInt8(ascii: ta ? "T" : "N")), CChar(UInt8(ascii: tb ? "T" : "N")), Int64(m), Int64(nn), Int64(kk), 1, a, Int64(lda), b, Int64(ldb), beta, cc, Int64(ldc)), "sgemm")
    }
    let gemm = time {
        for b0 in stride(from: 0, to: n, by: chunk) {
            let nb = min(chunk, n - b0), m = nb * hw * hw, off = b0 * hw * hw * c
            im2col(inp + off, nb); sgemm(false, true, m, c, cols, p, cols, wm, cols, out + off, c, 0)
        }
        for b0 in stride(from: 0, to: n, by: chunk) {
            let nb = min(chunk, n - b0), m = nb * hw * hw, off = b0 * hw * hw * c
            im2col(inp + off, nb); sgemm(true, false, c, cols, m, gout + off, c, p, cols, gw, cols, b0 == 0 ? 0 : 1)
            sgemm(false, false, m, cols, c, gout + off, c, wm, cols, p, cols, 0); col2im(gin + off, nb)
        }
    }
    print(String(format: "512->512 3x3 on %dx%d, batch %d: im2col + dnnl_sgemm %.1f ms (%.1f GFLOP/s); oneDNN primitives %.1f ms (%.1f GFLOP/s) [%@ | %@ | %@]",
                 hw, hw, n, gemm * 1e3, flops / gemm / 1e9, prim * 1e3, flops / prim / 1e9, fImpl, bImpl, wImpl))
}
SWIFT
swiftc -O -I "$dir" "$dir/main.swift" -o "$dir/bench" 2>&1 | grep -v warning || true
OMP_NUM_THREADS=2 "$dir/bench"
