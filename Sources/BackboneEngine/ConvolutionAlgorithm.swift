import CDNNL
import Foundation

/// How fp32 convolutions compute. `auto` (the default) lets oneDNN choose per convolution
/// (`dnnl_convolution_auto`): on CPUs where it has a Winograd kernel (`jit_wino_4x3:avx512_core`,
/// AVX-512) it runs dense 3x3 stride-1 convolutions of a batch of 4 or more as Winograd F(4x4, 3x3)
/// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): the same sums
/// with 2.25x fewer multiplications for a 3x3 kernel, at a larger rounding error (relative L2 6e-7 to
/// 2.6e-6 on ResNet and VGG features against PyTorch and Keras, `WinogradTests`; direct: 1.6e-7 to 1.8e-6),
/// and the transformed weights take 36/9 = 4x the memory of the 3x3 ones.
/// Everything else, and every convolution elsewhere, stays direct, and so does the image's own
/// convolution (3 input channels): VGG16's `block1.conv1` takes 19.32 ms as Winograd against 7.21 ms
/// direct (`tools/bench/winograd_probe.c 3 64 224`, batch 16), the transforms outweighing 3 channels'
/// products. `direct` keeps every convolution direct. bf16 and int8 convolutions are always direct
/// (oneDNN 2.6 has no bf16 Winograd; int8's calibrated scales are for the direct sums). The
/// extraction's identity does not include the algorithm: both give the same features to ~1e-6.
///
/// Measured with `extract bench --convolution direct|auto --batch 16` alternating on the 2-core AMD
/// EPYC Zen 5 (torchvision layouts, random weights; README): ResNet50 1.19-1.23x, ResNet101
/// 1.27-1.29x, VGG16 2.25-2.28x, at peak RSS 345 -> 490, 486 -> 746 and 569 -> 1196 MB. EfficientNets have no dense 3x3 stride-1
/// convolution: unchanged.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    case auto, direct

    /// Whether a convolution may be offered to oneDNN's Winograd (`dnnl_convolution_auto`): fp32,
    /// dense, not reading the image (fewer than 8 channels).
    static func mayUseWinograd(_ algorithm: ConvolutionAlgorithm, precision: Precision, groups: Int, inChannels: Int) -> Bool {
        algorithm == .auto && precision == .fp32 && groups == 1 && inChannels >= 8
    }

    /// Whether oneDNN has an fp32 Winograd kernel on this CPU (asked for one 3x3 64 -> 64 convolution
    /// of a batch of 8 at 28 x 28 in the preferred layout).
    public static let winogradAvailable: Bool = {
        (try? winograd(batch: 8, inChannels: 64, outChannels: 64, height: 28, width: 28, padding: (1, 1, 1, 1))) == true
    }()

    /// Whether oneDNN runs this fp32 convolution (3x3, stride 1, groups 1) as Winograd under `auto`.
    static func winograd(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
                         padding: (top: Int, left: Int, bottom: Int, right: Int),
                         residual: Bool = false, activation: Activation = .relu) throws -> Bool {
        let tag = ActivationLayout.preferred.tag
        let oh = height + padding.top + padding.bottom - 2, ow = width + padding.left + padding.right - 2
        guard oh > 0, ow > 0 else { return false }
        var src = try MD.make([batch, inChannels, height, width], dnnl_f32, tag)
        var w = try MD.make([outChannels, inChannels, 3, 3], dnnl_f32, dnnl_format_tag_any)
        var b = try MD.make([outChannels], dnnl_f32, dnnl_a)
        var dst = try MD.make([batch, outChannels, oh, ow], dnnl_f32, tag)
        var desc = dnnl_convolution_desc_t()
        try check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_auto, &src, &w, &b, &dst,
                                                     [1, 1], [padding.top, padding.left].map(Int64.init),
                                                     [padding.bottom, padding.right].map(Int64.init)), "describe a Winograd probe")
        let attr = try Attributes(residual: residual, activation: activation)
        defer { attr.destroy() }
        var pd: OpaquePointer?
        guard dnnl_primitive_desc_create(&pd, &desc, attr.handle, DNNLContext.shared.engine, nil) == dnnl_success, let pd else { return false }
        defer { dnnl_primitive_desc_destroy(pd) }
        return isWinograd(pd)
    }

    /// Whether oneDNN chose a Winograd kernel for this convolution (`jit_wino_4x3:avx512_core`).
    static func isWinograd(_ pd: OpaquePointer) -> Bool { MD.implementation(pd).contains("wino") }
}

extension Network {
    /// Every convolution's multiply-adds at `batch` x `height` x `width`, and whether fp32 under
    /// `ConvolutionAlgorithm.auto` runs it as Winograd on this CPU: oneDNN is asked for the
    /// implementation of each convolution `CompiledNetwork` offers it (`mayUseWinograd`, 3x3,
    /// stride 1), with the same shapes, padding and post-ops. None where it has no Winograd kernel.
    public func convolutionWork(batch: Int, height: Int, width: Int) -> [(layer: String, macs: Double, winograd: Bool)] {
        var shapes: [String: (c: Int, h: Int, w: Int)] = [Builder.userInput: (inputChannels, height, width)]
        var work: [(layer: String, macs: Double, winograd: Bool)] = []
        var answers: [String: Bool] = [:]
        for layer in layers {
            guard let x = layer.inputs.first.flatMap({ shapes[$0] }) else { continue }
            switch layer.op {
            case .conv(let c):
                let window = c.padding.window(input: (x.h, x.w), kernel: c.kernel, stride: c.stride)
                shapes[layer.name] = (c.outChannels, window.height, window.width)
                let macs = Double(batch * c.outChannels * window.height * window.width * (x.c / c.groups) * c.kernel.h * c.kernel.w)
                var winograd = false
                if ConvolutionAlgorithm.winogradAvailable,
                   ConvolutionAlgorithm.mayUseWinograd(.auto, precision: .fp32, groups: c.groups, inChannels: x.c),
                   c.kernel == (3, 3), c.stride == 1 {
                    let key = "\(x.c) \(c.outChannels) \(x.h) \(x.w) \(window) \(c.residual != nil) \(c.activation)"
                    if answers[key] == nil {
                        answers[key] = (try? ConvolutionAlgorithm.winograd(batch: batch, inChannels: x.c, outChannels: c.outChannels,
                                                                           height: x.h, width: x.w, padding: (window.top, window.left, window.bottom, window.right),
                                                                           residual: c.residual != nil, activation: c.activation)) == true
                    }
                    winograd = answers[key]!
                }
                work.append((layer.name, macs, winograd))
            case .maxPool(let k, let s, let p), .averagePool(let k, let s, let p):
                let window = p.window(input: (x.h, x.w), kernel: (k, k), stride: s)
                shapes[layer.name] = (x.c, window.height, window.width)
            case .globalAveragePool: shapes[layer.name] = (x.c, 1, 1)
            case .dense(let d): shapes[layer.name] = (d.outFeatures, 1, 1)
            case .activation, .add, .multiply: shapes[layer.name] = x
            }
        }
        return work
    }

    /// The share of the convolution multiply-adds that run as Winograd (`convolutionWork`):
    /// `PrecisionDecision` weighs bf16 against fp32 with it.
    public func winogradShare(batch: Int, height: Int, width: Int) -> Double {
        let work = convolutionWork(batch: batch, height: height, width: width)
        let total = work.reduce(0) { $0 + $1.macs }
        return total > 0 ? work.filter(\.winograd).reduce(0) { $0 + $1.macs } / total : 0
    }
}
