#!/usr/bin/env bash
# The GEMMs of one fine-tuning step (Lite0 last block + head conv, batch 64: M = 3136, 1x1 layers
# 192->1152, 1152->320, 320->1280; Y = X W^T, dW = dY^T X, dX = dY W; 10 repetitions) through OpenBLAS
# cblas_sgemm and oneDNN dnnl_sgemm, each under `perf stat -e task-clock`: GFLOP per CPU-second is the
# figure other processes on a shared machine disturb least.   tools/bench/finetune_gemm.sh
set -euo pipefail
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
printf 'module CB [system] { header "shim.h" link "openblas" link "dnnl" export * }\n' > "$dir/module.modulemap"
printf '#include <cblas.h>\n#include <oneapi/dnnl/dnnl.h>\n' > "$dir/shim.h"
cat > "$dir/main.swift" <<'SWIFT'
import CB
import Foundation
let M = 3136, shapes = [(192, 1152), (1152, 320), (320, 1280)], lib = CommandLine.arguments[1]
func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: n); for i in 0..<n { p[i] = Float(i % 7) * 0.1 }; return p
}
let bufs = shapes.map { (buf(M * $0.0), buf($0.1 * $0.0), buf(M * $0.1), buf($0.1 * $0.0), buf(M * $0.0)) }
openblas_set_num_threads(2)
var flops = 0.0
let t0 = Date()
for _ in 0..<10 {
    for (i, (cin, cout)) in shapes.enumerated() {
        let (x, w, y, dw, dx) = bufs[i]
        for (ta, tb, m, n, k, a, lda, b, ldb, c, ldc) in [(false, true, M, cout, cin, x, cin, w, cin, y, cout),
                                                          (true, false, cout, cin, M, y, cout, x, cin, dw, cin),
                                                          (false, false, M, cin, cout, y, cout, w, cin, dx, cin)] {
            if lib == "openblas" {
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m),
                            Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
            } else {
                _ = dnnl_sgemm(CChar(UInt8(ascii: ta ? "T" : "N")), CChar(UInt8(ascii: tb ? "T" : "N")), Int64(m),
                               Int64(n), Int64(k), 1, a, Int64(lda), b, Int64(ldb), 0, c, Int64(ldc))
            }
            flops += 2.0 * Double(m * n * k)
        }
    }
}
print(lib, String(format: "%.1f GFLOP in %.3f s wall: %.1f GFLOP/s", flops / 1e9, Date().timeIntervalSince(t0),
                  flops / Date().timeIntervalSince(t0) / 1e9))
SWIFT
swiftc -Ounchecked -I "$dir" "$dir/main.swift" -o "$dir/gemm"
for lib in openblas dnnl openblas dnnl; do
  perf stat -e task-clock -x, -o "$dir/stat" "$dir/gemm" "$lib"
  awk -F, '/task-clock/ { printf "  %.3f CPU-s\n", $1 / 1000 }' "$dir/stat"
done
