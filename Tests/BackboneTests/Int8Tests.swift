@testable import BackboneEngine
import Backbones
import Foundation
import XCTest

/// `--precision int8` against fp32 from the same engine: EfficientNet-Lite0 with its published weights
/// (installed by scripts/setup; skipped without them), calibrated on 8 scenes6 images, run on 8 others.
final class Int8Tests: XCTestCase {
    static let minimumCosine = 0.99

    /// `count` scenes6 test images starting at `offset` in each class folder (sorted), stretched to `size`.
    func images(_ size: Int, perClass: Int, offset: Int) throws -> [UInt8] {
        try BF16Tests.scenes(size, perClass: perClass, offset: offset)
    }

    func testLite0FeaturesMatchFP32() throws {
        let loaded = try installedBackbone("efficientnet_lite0")
        let size = loaded.spec.inputSize
        let calibration = try images(size, perClass: 8, offset: 0)
        let cal = try calibration.withUnsafeBufferPointer { try loaded.calibrateInt8(rgb: $0.baseAddress!, count: 32) }
        let pixels = try images(size, perClass: 2, offset: 8)
        let count = 8
        let fp32 = try FeatureExtractor(loaded, batch: count).run(rgb: pixels, count: count)["features"]!
        let int8Extractor = try FeatureExtractor(loaded, batch: count, precision: .int8, calibration: cal)
        print(int8Extractor.implementations.joined(separator: "\n"))
        // The depthwise convolutions run in int8, except the first, which reads the fp32 first convolution's output.
        let types = Dictionary(int8Extractor.implementations.compactMap { line -> (String, String)? in
            guard line.hasSuffix(")"), let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line.split(separator: "(").last!.dropLast()))
        }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(cal.depthwise, true)
        XCTAssertEqual(types["stem"], "fp32")
        XCTAssertEqual(types["b0.depthwise"], "fp32")
        // Both keep the fp32 network's layout (`Builder.keepsFloatLayout`): the stem reads the input
        // as given, with no reorder, and only b0.project's input is reordered (quantized).
        XCTAssertFalse(int8Extractor.implementations.contains { $0.hasPrefix("stem input:") || $0.hasPrefix("b0.depthwise input:") },
                       "\(int8Extractor.implementations)")
        XCTAssertTrue(int8Extractor.implementations.contains { $0.hasPrefix("b0.project input:") })
        for b in 1...15 { XCTAssertEqual(types["b\(b).depthwise"], "int8", "b\(b).depthwise") }
        XCTAssertEqual(types["b1.expand"], "int8")
        let int8 = try int8Extractor.run(rgb: pixels, count: count)["features"]!
        let d = loaded.spec.featureDimension
        for i in 0..<count {
            let c = cosine(fp32[i * d ..< (i + 1) * d], int8[i * d ..< (i + 1) * d])
            print(String(format: "int8 lite0 image %d: cosine %.6f", i, c))
            XCTAssertGreaterThanOrEqual(c, Self.minimumCosine, "image \(i)")
        }
    }

    /// Every output of `network` compiled for `images` inputs of 3 x `size` x `size` and run on them.
    static func outputs(of network: Network, images: Int, size: Int, inputs: [Float], _ precision: Precision,
                        _ calibration: Int8Calibration?) throws -> [String: [Float]] {
        let net = try CompiledNetwork(network, batch: images, height: size, width: size, precision: precision, calibration: calibration)
        net.input.update(from: inputs, count: inputs.count)
        try net.run()
        return network.outputs.keys.reduce(into: [:]) { $0[$1] = Array(net.output($1)!) }
    }

    /// Bias correction on a two-convolution network with random weights: `a` (fp32, it reads the
    /// image; ReLU) feeds `b` (int8, 1 x 1, weights with a large rounding step: one weight of 1 per
    /// output channel, the others in [-0.1, 0.1]). The calibration's channel means of `a` are those
    /// of the fp32 run; without them `b`'s outputs are off in mean by (rounded - exact weights) .
    /// means, computed here from the rounding rule (127 / max |w| per output channel); with them the
    /// mean error is under a tenth of the largest such shift.
    func testBiasCorrectionKeepsTheMeanOfAnInt8Convolution() throws {
        var rng = EngineOpsTests.Rng(s: 7)
        func uniform(_ lo: Float, _ hi: Float) -> Float { rng.uniform(lo, hi) }
        let (size, images, hidden, out) = (6, 16, 16, 8)
        var weightsB = (0..<out * hidden).map { _ in uniform(-0.1, 0.1) }
        for o in 0..<out { weightsB[o * hidden + o % hidden] = 1 }
        var network = Network(name: "bias-correction", inputChannels: 3)
        network.add("a", .conv(Convolution(outChannels: hidden, kernel: 1, padding: .valid, weights: (0..<hidden * 3).map { _ in uniform(-1, 1) },
                                           bias: (0..<hidden).map { _ in uniform(0, 1) }, activation: .relu)), inputs: ["input"])
        network.add("b", .conv(Convolution(outChannels: out, kernel: 1, padding: .valid, weights: weightsB, bias: nil, activation: .none)), inputs: ["a"])
        network.outputs = ["features": "b", "hidden": "a"]
        let inputs = (0..<images * 3 * size * size).map { _ in uniform(-1, 1) }
        // Without int8 depthwise: 127 levels per channel, which the expected shifts below assume.
        let cal = try inputs.withUnsafeBufferPointer {
            try Int8Calibration.measure(network, height: size, width: size, inputs: $0.baseAddress!, count: images, depthwise: false)
        }
        func run(_ precision: Precision, _ calibration: Int8Calibration?) throws -> [String: [Float]] {
            try Self.outputs(of: network, images: images, size: size, inputs: inputs, precision, calibration)
        }
        /// Per channel, the mean over images and positions of `values` (images x channels x positions).
        func channelMeans(_ values: [Float], _ channels: Int) -> [Double] {
            let positions = values.count / (images * channels)
            return (0..<channels).map { c in
                (0..<images).reduce(0.0) { s, i in s + values[(i * channels + c) * positions ..< (i * channels + c + 1) * positions].reduce(0.0) { $0 + Double($1) } }
                    / Double(images * positions)
            }
        }
        let fp32 = try run(.fp32, nil)
        let meansA = channelMeans(fp32["hidden"]!, hidden)
        let stored = try XCTUnwrap(cal.means?["a"])
        for c in 0..<hidden { XCTAssertEqual(Double(stored[c]), meansA[c], accuracy: 1e-3 * max(1e-3, abs(meansA[c])), "mean of a, channel \(c)") }
        XCTAssertEqual(cal.means?.keys.sorted(), ["a"], "means of what non-grouped convolutions read (not the image)")
        // b reads u8 (after ReLU): 127 levels, or under `pairs16` (no VNNI) the pair-limited ones.
        let (values, scales) = Int8Calibration.quantizeWeights(weightsB, outChannels: out, pairStride: cal.weights == .pairs16 ? 1 : nil)
        let shift = (0..<out).map { o -> Double in
            (0..<hidden).reduce(0.0) { $0 + Double(values[o * hidden + $1] / scales[o] - weightsB[o * hidden + $1]) * meansA[$1] }
        }
        let largest = shift.map(abs).max()!
        XCTAssertGreaterThan(largest, 1e-3, "the rounding of b's weights shifts its mean")
        var uncorrected = cal
        uncorrected.means = nil
        let errorWithout = zip(channelMeans(try run(.int8, uncorrected)["features"]!, out), channelMeans(fp32["features"]!, out)).map { $0 - $1 }
        let errorWith = zip(channelMeans(try run(.int8, cal)["features"]!, out), channelMeans(fp32["features"]!, out)).map { $0 - $1 }
        for o in 0..<out {
            XCTAssertEqual(errorWithout[o], shift[o], accuracy: 0.1 * largest, "uncorrected, channel \(o)")
            XCTAssertEqual(errorWith[o], 0, accuracy: 0.1 * largest, "corrected, channel \(o)")
        }
    }

    /// Bias correction of a grouped convolution reads the means of each group's own input channels:
    /// 4 outputs in 2 groups of 2 input channels, 1 tap, every weight rounded by +0.5 / scale.
    func testBiasCorrectionOfGroupedConvolutionUsesItsGroupsMeans() {
        let weights: [Float] = [1, 1, 1, 1, 1, 1, 1, 1], values: [Float] = [3, 3, 3, 3, 3, 3, 3, 3], scales: [Float] = [2, 2, 2, 2]
        let means: [Float] = [1, 2, 10, 20]
        let correction = Int8Calibration.biasCorrection(weights: weights, values: values, scales: scales, inputMeans: means, groups: 2)
        // (3 / 2 - 1) = 0.5 per weight: group 0 reads channels 0, 1 (0.5 * 3), group 1 channels 2, 3 (0.5 * 30).
        XCTAssertEqual(correction, [-1.5, -1.5, -15, -15])
        XCTAssertEqual(Int8Calibration.biasCorrection(weights: weights, values: values, scales: scales, inputMeans: [1, 2]), [-1.5, -1.5, -1.5, -1.5])
    }

    /// The level search rounds each channel's weights with no more squared error than 127 levels,
    /// keeps every rounded weight in [-127, 127], and picks fewer levels where they fit better.
    func testWeightScaleSearchNeverRoundsWorse() {
        var rng = EngineOpsTests.Rng(s: 3)
        let weights = (0..<64 * 9).map { _ in rng.next() }
        let plain = Int8Calibration.quantizeWeights(weights, outChannels: 64)
        let searched = Int8Calibration.quantizeWeights(weights, outChannels: 64, search: true)
        func error(_ q: (values: [Float], scales: [Float]), _ o: Int) -> Double {
            (o * 9 ..< o * 9 + 9).reduce(0.0) { let d = Double(q.values[$1] / q.scales[o] - weights[$1]); return $0 + d * d }
        }
        var fewer = 0
        for o in 0..<64 {
            XCTAssertLessThanOrEqual(error(searched, o), error(plain, o), "channel \(o)")
            if searched.scales[o] < plain.scales[o] { fewer += 1 }
        }
        XCTAssertTrue(searched.values.allSatisfy { abs($0) <= 127 && $0 == $0.rounded() })
        XCTAssertGreaterThan(fewer, 32, "most channels of 9 weights round better with fewer than 127 levels")
    }

    /// A calibration stored before bias correction (no `means`) reads back as one without means, and
    /// its stored text is unchanged (same extraction identity, so its stored features are resumed).
    func testCalibrationStoredWithoutMeansKeepsItsText() throws {
        let old = #"int8:{"images":2,"ranges":{"b0.project":[-1.5,2],"b1.expand":[0,6]}}"#
        let c = try XCTUnwrap(Int8Calibration(storedPrecision: old))
        XCTAssertNil(c.means)
        XCTAssertEqual(c.storedPrecision, old)
        var new = c
        new.means = ["b0.project": [0.25, -1.5]]
        XCTAssertNotEqual(new.storedPrecision, old)
        XCTAssertEqual(Int8Calibration(storedPrecision: new.storedPrecision), new)
        XCTAssertNil(new.depthwise)
        new.depthwise = true
        XCTAssertEqual(Int8Calibration(storedPrecision: new.storedPrecision), new)
        XCTAssertNil(new.signedClip)
        XCTAssertFalse(new.storedPrecision.contains("signedClip"))
        new.signedClip = Int8Calibration.signedClipMethod
        XCTAssertEqual(Int8Calibration(storedPrecision: new.storedPrecision), new)
        XCTAssertFalse(new.storedPrecision.contains("weightRule"), "full 8-bit weights keep the text")
        new.weightRule = .pairs16
        XCTAssertTrue(new.storedPrecision.contains(#""weightRule":"pairs16""#))
        XCTAssertEqual(Int8Calibration(storedPrecision: new.storedPrecision), new)
        XCTAssertEqual(new.weights, .pairs16)
    }

    /// Under a calibration with int8 depthwise, 1 x 1 convolutions get the weight-level search too,
    /// and their weights round closer: a two-convolution network's int8 output is nearer its fp32
    /// output than under the same ranges without `depthwise` (127 levels, as calibrations stored
    /// before int8 depthwise compile).
    func testLevelSearchReachesPointwiseConvolutionsUnderDepthwiseCalibrations() throws {
        var rng = EngineOpsTests.Rng(s: 11)
        func uniform(_ lo: Float, _ hi: Float) -> Float { rng.uniform(lo, hi) }
        let (size, images, hidden, out) = (6, 8, 12, 16)
        var network = Network(name: "search", inputChannels: 3)
        network.add("a", .conv(Convolution(outChannels: hidden, kernel: 1, padding: .valid, weights: (0..<hidden * 3).map { _ in uniform(-1, 1) },
                                           bias: nil, activation: .relu)), inputs: ["input"])
        network.add("b", .conv(Convolution(outChannels: out, kernel: 1, padding: .valid, weights: (0..<out * hidden).map { _ in uniform(-1, 1) },
                                           bias: nil, activation: .none)), inputs: ["a"])
        network.outputs = ["features": "b"]
        let inputs = (0..<images * 3 * size * size).map { _ in uniform(-1, 1) }
        let cal = try inputs.withUnsafeBufferPointer {
            try Int8Calibration.measure(network, height: size, width: size, inputs: $0.baseAddress!, count: images)
        }
        XCTAssertEqual(cal.depthwise, true)
        var plain = cal
        plain.depthwise = nil
        func run(_ precision: Precision, _ calibration: Int8Calibration?) throws -> [Float] {
            try Self.outputs(of: network, images: images, size: size, inputs: inputs, precision, calibration)["features"]!
        }
        let fp32 = try run(.fp32, nil)
        func error(_ x: [Float]) -> Double { zip(x, fp32).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } }
        let searched = try run(.int8, cal), unsearched = try run(.int8, plain)
        XCTAssertNotEqual(searched, unsearched, "the search changes b's weights")
        XCTAssertLessThan(error(searched), error(unsearched))
    }

    /// The clipping bound of a signed tensor: a rare far value is clipped (its clipping error costs
    /// less than the coarser step it would force on every other value); values spread evenly up to
    /// the max are not; and of two tensors with the same bulk, the one with more far values keeps
    /// a higher bound.
    func testSignedClipBoundCutsRareOutliersOnly() {
        let bins = 2048
        var rare = [Int](repeating: 0, count: bins)
        for i in 0..<256 { rare[i] = 40_000 }   // the bulk within 1/8 of the max
        rare[bins - 1] = 1                        // one value at the max
        let clipRare = Int8Calibration.signedClipBound(histogram: rare, bound: 8)
        XCTAssertLessThan(clipRare, 2, "one value at 8 must not set the step of 10 million values below 1")
        XCTAssertGreaterThanOrEqual(clipRare, 0.5, "never below bound / 16")
        let even = [Int](repeating: 100, count: bins)
        XCTAssertEqual(Int8Calibration.signedClipBound(histogram: even, bound: 8), 8, accuracy: 8.0 / 128)
        var heavier = rare
        for i in (bins - 64)..<bins { heavier[i] = 200 }
        XCTAssertGreaterThan(Int8Calibration.signedClipBound(histogram: heavier, bound: 8), clipRare)
        // Weight 1 (plain squared error) clips at least as hard as the default 4.
        XCTAssertLessThanOrEqual(Int8Calibration.signedClipBound(histogram: heavier, bound: 8, clipWeight: 1),
                                 Int8Calibration.signedClipBound(histogram: heavier, bound: 8))
    }

    /// `measure` clips the ranges of signed tensors only, and records it: a network whose signed
    /// output has a few far values (from one far pixel) among many small ones gets a bound below
    /// them, while its unsigned (ReLU) tensor keeps its max; without `clipSigned` both keep min and max.
    func testMeasureClipsSignedTensorsOnly() throws {
        var rng = EngineOpsTests.Rng(s: 5)
        let (size, images) = (32, 8)
        var network = Network(name: "clip", inputChannels: 3)
        network.add("a", .conv(Convolution(outChannels: 4, kernel: 1, padding: .valid, weights: (0..<12).map { _ in rng.uniform(-1, 1) },
                                           bias: nil, activation: .relu)), inputs: ["input"])
        network.add("b", .conv(Convolution(outChannels: 4, kernel: 1, padding: .valid, weights: (0..<16).map { _ in rng.uniform(-1, 1) },
                                           bias: nil, activation: .none)), inputs: ["a"])
        network.outputs = ["features": "b"]
        var inputs = (0..<images * 3 * size * size).map { _ in rng.uniform(-0.1, 0.1) }
        inputs[5] = 40   // one far pixel of image 0, channel 0
        let (clipped, plain) = try inputs.withUnsafeBufferPointer {
            (try Int8Calibration.measure(network, height: size, width: size, inputs: $0.baseAddress!, count: images),
             try Int8Calibration.measure(network, height: size, width: size, inputs: $0.baseAddress!, count: images, clipSigned: false))
        }
        XCTAssertEqual(clipped.signedClip, Int8Calibration.signedClipMethod)
        XCTAssertNil(plain.signedClip)
        XCTAssertEqual(clipped.ranges["a"], plain.ranges["a"], "unsigned: min and max")
        let b = try XCTUnwrap(plain.ranges["b"]), bc = try XCTUnwrap(clipped.ranges["b"])
        XCTAssertLessThan(b[0], 0)
        let bound = max(abs(b[0]), abs(b[1])), clippedBound = max(abs(bc[0]), abs(bc[1]))
        XCTAssertLessThan(clippedBound, bound, "the far pixel's outputs are clipped")
        XCTAssertGreaterThanOrEqual(clippedBound, bound / 16)
    }

    /// A ReLU'd convolution adding a signed residual in place (a ResNet stage's first block, whose
    /// shortcut is linear) writes u8 under calibrations with `signedClip`, so the next block adds it
    /// in place without a reorder; under older calibrations it writes s8, as they were computed, and
    /// the next block reorders it. Both stay near fp32.
    func testReLUOutputOverSignedResidualIsUnsignedUnderNewCalibrations() throws {
        var rng = EngineOpsTests.Rng(s: 13)
        func conv(_ cin: Int, _ cout: Int, _ activation: Activation, residual: String? = nil) -> Op {
            .conv(Convolution(outChannels: cout, kernel: 1, padding: .valid, weights: (0..<cin * cout).map { _ in rng.uniform(-0.5, 0.5) },
                              bias: (0..<cout).map { _ in rng.uniform(0, 0.2) }, residual: residual, activation: activation))
        }
        let (size, images, ch) = (8, 4, 16)
        var network = Network(name: "residual", inputChannels: 3)
        network.add("a", conv(3, ch, .relu), inputs: ["input"])
        network.add("s", conv(ch, ch, .none), inputs: ["a"])                  // linear shortcut: s8
        network.add("c", conv(ch, ch, .relu, residual: "s"), inputs: ["a"])   // adds s in place, then ReLU
        network.add("d", conv(ch, ch, .relu), inputs: ["c"])
        network.add("e", conv(ch, ch, .relu, residual: "c"), inputs: ["d"])   // adds c
        network.add("f", conv(ch, ch, .none), inputs: ["e"])
        network.outputs = ["features": "f"]
        let inputs = (0..<images * 3 * size * size).map { _ in rng.uniform(-1, 1) }
        let cal = try inputs.withUnsafeBufferPointer {
            try Int8Calibration.measure(network, height: size, width: size, inputs: $0.baseAddress!, count: images)
        }
        XCTAssertLessThan(try XCTUnwrap(cal.ranges["s"])[0], 0, "the shortcut is signed")
        var old = cal
        old.signedClip = nil
        let fp32 = try Self.outputs(of: network, images: images, size: size, inputs: inputs, .fp32, nil)["features"]!
        for (calibration, reorders) in [(cal, false), (old, true)] {
            let net = try CompiledNetwork(network, batch: images, height: size, width: size, precision: .int8, calibration: calibration)
            XCTAssertEqual(net.implementations.contains { $0.hasPrefix("e residual") }, reorders, "\(net.implementations)")
            let int8 = try Self.outputs(of: network, images: images, size: size, inputs: inputs, .int8, calibration)["features"]!
            let error = zip(int8, fp32).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = fp32.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertLessThan((error / norm).squareRoot(), 0.05, "relative L2 error, signedClip \(calibration.signedClip ?? "nil")")
        }
    }

    /// `Int8WeightRule.pairs16` on weights at its limit: a 1 x 1 convolution over 8 channels of u8
    /// inputs at the top of their range (255), whose rounded weights pair (0, 1) and (2, 3) at
    /// exactly 128 (1 + 127, 127 + 1), positive in one output channel and negative in the other.
    /// Its int8 output equals the sum of the rounded weights times the inputs on this CPU's kernels;
    /// if oneDNN paired channels (1, 2) instead, 255 x 254 would overflow 16 bits. `make test` runs it
    /// on VNNI kernels and again under `ONEDNN_MAX_CPU_ISA=AVX2` and `AVX512_CORE`, without.
    func testPairedWeightsAtTheLimitComputeExactly() throws {
        let row: [Float] = [0.01, 1, 1, 0.01, 0.01, 1, 1, 0.01]
        var network = Network(name: "pairs", inputChannels: 3)
        network.add("a", .conv(Convolution(outChannels: 8, kernel: 1, padding: .valid, weights: [Float](repeating: 0, count: 24),
                                           bias: [Float](repeating: 6, count: 8), activation: .relu6)), inputs: ["input"])
        network.add("b", .conv(Convolution(outChannels: 2, kernel: 1, padding: .valid, weights: row + row.map { -$0 }, bias: nil, activation: .none)),
                    inputs: ["a"])
        network.outputs = ["features": "b"]
        let (values, scales) = Int8Calibration.quantizeWeights(row + row.map { -$0 }, outChannels: 2, pairStride: 1)
        XCTAssertEqual(Array(values.prefix(4)), [1, 127, 127, 1], "the rule keeps 127 levels: every pair sums to 128")
        for rule in [Int8WeightRule.pairs16] + (EngineISA.current.vnni ? [.full] : []) {
            let calibration = Int8Calibration(images: 1, ranges: ["a": [0, 6], "b": [-10, 10]], weightRule: rule)
            let out = try Self.outputs(of: network, images: 2, size: 4, inputs: [Float](repeating: 0, count: 2 * 3 * 16), .int8, calibration)["features"]!
            for o in 0..<2 {
                let exact = (0..<8).reduce(Float(0)) { $0 + 6 * values[o * 8 + $1] / scales[o] }
                for v in out[(o * 16)..<(o * 16 + 16)] { XCTAssertEqual(v, exact, accuracy: 1e-4 * abs(exact), "\(rule), output channel \(o) on \(EngineISA.current.name)") }
            }
        }
    }

    /// A calibration stored without `depthwise` (before int8 depthwise) compiles its depthwise
    /// convolutions in fp32, as its features were computed; with it they run in int8.
    func testDepthwiseRunsInt8OnlyWithCalibrationsThatSayIt() throws {
        var network = Network(name: "dw", inputChannels: 3)
        network.add("a", .conv(Convolution(outChannels: 8, kernel: 1, padding: .valid, weights: [Float](repeating: 0.1, count: 24), bias: nil, activation: .relu)), inputs: ["input"])
        network.add("b", .conv(Convolution(outChannels: 16, kernel: 1, padding: .valid, weights: [Float](repeating: 0.1, count: 128), bias: nil, activation: .relu)), inputs: ["a"])
        network.add("c", .conv(Convolution(outChannels: 16, kernel: 3, groups: 16, padding: .same, weights: [Float](repeating: 0.1, count: 144), bias: nil, activation: .relu)), inputs: ["b"])
        network.add("d", .conv(Convolution(outChannels: 8, kernel: 1, padding: .valid, weights: [Float](repeating: 0.1, count: 128), bias: nil, activation: .none)), inputs: ["c"])
        network.outputs = ["features": "d"]
        let ranges: [String: [Float]] = ["a": [0, 1], "b": [0, 1], "c": [0, 1], "d": [-1, 1]]
        for (depthwise, type) in [(nil, "fp32"), (true, "int8")] as [(Bool?, String)] {
            let net = try CompiledNetwork(network, batch: 2, height: 8, width: 8, precision: .int8,
                                          calibration: Int8Calibration(images: 1, ranges: ranges, depthwise: depthwise,
                                                                       weightRule: Int8Calibration.localWeightRule))
            XCTAssertTrue(net.implementations.contains { $0.hasPrefix("c: ") && $0.hasSuffix("(\(type))") }, "\(net.implementations)")
            XCTAssertTrue(net.implementations.contains { $0.hasPrefix("b: ") && $0.hasSuffix("(int8)") }, "\(net.implementations)")
        }
    }
}

extension EngineOpsTests.Rng {
    /// A value in [lo, hi) (`next()` is in [-1, 1)).
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * (next() + 1) / 2 }
}
