import BackboneEngine

/// How a backbone wants its pixels. It belongs to the backbone's definition (and to the source of
/// its weights), never to the user: the scene experiment lost 15-70 points of accuracy by dividing
/// pixels by 255 before Keras models that expected 0-255. Here a caller hands over 8-bit RGB
/// pixels and nothing else.
///
/// value = (pixel - mean[c]) / std[c], with pixel in 0...255 and channels in `order`.
public struct Preprocessing: Codable, Hashable, Sendable, CustomStringConvertible {
    public enum ChannelOrder: String, Codable, Sendable { case rgb, bgr }

    public let order: ChannelOrder
    /// Per-channel mean and standard deviation in 0-255 units, in `order`.
    public let mean: [Float]
    public let std: [Float]

    public init(order: ChannelOrder, mean: [Float], std: [Float]) {
        self.order = order
        self.mean = mean
        self.std = std
    }

    /// TensorFlow EfficientNet-Lite: (x - 127) / 128 on RGB.
    public static let tfLite = Preprocessing(order: .rgb, mean: [127, 127, 127], std: [128, 128, 128])
    /// torchvision / timm ImageNet: RGB scaled to 0-1, then ImageNet mean and std.
    public static let imagenet = Preprocessing(order: .rgb, mean: [0.485 * 255, 0.456 * 255, 0.406 * 255],
                                               std: [0.229 * 255, 0.224 * 255, 0.225 * 255])
    /// Keras "caffe" mode (VGG16, ResNet v1): BGR, ImageNet mean subtracted on 0-255, no scaling.
    public static let caffe = Preprocessing(order: .bgr, mean: [103.939, 116.779, 123.68], std: [1, 1, 1])
    /// Raw 0-255 RGB, unchanged: for models that normalize their input themselves (Keras
    /// EfficientNet's Rescaling + Normalization layers, whose values are in the weights file: the
    /// network's `inputAffine`, which `followed(by:)` folds in when an extractor runs).
    public static let rawRGB = Preprocessing(order: .rgb, mean: [0, 0, 0], std: [1, 1, 1])

    /// This preprocessing, then `x * scale[c] + shift[c]` on output channel `c`, as one
    /// preprocessing: `((p - m) / s) * a + b = (p - (m - b * s / a)) / (s / a)`. `self` when `affine`
    /// is nil. Every scale must be nonzero (a Keras Normalization's is at least 1e-7 / 255).
    public func followed(by affine: ChannelAffine?) -> Preprocessing {
        guard let affine else { return self }
        let m = (0..<3).map { c in Float(Double(mean[c]) - Double(affine.shift[c]) * Double(std[c]) / Double(affine.scale[c])) }
        let s = (0..<3).map { c in Float(Double(std[c]) / Double(affine.scale[c])) }
        return Preprocessing(order: order, mean: m, std: s)
    }

    /// A stable identity recorded with every extraction.
    public var description: String {
        func list(_ v: [Float]) -> String { v.map { String(format: "%.4f", $0) }.joined(separator: ",") }
        return "\(order.rawValue);mean=\(list(mean));std=\(list(std))"
    }

    /// Writes `count` square `size` x `size` RGB images (HWC, 8-bit, contiguous) into `out` as
    /// N x 3 x size x size floats. This is the only place pixels become backbone input.
    public func apply(rgb: UnsafePointer<UInt8>, count: Int, size: Int, into out: UnsafeMutablePointer<Float>) {
        let plane = size * size
        // A 256-entry table per output channel: one load per pixel instead of a subtract and multiply.
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 { for v in 0..<256 { table[c * 256 + v] = (Float(v) - mean[c]) / std[c] } }
        // Output channel c reads input channel src[c] (BGR reverses).
        let src = order == .rgb ? (0, 1, 2) : (2, 1, 0)
        table.withUnsafeBufferPointer { t in
            let t0 = t.baseAddress!, t1 = t0 + 256, t2 = t0 + 512
            for n in 0..<count {
                let image = rgb + n * plane * 3
                let o0 = out + n * plane * 3, o1 = o0 + plane, o2 = o1 + plane
                for i in 0..<plane {
                    let p = image + i * 3
                    o0[i] = t0[Int(p[src.0])]
                    o1[i] = t1[Int(p[src.1])]
                    o2[i] = t2[Int(p[src.2])]
                }
            }
        }
    }
}
