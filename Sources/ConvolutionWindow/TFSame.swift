/// TensorFlow's SAME padding along one axis: output = ceil(input / stride), and the total padding
/// that needs, split with the extra pixel after (bottom or right; asymmetric at stride 2). The one
/// definition the inference engine (`BackboneEngine.Padding.same`, which the ONNX export and the
/// Winograd prediction also use) and the fine-tuning engine (`FineTuneCore`'s depthwise geometry) share.
public func tfSamePadding(input: Int, kernel: Int, stride: Int) -> (before: Int, after: Int, output: Int) {
    let output = (input + stride - 1) / stride
    let total = max((output - 1) * stride + kernel - input, 0)
    return (total / 2, total - total / 2, output)
}
