import CDNNL
import Foundation

/// What `--precision int8` needs beyond the weights: the range of every layer's output, measured in
/// fp32 on images spread over a run's dataset. A tensor an int8 convolution reads or writes is quantized per
/// tensor from its range (`scale = 255 / max` as u8 when its minimum is >= 0, else `127 / max|x|` as
/// s8); the bound of a signed tensor is clipped where its quantization's squared error is least,
/// clipping weighted 4x (`signedClipBound`). Weights are quantized per output channel from their own
/// values when the network is compiled.
/// Rounding the weights shifts each output's mean by (rounded - exact weights) . E[input]: given the
/// channel `means` of the inputs over the calibration images, a compiled convolution subtracts that
/// shift from its bias (bias correction: Nagel et al. 2019, "Data-Free Quantization Through Weight
/// Equalization and Bias Correction", section 4.2, its empirical form).
/// Depthwise convolutions run in int8 where an int8 convolution writes their input (`depthwise`).
/// Their 9 or 25 weights per channel lose more to rounding than a 1 x 1 convolution's hundreds, so
/// under such a calibration each channel's scale, in every int8 convolution, is the one of 64...127
/// levels for its largest weight that rounds its weights with the least squared error
/// (`quantizeWeights(search:)`).
/// The calibration is stored with the extraction (`storedPrecision`), so a resumed run compiles the
/// same int8 network instead of calibrating again.
public struct Int8Calibration: Equatable, Sendable, Codable {
    /// How many images the ranges were measured on.
    public var images: Int
    /// Layer name -> [min, max] of its output over those images.
    public var ranges: [String: [Float]]
    /// Tensor name -> mean of each of its channels over those images, for every tensor a convolution
    /// reads (4 significant digits; in calibrations stored before int8 depthwise, only those
    /// non-grouped convolutions read). Nil in calibrations stored before bias correction:
    /// their convolutions compile uncorrected, as they were computed, and their text is unchanged.
    public var means: [String: [Float]]?
    /// Whether depthwise convolutions run in int8 where an int8 convolution writes their input (the
    /// channel means of their inputs are in `means`). Nil in calibrations stored before int8
    /// depthwise: their depthwise convolutions compile in fp32, as they were computed, and their
    /// text is unchanged.
    public var depthwise: Bool?
    /// How the ranges of signed tensors were chosen: `mse4` (`signedClipBound`). Nil in calibrations
    /// stored before it, whose ranges are the plain min and max (all ranges are stored, so those
    /// compile as they were computed, and their text is unchanged).
    public var signedClip: String?
    /// How its non-depthwise convolutions round their weights: `EngineISA.int8WeightRule` of the
    /// CPU that calibrated, `pairs16` where oneDNN has no VNNI; nil for `full` (with VNNI, and in
    /// calibrations stored before this field: their text is unchanged). The two give different
    /// features, so they are different extractions; a CPU without VNNI cannot compile `full`
    /// (`CompiledNetwork` says so), a CPU with VNNI computes `pairs16` as one without does.
    public var weightRule: Int8WeightRule?

    /// Images a run calibrates on (spread evenly over the dataset in scan order, copy 0).
    public static let defaultImages = 32
    static let storedPrefix = "int8:"

    public init(images: Int, ranges: [String: [Float]], means: [String: [Float]]? = nil, depthwise: Bool? = nil,
                signedClip: String? = nil, weightRule: Int8WeightRule? = nil) {
        self.images = images
        self.ranges = ranges
        self.means = means
        self.depthwise = depthwise
        self.signedClip = signedClip
        self.weightRule = weightRule
    }

    /// `weightRule` for a calibration made on this CPU: nil (`full`) with VNNI, else `pairs16`.
    public static var localWeightRule: Int8WeightRule? {
        let rule = EngineISA.current.int8WeightRule
        return rule == .full ? nil : rule
    }

    /// `weightRule`, `full` when nil.
    public var weights: Int8WeightRule { weightRule ?? .full }

    /// The extraction's precision text: `int8:` and the calibration (ranges, means) as JSON with
    /// sorted keys (so equal calibrations give equal extraction identities, and different ones
    /// different identities). Lite0 on scenes6: 142,274 bytes (`sqlite3 STORE "SELECT length(precision)
    /// FROM extractions"` after `extract --precision int8`).
    public var storedPrecision: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Self.storedPrefix + String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The calibration inside a stored precision text, nil for fp32/bf16 or text that is not one.
    public init?(storedPrecision text: String) {
        guard text.hasPrefix(Self.storedPrefix),
              let c = try? JSONDecoder().decode(Int8Calibration.self, from: Data(text.dropFirst(Self.storedPrefix.count).utf8))
        else { return nil }
        self = c
    }

    /// The precision a stored text names: `fp32`, `bf16`, or `int8` for `int8:{...}`.
    public static func precision(stored text: String) -> Precision? {
        text.hasPrefix(storedPrefix) ? .int8 : Precision(rawValue: text)
    }

    /// Share of |values| of a tensor its quantization keeps unclipped: the range stored for a layer is
    /// its min and max clipped to this quantile of |x| over the calibration images (a 2,048-bin
    /// histogram of |x| per layer); 1, the default, keeps the plain min and max. Lite0 on the 2,400
    /// scenes6 images, cosine of int8 to fp32 features (`tools/bench/int8_quality.sh`, calibration
    /// spread over the dataset, bias correction): lowest image 0.9932 with min and max, 0.9891 with
    /// `WORKBENCH_INT8_QUANTILE=0.9999` (the variable overrides this default).
    public static let defaultQuantile = ProcessInfo.processInfo.environment["WORKBENCH_INT8_QUANTILE"].flatMap(Double.init) ?? 1

    /// Runs `network` in fp32 on `count` preprocessed images (`inputs`: count x C x height x width)
    /// in batches of `batch`, twice: the min and max of every layer's output over the real images
    /// (and the channel means of the tensors convolutions read), then a histogram of |x| that clips
    /// them to `quantile`.
    /// `depthwise`: whether depthwise convolutions run in int8 (`Int8Calibration.depthwise`).
    /// `clipSigned`: whether signed tensors get `signedClipBound` (`Int8Calibration.signedClip`).
    /// `observe`: called in the first pass with each layer's name and fp32 outputs of a batch of the
    /// real images (what an int8 run's check compares its features with, computed once).
    public static func measure(_ network: Network, height: Int, width: Int, batch: Int = 8,
                               inputs: UnsafePointer<Float>, count: Int, quantile: Double = defaultQuantile,
                               depthwise: Bool = true, clipSigned: Bool = true,
                               observe: ((String, UnsafeBufferPointer<Float>) -> Void)? = nil) throws -> Int8Calibration {
        guard count >= 1 else { throw EngineError("int8 calibration needs at least one image") }
        var observed = network
        observed.outputs = Dictionary(uniqueKeysWithValues: network.layers.map { ($0.name, $0.name) })
        let b = min(batch, count)
        let net = try CompiledNetwork(observed, batch: b, height: height, width: width, precision: .fp32)
        let per = network.inputChannels * height * width
        /// Calls `visit` with each layer's outputs of the real images, batch after batch, and the
        /// number of those images.
        func pass(_ visit: (String, UnsafeBufferPointer<Float>, Int) -> Void) throws {
            for start in stride(from: 0, to: count, by: b) {
                let n = min(b, count - start)
                net.input.update(from: inputs + start * per, count: n * per)
                if n < b { (net.input + n * per).initialize(repeating: 0, count: (b - n) * per) }
                try net.run()
                for layer in network.layers {
                    let out = net.output(layer.name)!
                    visit(layer.name, UnsafeBufferPointer(rebasing: out.prefix(n * net.outputShapes[layer.name]![1])), n)
                }
            }
        }
        // The channels of each tensor a convolution reads (weights [out, in / groups, kh, kw]).
        var channels: [String: Int] = [:]
        for layer in network.layers {
            if case .conv(let c) = layer.op {
                channels[layer.inputs[0]] = c.groups * c.weights.count / (c.outChannels * c.kernel.h * c.kernel.w)
            }
        }
        var ranges: [String: [Float]] = [:], sums: [String: [Double]] = [:]
        try pass { name, values, n in
            observe?(name, values)
            var lo = Float.infinity, hi = -Float.infinity
            for v in values { lo = min(lo, v); hi = max(hi, v) }
            let r = ranges[name] ?? [.infinity, -.infinity]
            ranges[name] = [min(r[0], lo), max(r[1], hi)]
            if let c = channels[name] { sums[name] = channelMeanSums(values, images: n, channels: c, adding: sums[name]) }
        }
        let means = sums.mapValues { s in s.map { Float(String(format: "%.4g", $0 / Double(count)))! } }
        // Without int8 depthwise the key is left out, as in calibrations stored before it.
        var calibration = Int8Calibration(images: count, ranges: ranges, means: means, depthwise: depthwise ? true : nil,
                                          signedClip: clipSigned ? signedClipMethod : nil, weightRule: localWeightRule)
        // Signed tensors (min < 0: in EfficientNet-Lite the project convolutions' linear outputs,
        // their residual added) get the clipping bound of least squared error (`signedClipBound`);
        // unsigned ones (after ReLU or ReLU6) keep their max.
        let signed = Set(ranges.filter { clipSigned && $0.value[0] < 0 }.keys)
        guard quantile < 1 || !signed.isEmpty else { return calibration }
        let bins = 2048
        var histograms: [String: [Int]] = [:]
        try pass { name, values, _ in
            guard quantile < 1 || signed.contains(name) else { return }
            let bound = max(abs(ranges[name]![0]), abs(ranges[name]![1]))
            guard bound > 0 else { return }
            var h = histograms[name] ?? [Int](repeating: 0, count: bins)
            let k = Float(bins) / bound
            for v in values { h[min(bins - 1, Int(abs(v) * k))] += 1 }
            histograms[name] = h
        }
        for (name, h) in histograms {
            let r = ranges[name]!, bound = max(abs(r[0]), abs(r[1]))
            var clip = bound
            if quantile < 1 {
                let keep = Int((Double(h.reduce(0, +)) * quantile).rounded(.up))
                var seen = 0, bin = 0
                while bin < bins - 1 && seen + h[bin] < keep { seen += h[bin]; bin += 1 }
                clip = bound * Float(bin + 1) / Float(bins)
            }
            if signed.contains(name) { clip = min(clip, signedClipBound(histogram: h, bound: bound)) }
            calibration.ranges[name] = [max(r[0], -clip), min(r[1], clip)]
        }
        return calibration
    }

    /// What `signedClip` records for `signedClipBound`'s rule.
    public static let signedClipMethod = "mse4"

    /// The clipping bound of a signed tensor quantized to s8 (`levels` steps each side of 0), from a
    /// histogram of |x| (`histogram.count` bins from 0 to `bound`): the bin edge, from bound / 16 to
    /// bound, with the least expected error, counting each value's rounding error inside the bound
    /// (step^2 / 12) and `clipWeight` times its squared distance beyond it. The weight is 4, not 1
    /// (plain squared error), because rounding errors are spread over every value of every image and
    /// average out in the features, while clipping falls on the few values past the bound, in a few
    /// images, and sets their error; the quality bar is per image.
    /// `tools/bench/int8_quality.sh --backbone B` on the 2,400 scenes6 images, lowest cosine of int8
    /// to fp32 features, with weight 4: Lite0 0.9941, Lite1 0.9925, Lite2 0.9913 when it came (sixth
    /// session), 0.9938, 0.9928, 0.9913 with this code (ninth session: the int8 network's first two
    /// convolutions have since changed kernels, `Builder.keepsFloatLayout`), no image below 0.99; with
    /// plain min and max (commit 4ac8351): 0.9935, 0.9906, 0.9814 (6 images below 0.99). Weight 1
    /// gave 0.9904, 0.9926, 0.9914 on the sixth session's network (an exploratory build, not kept).
    static func signedClipBound(histogram h: [Int], bound: Float, levels: Double = 127, clipWeight: Double = 4) -> Float {
        let bins = h.count, width = Double(bound) / Double(bins)
        // Beyond bin k: count, sum of x and of x^2 of the values (at their bins' centres) from bin k on.
        var n = [Double](repeating: 0, count: bins + 1), sx = n, sxx = n
        for i in stride(from: bins - 1, through: 0, by: -1) {
            let x = (Double(i) + 0.5) * width, c = Double(h[i])
            n[i] = n[i + 1] + c; sx[i] = sx[i + 1] + c * x; sxx[i] = sxx[i + 1] + c * x * x
        }
        var best = (error: Double.infinity, bin: bins)
        for k in max(1, bins / 16)...bins {
            let clip = Double(k) * width, step = clip / levels
            let rounding = (n[0] - n[k]) * step * step / 12
            let clipping = sxx[k] - 2 * clip * sx[k] + clip * clip * n[k]
            let error = rounding + clipWeight * clipping
            if error < best.error { best = (error, k) }
        }
        return Float(Double(best.bin) * width)
    }

    /// `sums` (zeros when nil) plus, per channel, the sum over `images` of the channel's mean over
    /// its positions (`values`: images x channels x positions, row-major).
    static func channelMeanSums(_ values: UnsafeBufferPointer<Float>, images: Int, channels: Int, adding sums: [Double]?) -> [Double] {
        var sums = sums ?? [Double](repeating: 0, count: channels)
        let positions = values.count / (images * channels)
        for i in 0..<images {
            for c in 0..<channels {
                let start = (i * channels + c) * positions
                var s = 0.0
                for v in values[start ..< start + positions] { s += Double(v) }
                sums[c] += s / Double(positions)
            }
        }
        return sums
    }

    /// What to add to the bias of a convolution with weights `[out, in / groups, kh, kw]` quantized
    /// to `values` / `scales` (`quantizeWeights`), per output channel: minus (rounded - exact weights)
    /// . `inputMeans` (one per input channel, over the kernel's taps; the outputs of group g read
    /// input channels g * in / groups ..< (g + 1) * in / groups), so the output keeps its mean over
    /// the calibration images (exactly away from the zero padding).
    static func biasCorrection(weights: [Float], values: [Float], scales: [Float], inputMeans: [Float], groups: Int = 1) -> [Float] {
        let per = weights.count / scales.count, inPerGroup = inputMeans.count / groups, taps = per / inPerGroup
        let outPerGroup = scales.count / groups
        return scales.indices.map { o in
            let first = o / outPerGroup * inPerGroup
            var shift = 0.0
            for i in 0..<per {
                let w = o * per + i
                shift += Double(values[w] / scales[o] - weights[w]) * Double(inputMeans[first + i / taps])
            }
            return Float(-shift)
        }
    }

    /// The data type and scale (quantized = value * scale) of a tensor with this range (s8 when
    /// `signed`, whatever the range).
    static func quantization(_ range: [Float], signed: Bool = false) -> (type: dnnl_data_type_t, scale: Float) {
        let unsigned = range[0] >= 0 && !signed
        let bound = max(abs(range[0]), abs(range[1]))
        let levels: Float = unsigned ? 255 : 127
        return (unsigned ? dnnl_u8 : dnnl_s8, bound > 0 ? levels / bound : 1)
    }

    /// Weights `[out, ...]` rounded to integers in [-levels, levels] per output channel, and each channel's
    /// scale (quantized = weight * scale): `levels` for the channel's largest |weight|, or with
    /// `search` the number of levels in levels / 2 + 1...levels (64...127) whose rounding has the
    /// least squared error. `pairStride` (`Int8WeightRule.pairs16`; the kernel positions per input
    /// channel): only levels whose rounded weights keep each pair of adjacent input channels' positive,
    /// and negative, sum within 128 qualify (the largest such, or with `search` the best of them; if
    /// none of levels / 2 + 1...levels does, those of levels / 4 + 1...levels / 2 do, as 2 x 63 <= 128)
    /// (channels in parallel). `tools/bench/int8_quality.sh`, lowest cosine of int8 to fp32 features
    /// on the 2,400 scenes6 images, with the search on every int8 convolution (this code) against on
    /// the depthwise ones only (commit 7d37831): Lite0 0.9935 / 0.9917, Lite1 0.9906 / 0.9887, Lite2
    /// 0.9814 / 0.9811.
    /// Channels with more weights keep 127 levels: their rounding errors average out, and the search
    /// costs most there. `/usr/bin/time extract bench --backbone resnet50 --precision int8 --seconds 1`
    /// (generated weights): 5.2 s, against 4.1 s with no search on ResNet50 (commit 7d37831). 1,152 is
    /// the longest row of EfficientNet-Lite0 and Lite1 (their last project convolutions).
    static let searchedWeightsPerChannel = 1152

    static func quantizeWeights(_ weights: [Float], outChannels: Int, search: Bool = false, levels: Int = 127,
                                pairStride: Int? = nil) -> (values: [Float], scales: [Float]) {
        let per = weights.count / outChannels, search = search && per <= searchedWeightsPerChannel
        var values = weights, scales = [Float](repeating: 1, count: outChannels)
        weights.withUnsafeBufferPointer { w in
            values.withUnsafeMutableBufferPointer { v in
                scales.withUnsafeMutableBufferPointer { sc in
                    let (w, v, sc) = (w.baseAddress!, v.baseAddress!, sc.baseAddress!)   // each channel writes its own part
                    DispatchQueue.concurrentPerform(iterations: outChannels) { o in
                        let chunk = UnsafeBufferPointer(start: w + o * per, count: per)
                        let bound = chunk.reduce(Float(0)) { max($0, abs($1)) }
                        var s: Float = bound > 0 ? Float(levels) / bound : 1
                        /// Whether the weights rounded at scale t keep every pair's sums within the limit.
                        func fits(_ t: Float) -> Bool {
                            guard let p = pairStride else { return true }
                            let inputs = per / p, limit = Int8WeightRule.pairLimit
                            for c in stride(from: 0, to: inputs, by: 2) {
                                for k in 0..<p {
                                    let a = (chunk[c * p + k] * t).rounded(), b = c + 1 < inputs ? (chunk[(c + 1) * p + k] * t).rounded() : 0
                                    if max(a, 0) + max(b, 0) > limit || min(a, 0) + min(b, 0) < -limit { return false }
                                }
                            }
                            return true
                        }
                        if bound > 0 {
                            let upper = Array(levels / 2 + 1...levels), lower = Array(levels / 4 + 1...levels / 2)
                            if search {
                                let candidates = upper.filter { fits(Float($0) / bound) }
                                var least = Double.infinity
                                for levels in candidates.isEmpty ? lower : candidates {
                                    let t = Float(levels) / bound
                                    var error = 0.0
                                    for x in chunk { let d = Double((x * t).rounded() / t - x); error += d * d }
                                    if error < least { least = error; s = t }
                                }
                            } else {   // the largest that fits, tried from the top (long rows: VGG16's 4,608 weights)
                                s = Float(upper.reversed().first { fits(Float($0) / bound) } ?? lower.last!) / bound
                            }
                        }
                        sc[o] = s
                        for i in 0..<per { v[o * per + i] = (chunk[i] * s).rounded() }
                    }
                }
            }
        }
        return (values, scales)
    }
}
