import CDNNL
import CHeadKernels
import COpenBLAS
import ConvolutionWindow
import Foundation

/// A float buffer owned by the trainer (activations, gradients, Adam moments).
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    convenience init(_ values: [Float]) {
        self.init(values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
    deinit { pointer.deallocate() }
    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    func zero() { pointer.update(repeating: 0, count: count) }
}

/// Which library multiplies the matrices of the 1x1 convolutions (see `FineTuner`).
public enum GemmLibrary: String, Codable, Sendable, CaseIterable {
    /// OpenBLAS `cblas_sgemm` (its kernel follows OPENBLAS_CORETYPE; threads `FineTuneOptions.threads`).
    case openBLAS
    /// oneDNN `dnnl_sgemm` (JIT for the CPU it runs on; OpenMP threads, OMP_NUM_THREADS, default all cores).
    case oneDNN
}

/// Row-major C[m x n] = op(A) op(B) + beta C.
@inline(__always)
func gemm(_ library: GemmLibrary, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
          _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
          _ c: UnsafeMutablePointer<Float>, _ ldc: Int, beta: Float = 0) {
    switch library {
    case .openBLAS:
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    case .oneDNN:
        let status = dnnl_sgemm(CChar(UInt8(ascii: transA ? "T" : "N")), CChar(UInt8(ascii: transB ? "T" : "N")),
                                Int64(m), Int64(n), Int64(k), 1, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == dnnl_success, "dnnl_sgemm failed (\(status)) on \(m)x\(n)x\(k)")
    }
}

/// Sum over rows of a row-major [rows x cols] matrix into out[cols] (overwritten).
func columnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(repeating: 0, count: cols)
    for r in 0..<rows {
        let row = x + r * cols
        for c in 0..<cols { out[c] += row[c] }
    }
}

/// Splits 0..<count into `parts` contiguous ranges run concurrently: the loops around the GEMMs
/// (batch norm, activations, depthwise), which OpenBLAS's threads do not cover.
///
/// The parts run on OpenMP's threads (`chk_omp_run`), the ones oneDNN's GEMMs use: with libdispatch
/// workers instead, OpenMP's threads spin-waiting between GEMMs competed with them for the 2 cores
/// (`perf`: a third of the cycles in libgomp); `train-head bench-finetune --rows 2048` measured 5.4-5.7 s
/// per epoch that way and 4.0 s with OMP_WAIT_POLICY=passive.
func parallel(_ count: Int, parts: Int, _ body: (Range<Int>) -> Void) {
    let p = max(1, min(parts, count))
    if p == 1 { body(0..<count); return }
    withoutActuallyEscaping(body) { body in
        var job = ParallelJob(count: count, parts: p, body: body)
        withUnsafeMutablePointer(to: &job) { ptr in
            chk_omp_run(p, { ctx, i in
                let job = ctx!.assumingMemoryBound(to: ParallelJob.self).pointee
                job.body(job.count * Int(i) / job.parts ..< job.count * (Int(i) + 1) / job.parts)
            }, ptr)
        }
    }
}

private struct ParallelJob {
    let count: Int, parts: Int
    let body: (Range<Int>) -> Void
}

/// Geometry of a depthwise convolution on NHWC activations.
struct DepthwiseGeometry {
    let channels: Int, kernel: Int, stride: Int
    let inH: Int, inW: Int, outH: Int, outW: Int, padTop: Int, padLeft: Int

    init(channels: Int, kernel: Int, stride: Int, padding: Padding, inH: Int, inW: Int) {
        self.channels = channels; self.kernel = kernel; self.stride = stride; self.inH = inH; self.inW = inW
        switch padding {
        case .tfSame:
            let v = tfSamePadding(input: inH, kernel: kernel, stride: stride), h = tfSamePadding(input: inW, kernel: kernel, stride: stride)
            (outH, padTop, outW, padLeft) = (v.output, v.before, h.output, h.before)
        case .symmetric:
            padTop = kernel / 2; padLeft = kernel / 2
            outH = (inH + 2 * padTop - kernel) / stride + 1; outW = (inW + 2 * padLeft - kernel) / stride + 1
        }
    }

    /// The same geometry for the C kernels (`chk_ft_depthwise`, finetune_body.h: the loops over
    /// output pixels, taps and channels).
    var window: chk_ft_window {
        chk_ft_window(channels: channels, kernel: kernel, stride: stride, in_h: inH, in_w: inW, out_h: outH, out_w: outW,
                      pad_top: padTop, pad_left: padLeft)
    }
}

// Swish and sigmoid (EfficientNet-B0's blocks, squeeze-excite gates): plain loops that LLVM vectorizes
// for the baseline (SSE) around libm's expf. ReLU and ReLU6 run in the C kernels (`kernelCode`).
extension Activation {
    /// The activation's code for the fine-tuning C kernels (finetune_body.h), nil for those in Swift.
    var kernelCode: Int32? {
        switch self {
        case .relu: Int32(CHK_FT_RELU)
        case .relu6: Int32(CHK_FT_RELU6)
        case .swish, .sigmoid: nil
        }
    }

    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        switch self {
        case .relu: for i in 0..<n { y[i] = max(x[i], 0) }
        case .relu6: for i in 0..<n { y[i] = min(max(x[i], 0), 6) }
        case .sigmoid: for i in 0..<n { y[i] = 1 / (1 + expf(-x[i])) }
        case .swish: for i in 0..<n { y[i] = x[i] / (1 + expf(-x[i])) }
        }
    }

    /// dx = dy * f'(x) (dx may be dy).
    func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int) {
        switch self {
        case .relu: for i in 0..<n { dx[i] = dy[i] * (x[i] > 0 ? 1 : 0) }
        case .relu6:
            for i in 0..<n { let v = x[i]; dx[i] = dy[i] * ((v > 0 ? 1 : 0) * (v < 6 ? 1 : 0) as Float) }
        case .sigmoid:
            for i in 0..<n { let s = 1 / (1 + expf(-x[i])); dx[i] = dy[i] * s * (1 - s) }
        case .swish:
            for i in 0..<n { let s = 1 / (1 + expf(-x[i])); dx[i] = dy[i] * s * (1 + x[i] * (1 - s)) }
        }
    }
}

/// A full k x k convolution on NHWC activations as im2col + GEMM: the patches of `chunk` samples are
/// copied into a [chunk * outH * outW, k * k * Cin] matrix (columns ordered tap, input channel), so
/// forward is Y = cols W'^T, backward dW' = dY^T cols and dcols = dY W' followed by col2im, with W'
/// the weights reordered to [Cout, k * k * Cin]. Chunks bound the matrix (about 2,048 rows; VGG's
/// 512 x 14 x 14 3x3: 37 MB) and let backward recompute the patches instead of keeping them.
///
/// Why im2col + GEMM and not oneDNN's convolution training primitives: `tools/bench/conv_backward.sh`
/// times one training step (forward, backward data, backward weights) of the 3x3 512 -> 512 layers,
/// batch 64, 2 threads, both ways alternately. On this shared 2-core AVX-512 machine (load 7.9-9.8) the
/// primitives (brgconv / jit:avx512_core) took 353 and 468 ms against 408 and 572 ms on 7x7 (ResNet50,
/// 1.15-1.22x faster, before the weight reorders to their blocked layout that a training step needs
/// and the benchmark leaves out), and 2,281 and 2,327 ms against 2,200 and 2,246 ms on 14x14 (VGG16,
/// 1.04x slower). Neither wins on both shapes; im2col + GEMM keeps one path for every convolution (the
/// 1x1 layers' GEMM, `GemmLibrary`, NHWC buffers, no per-step weight reorders). Left: the primitives
/// for the 7x7 layers.
struct ConvolutionGeometry {
    /// Padding and output size (the depthwise geometry with the input's channels).
    let window: DepthwiseGeometry
    let outChannels: Int

    var channels: Int { window.channels }
    var taps: Int { window.kernel * window.kernel }
    var columns: Int { taps * window.channels }
    var outPixels: Int { window.outH * window.outW }
    var chunk: Int { max(1, 2048 / outPixels) }

    /// W [out, in, k, k] -> W' [out, k * k * in].
    func reorder(_ w: UnsafePointer<Float>, into wt: UnsafeMutablePointer<Float>) {
        let c = channels, t = taps
        for o in 0..<outChannels { for ci in 0..<c { for tap in 0..<t { wt[(o * t + tap) * c + ci] = w[(o * c + ci) * t + tap] } } }
    }

    /// W' [out, k * k * in] -> W [out, in, k, k].
    func restore(_ wt: UnsafePointer<Float>, into w: UnsafeMutablePointer<Float>) {
        let c = channels, t = taps
        for o in 0..<outChannels { for ci in 0..<c { for tap in 0..<t { w[(o * c + ci) * t + tap] = wt[(o * t + tap) * c + ci] } } }
    }

    /// The patch matrix of `batch` samples (zeros where the window leaves the image).
    func im2col(_ x: UnsafePointer<Float>, _ cols: UnsafeMutablePointer<Float>, batch: Int, threads: Int) {
        let g = window, c = channels, inSize = g.inH * g.inW * c, k = columns
        parallel(batch * g.outH, parts: threads) { rows in for row in rows {
            let b = row / g.outH, oy = row % g.outH, xb = x + b * inSize
            for ox in 0..<g.outW {
                let dst = cols + ((b * g.outH + oy) * g.outW + ox) * k
                for ky in 0..<g.kernel {
                    let iy = oy * g.stride - g.padTop + ky
                    for kx in 0..<g.kernel {
                        let ix = ox * g.stride - g.padLeft + kx, d = dst + (ky * g.kernel + kx) * c
                        if iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW { d.update(repeating: 0, count: c) }
                        else { d.update(from: xb + (iy * g.inW + ix) * c, count: c) }
                    }
                }
            }
        } }
    }

    /// dx (overwritten) = the patch gradients `dcols` of `batch` samples added back to their pixels.
    func col2im(_ dcols: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, batch: Int, threads: Int) {
        let g = window, c = channels, inSize = g.inH * g.inW * c, k = columns
        parallel(batch, parts: threads) { samples in for b in samples {
            let xb = dx + b * inSize
            xb.update(repeating: 0, count: inSize)
            for oy in 0..<g.outH { for ox in 0..<g.outW {
                let src = dcols + ((b * g.outH + oy) * g.outW + ox) * k
                for ky in 0..<g.kernel {
                    let iy = oy * g.stride - g.padTop + ky
                    if iy < 0 || iy >= g.inH { continue }
                    for kx in 0..<g.kernel {
                        let ix = ox * g.stride - g.padLeft + kx
                        if ix < 0 || ix >= g.inW { continue }
                        let d = xb + (iy * g.inW + ix) * c, s = src + (ky * g.kernel + kx) * c
                        for ch in 0..<c { d[ch] += s[ch] }
                    }
                }
            } }
        } }
    }
}

/// A `kernel` x `kernel` max pool with stride `stride` and no padding on NHWC activations.
struct MaxPoolGeometry {
    let channels: Int, kernel: Int, stride: Int, inH: Int, inW: Int
    var outH: Int { (inH - kernel) / stride + 1 }
    var outW: Int { (inW - kernel) / stride + 1 }

    /// Calls `body(outOffset, inOffset of the window's first maximum)` per output value of one sample
    /// (PyTorch's rule: the first maximum in row-major window order takes the gradient).
    @inline(__always)
    func forEachMaximum(_ x: UnsafePointer<Float>, _ body: (Int, Int) -> Void) {
        let c = channels
        for oy in 0..<outH { for ox in 0..<outW { for ch in 0..<c {
            var best = -Float.infinity, at = ((oy * stride) * inW + ox * stride) * c + ch
            for ky in 0..<kernel { for kx in 0..<kernel {
                let q = ((oy * stride + ky) * inW + ox * stride + kx) * c + ch
                if x[q] > best || x[q].isNaN { best = x[q]; at = q }
            } }
            body((oy * outW + ox) * c + ch, at)
        } } }
    }
}
