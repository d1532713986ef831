import CDNNL
import Foundation

/// Layout of activations between convolutions. Measured on this project's 2-core AVX-512 machine with
/// `WORKBENCH_LAYOUT=blocked|any extract bench --backbone efficientnet_lite0` (batch 16, quiet machine):
/// channel-blocked `nChw16c` (oneDNN's `jit:avx512_core` kernels) 200-207 images/s, letting each
/// convolution choose (`any`, which picks `nhwc` + `brgconv`) 156-164. `WORKBENCH_LAYOUT=any|nhwc|blocked`
/// overrides it for experiments.
public enum ActivationLayout: String, Sendable {
    case blocked, nhwc, any

    public static var preferred: ActivationLayout {
        ProcessInfo.processInfo.environment["WORKBENCH_LAYOUT"].flatMap(ActivationLayout.init(rawValue:)) ?? .blocked
    }

    /// `blocked` is 16 channels per block where oneDNN runs AVX-512 kernels and 8 where it has only
    /// AVX2 ones (its AVX2 convolutions have no 16-channel variant: with 16, every convolution and
    /// pool fell back to `ref:any`, as `ONEDNN_MAX_CPU_ISA=AVX2 extract bench --verbose` showed).
    var tag: dnnl_format_tag_t {
        switch self {
        case .blocked: return EngineISA.current.avx512 ? dnnl_aBcd16b : dnnl_aBcd8b
        case .nhwc: return dnnl_acdb
        case .any: return dnnl_format_tag_any
        }
    }
}

/// Numeric precision of a compiled network. Weights and activations are stored in this type inside
/// the engine; inputs and outputs are always fp32. `int8`: convolutions with u8/s8 activations and
/// s8 weights (per output channel scales, s32 accumulation) where `Builder.int8Convolution` allows,
/// everything else in fp32; it needs an `Int8Calibration`.
public enum Precision: String, CaseIterable, Sendable, Codable {
    case fp32, bf16, int8

    /// The type of the layers that are not int8 convolutions.
    var dataType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }
}

/// A `Network` compiled for one (batch, height, width, precision): oneDNN primitives created once,
/// weights reordered once into the layouts the primitives chose (`format_tag_any`), activations
/// planned into a few reused buffers. `run()` executes the primitives in order; the hot loop is
/// `run()` itself and lives in oneDNN.
///
/// Usage: fill `input` (N x C x H x W fp32, already preprocessed), call `run()`, read `output(name)`.
public final class CompiledNetwork {
    public let name: String
    public let batch: Int
    public let height: Int
    public let width: Int
    public let precision: Precision
    /// How its fp32 convolutions compute (`ConvolutionAlgorithm`).
    public let algorithm: ConvolutionAlgorithm
    /// Shape of each named output, flattened to [batch, features].
    public private(set) var outputShapes: [String: [Int]] = [:]
    /// One line per primitive: layer name and the oneDNN implementation chosen (e.g. `brgconv:avx512_core`);
    /// in an int8 network, each convolution's type after it (`(int8)` or `(fp32)`); in a bf16 one,
    /// `(fp32)` after those of `fp32InBF16Layers`.
    public private(set) var implementations: [String] = []
    /// Convolutions oneDNN runs as Winograd (`ConvolutionAlgorithm.auto`).
    public private(set) var winogradConvolutions = 0
    /// Convolutions of a bf16 network that run in fp32 (`Builder.staysFP32InBF16`), in order.
    public private(set) var fp32InBF16Layers: [String] = []
    /// Bytes held for activations (after buffer reuse), weights and the shared scratchpad.
    public private(set) var activationBytes = 0
    public private(set) var weightBytes = 0
    public private(set) var scratchpadBytes = 0

    /// Input buffer: batch x channels x height x width, fp32, row-major.
    public var input: UnsafeMutablePointer<Float> { inputBuffer.pointer.assumingMemoryBound(to: Float.self) }
    public let inputCount: Int

    private let inputBuffer: AlignedBuffer
    private var outputBuffers: [String: AlignedBuffer] = [:]
    private var steps: [(primitive: dnnl_primitive_t, args: [dnnl_exec_arg_t])] = []
    private var memories: [dnnl_memory_t] = []
    private var owned: [AlignedBuffer] = []

    public init(_ network: Network, batch: Int, height: Int, width: Int, precision: Precision = .fp32,
                calibration: Int8Calibration? = nil, layout: ActivationLayout = .preferred,
                algorithm: ConvolutionAlgorithm = .auto) throws {
        guard precision != .int8 || calibration != nil else {
            throw EngineError("\(network.name): int8 needs the activation ranges of a calibration (Int8Calibration.measure)")
        }
        if let why = EngineISA.current.cannotRun(precision, weights: calibration?.weights ?? .full) {
            throw EngineError("\(network.name) in \(precision.rawValue): \(why); run it in fp32 (--precision fp32 or auto)"
                              + (precision == .int8 ? ", or calibrate on this CPU (a new extraction: another --store)" : ""))
        }
        name = network.name
        self.batch = batch
        self.height = height
        self.width = width
        self.precision = precision
        self.algorithm = algorithm
        inputCount = batch * network.inputChannels * height * width
        inputBuffer = try AlignedBuffer(byteCount: inputCount * 4)
        var builder = try Builder(network: network, batch: batch, height: height, width: width,
                                  precision: precision, calibration: precision == .int8 ? calibration : nil, layout: layout,
                                  algorithm: algorithm)
        try builder.build()
        try finish(builder)
    }

    deinit {
        for s in steps { dnnl_primitive_destroy(s.primitive) }
        for m in memories { dnnl_memory_destroy(m) }
    }

    /// Runs the network on `input`; results are then in `output(_:)`.
    public func run() throws {
        let ctx = DNNLContext.shared
        for step in steps {
            try step.args.withUnsafeBufferPointer { args in
                try check(dnnl_primitive_execute(step.primitive, ctx.stream, Int32(args.count), args.baseAddress),
                          "run \(name)")
            }
        }
        try check(dnnl_stream_wait(ctx.stream), "finish \(name)")
    }

    /// A named output (`"features"`, `"logits"`, ...) as batch x features fp32 values.
    public func output(_ name: String) -> UnsafeBufferPointer<Float>? {
        guard let b = outputBuffers[name], let shape = outputShapes[name] else { return nil }
        return UnsafeBufferPointer(start: b.pointer.assumingMemoryBound(to: Float.self), count: shape.reduce(1, *))
    }

    // MARK: - Turning the builder's plan into memory objects and primitives

    private func finish(_ b: Builder) throws {
        let ctx = DNNLContext.shared
        implementations = b.implementations
        winogradConvolutions = b.winogradConvolutions
        fp32InBF16Layers = b.fp32InBF16Layers
        outputShapes = b.outputShapes
        owned = b.weightBuffers
        weightBytes = b.weightBuffers.reduce(0) { $0 + $1.byteCount }

        // Activation buffers: liveness-based slot reuse over the step sequence.
        let slots = b.planSlots()
        var slotBuffers: [AlignedBuffer] = []
        for size in slots.sizes { slotBuffers.append(try AlignedBuffer(byteCount: size)) }
        activationBytes = slots.sizes.reduce(0, +)
        owned += slotBuffers
        let scratch = try AlignedBuffer(byteCount: b.scratchpadSize)
        scratchpadBytes = scratch.byteCount
        owned.append(scratch)
        for (name, shape) in b.outputShapes {
            outputBuffers[name] = try AlignedBuffer(byteCount: shape.reduce(1, *) * 4)
        }

        func memory(_ md: dnnl_memory_desc_t, _ handle: UnsafeMutableRawPointer) throws -> dnnl_memory_t {
            var m: dnnl_memory_t?
            var d = md
            try check(dnnl_memory_create(&m, &d, ctx.engine, handle), "create a memory object")
            memories.append(m!)
            return m!
        }

        var tensorMemory: [String: dnnl_memory_t] = [:]
        func tensor(_ name: String) throws -> dnnl_memory_t {
            if let m = tensorMemory[name] { return m }
            let t = b.tensors[name]!
            let handle: UnsafeMutableRawPointer
            if name == Builder.userInput {
                handle = inputBuffer.pointer
            } else if let out = b.userOutputs[name] {
                handle = outputBuffers[out]!.pointer
            } else {
                handle = slotBuffers[slots.slotOf[name]!].pointer
            }
            let m = try memory(t.md, handle)
            tensorMemory[name] = m
            return m
        }

        for step in b.steps {
            var args: [dnnl_exec_arg_t] = []
            for (arg, ref) in step.args {
                let m: dnnl_memory_t
                switch ref {
                case .tensor(let n): m = try tensor(n)
                case .weights(let i): m = try memory(b.weightMDs[i], b.weightBuffers[i].pointer)
                case .scratchpad(let md): m = try memory(md, scratch.pointer)
                }
                args.append(dnnl_exec_arg_t(arg: arg, memory: m))
            }
            var prim: dnnl_primitive_t?
            try check(dnnl_primitive_create(&prim, step.pd), "create the primitive for \(step.layer)")
            dnnl_primitive_desc_destroy(step.pd)
            steps.append((prim!, args))
        }
    }
}

/// Plans a network: primitive descriptors, tensor layouts, reorders, weights. Creates no
/// activation memory; `CompiledNetwork.finish` does that from the plan.
struct Builder {
    static let userInput = "input"
    /// The input after `Network.inputAffine`.
    static let normalizedInput = "input~affine"
    /// Whether `tensor` is the image: the network's input, or that input after its normalization.
    static func isImage(_ tensor: String) -> Bool { tensor == userInput || tensor == normalizedInput }

    enum ArgRef { case tensor(String), weights(Int), scratchpad(dnnl_memory_desc_t) }
    struct Step { let layer: String; let pd: OpaquePointer; var args: [(Int32, ArgRef)]; let reads: [String]; let writes: String }
    /// `scale`: set for a quantized (u8/s8) tensor, whose values are the real ones times it.
    struct Tensor { var dims: [Int]; var md: dnnl_memory_desc_t; var aliasOf: String? = nil; var scale: Float? = nil }

    let network: Network
    let batch: Int, height: Int, width: Int
    let precision: Precision
    let calibration: Int8Calibration?
    let layout: ActivationLayout
    let algorithm: ConvolutionAlgorithm
    /// The layers reading each tensor (as input or residual), and the layer writing each.
    var readers: [String: [Layer]] = [:], producer: [String: Layer] = [:]
    var tensors: [String: Tensor] = [:]
    var steps: [Step] = []
    var weightBuffers: [AlignedBuffer] = []
    var weightMDs: [dnnl_memory_desc_t] = []
    var implementations: [String] = []
    var winogradConvolutions = 0
    var fp32InBF16Layers: [String] = []
    /// Float convolutions of an int8 network that keep the float layout (`keepsFloatLayout`).
    var floatAheadLayers: Set<String> = []
    var outputShapes: [String: [Int]] = [:]
    /// Tensor name -> output name, for tensors that live in a user output buffer.
    var userOutputs: [String: String] = [:]
    var scratchpadSize = 0
    /// The last layer index that reads each tensor (network outputs: past the end).
    var lastUse: [String: Int] = [:]
    /// Indices of layers computed inside the previous layer's primitive (a depthwise convolution
    /// fused into the 1x1 convolution before it, `fusableDepthwise`).
    var fused: Set<Int> = []

    init(network: Network, batch: Int, height: Int, width: Int, precision: Precision,
         calibration: Int8Calibration? = nil, layout: ActivationLayout, algorithm: ConvolutionAlgorithm = .auto) throws {
        // Layers read the normalized input when the network normalizes its input itself.
        self.network = network.inputAffine == nil ? network : network.readingInput(from: Self.normalizedInput)
        self.layout = layout
        self.algorithm = algorithm
        self.batch = batch
        self.height = height
        self.width = width
        self.precision = precision
        self.calibration = calibration
        let dims = [batch, network.inputChannels, height, width]
        tensors[Self.userInput] = Tensor(dims: dims, md: try MD.make(dims, dnnl_f32, dnnl_nchw))
        for (i, layer) in self.network.layers.enumerated() {
            producer[layer.name] = layer
            for input in layer.inputs { lastUse[input] = i; readers[input, default: []].append(layer) }
            if case .conv(let c) = layer.op, let r = c.residual { lastUse[r] = i; readers[r, default: []].append(layer) }
        }
        for (_, t) in network.outputs { lastUse[t] = Int.max }
    }

    var dt: dnnl_data_type_t { precision.dataType }

    mutating func build() throws {
        if let affine = network.inputAffine { try inputAffine(affine) }
        for (i, layer) in network.layers.enumerated() where !fused.contains(i) {
            for input in layer.inputs where tensors[input] == nil {
                throw EngineError("\(network.name): layer \(layer.name) reads \(input), which no earlier layer produces")
            }
            switch layer.op {
            case .conv(let c): try convolution(layer, c, index: i)
            case .maxPool(let k, let s, let p): try pooling(layer, dnnl_pooling_max, kernel: (k, k), stride: s, padding: p)
            case .averagePool(let k, let s, let p):
                try pooling(layer, dnnl_pooling_avg_exclude_padding, kernel: (k, k), stride: s, padding: p)
            case .globalAveragePool:
                let d = tensors[layer.inputs[0]]!.dims
                try pooling(layer, dnnl_pooling_avg_exclude_padding, kernel: (d[2], d[3]), stride: 1, padding: .valid)
            case .dense(let d): try dense(layer, d)
            case .activation(let a): try eltwise(layer, a)
            case .add(let a): try binary(layer, dnnl_binary_add, activation: a)
            case .multiply: try binary(layer, dnnl_binary_mul, activation: .none)
            }
        }
        for (output, tensorName) in network.outputs.sorted(by: { $0.key < $1.key }) {
            guard let t = tensors[tensorName] else {
                throw EngineError("\(network.name): output \(output) names \(tensorName), which no layer produces")
            }
            let flat = [t.dims[0], t.dims.dropFirst().reduce(1, *)]
            outputShapes[output] = flat
            let plain = try MD.make(t.dims, dnnl_f32, MD.plainTag(rank: t.dims.count))
            let dest = "\(tensorName)@\(output)"
            tensors[dest] = Tensor(dims: t.dims, md: plain)
            userOutputs[dest] = output
            try reorder(from: tensorName, to: dest, layer: "output \(output)")
        }
    }

    // MARK: Layers

    private mutating func convolution(_ layer: Layer, _ c: Convolution, index: Int) throws {
        let src = tensors[layer.inputs[0]]!
        let (n, ci, h, w) = (src.dims[0], src.dims[1], src.dims[2], src.dims[3])
        let (kh, kw) = c.kernel
        let window = c.padding.window(input: (h, w), kernel: c.kernel, stride: c.stride)
        let (pt, pl, pb, pr, oh, ow) = (window.top, window.left, window.bottom, window.right, window.height, window.width)
        let g = c.groups
        guard ci % g == 0, c.outChannels % g == 0 else {
            throw EngineError("\(network.name): layer \(layer.name) has \(ci) input and \(c.outChannels) output channels, not divisible into \(g) groups")
        }
        let wDims = g == 1 ? [c.outChannels, ci, kh, kw] : [g, c.outChannels / g, ci / g, kh, kw]
        guard c.weights.count == wDims.reduce(1, *) else {
            throw EngineError("\(network.name): layer \(layer.name) expects \(c.outChannels * ci / g * kh * kw) weights [\(c.outChannels), \(ci / g), \(kh), \(kw)], got \(c.weights.count)")
        }
        let outDims = [n, c.outChannels, oh, ow]
        // An int8 convolution reads and writes nhwc (fp32 outputs too: oneDNN 2.6 has no int8 kernel
        // from nhwc to channel-blocked, `ref_int8` would run).
        // Under int8 the float convolutions between them (depthwise) use nhwc too, saving two reorders
        // of the widest tensors per block. Those ahead of every int8 one (the image's own, and what
        // reads its output in the float layout: EfficientNet's `b0.depthwise`) keep the float
        // network's layout (`floatAhead`).
        let floatAhead = keepsFloatLayout(layer, inputDims: src.dims, outputDims: outDims)
        if floatAhead { floatAheadLayers.insert(layer.name) }
        let tag = precision == .int8 && !floatAhead ? Self.int8Tag : layout.tag
        // Under int8 a first convolution that is not `floatAhead` writes what its kernel prefers
        // (nhwc has no AVX2 fp32 kernel there: `ref:any`); a reorder gives the next layer nhwc.
        let dstTag = precision == .int8 && ci < 8 && !floatAhead ? dnnl_format_tag_any : tag
        // The residual the sum post-op adds can be added in place when it dies here, with dst's layout.
        let residualDies = c.residual.map { r in
            lastUse[r] == index && r != layer.inputs[0] && r != Self.userInput && tensors.values.allSatisfy({ $0.aliasOf != r })
        } ?? false
        let q = try int8Plan(layer, c, inputDims: src.dims, outputDims: outDims, residualDies: residualDies, dstTag: dstTag)
        let fp32InBF16 = staysFP32InBF16(layer, c)
        if fp32InBF16 { fp32InBF16Layers.append(layer.name) }
        let dt = fp32InBF16 ? dnnl_f32 : self.dt
        // The first convolution reads the 3-channel image in whatever layout its kernel prefers.
        var srcMD = try MD.make([n, ci, h, w], q?.srcType ?? dt, ci < 8 ? dnnl_format_tag_any : tag)
        var wMD = try MD.make(wDims, q == nil ? dt : dnnl_s8, dnnl_format_tag_any)
        var bMD = try MD.make([c.outChannels], dnnl_f32, dnnl_a)
        var dstMD = try MD.make(outDims, q?.dstType ?? dt, dstTag)
        // fp32 dense convolutions under `.auto`: oneDNN may choose Winograd (`ConvolutionAlgorithm`).
        let alg = ConvolutionAlgorithm.mayUseWinograd(algorithm, precision: precision, groups: g, inChannels: ci)
            ? dnnl_convolution_auto : dnnl_convolution_direct
        var desc = dnnl_convolution_desc_t()
        try check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg,
                                                     &srcMD, &wMD, &bMD, &dstMD, [c.stride, c.stride].map(Int64.init),
                                                     [pt, pl].map(Int64.init), [pb, pr].map(Int64.init)),
                  "describe convolution \(layer.name)")
        if q == nil, !fp32InBF16, let (next, d) = fusableDepthwise(layer, c, index: index, outDims: outDims),
           try convolution(layer, c, fusing: next, d, index: index, desc: &desc) { return }
        let dstScale = q?.dstScale ?? 1
        // The residual the sum post-op adds: in place in dst when it dies here with dst's layout and
        // type (then at its own scale), else copied into dst at dst's scale.
        var residualInPlace = false, contentScale = dstScale
        if let r = c.residual {
            guard let res = tensors[r], res.dims == outDims else {
                throw EngineError("\(network.name): layer \(layer.name) adds \(r), whose shape differs from its output")
            }
            var asRead = dstMD
            if let t = q?.sumType { asRead.data_type = t }
            residualInPlace = residualDies && MD.equal(res.md, asRead)
            if residualInPlace { contentScale = res.scale ?? 1 }
            guard residualInPlace || q?.sumType == nil else {
                throw EngineError("\(network.name): layer \(layer.name) was planned to add \(r) in place as s8, and cannot")
            }
        }
        let original = c.weights, originalBias = c.bias ?? [Float](repeating: 0, count: c.outChannels)
        /// The int8 weights, bias and output scales, and the primitive; `halved`: oneDNN halves the
        /// weights as it reorders them (below).
        func create(halved: Bool) throws -> (pd: OpaquePointer, weights: [Float], bias: [Float]) {
            var weights = original, bias = originalBias
            var outputScales: [Float]?
            if let q {
                // Accumulators are sums of (x * srcScale) * (w * weightScale): output scales bring them
                // back to real values (and to dst's scale when no activation follows); the bias is added
                // to the accumulator before the output scale, so it is scaled up like the products. With
                // the input's channel means, it is corrected for the rounding of the weights first.
                // `Int8WeightRule` (whether this CPU can run it: checked in `init`); depthwise kernels
                // widen u8 and s8 to 32 bits before multiplying, so they keep 127 levels unless halved.
                let rule = calibration?.weights ?? .full
                let signedInput = q.srcType == dnnl_s8, pairs = rule == .pairs16
                let pairStride = g == 1 && pairs && !signedInput && !halved ? kh * kw : nil
                var (values, scales) = Int8Calibration.quantizeWeights(weights, outChannels: c.outChannels, search: calibration?.depthwise == true,
                                                                       levels: halved || (pairs && signedInput) ? 63 : 127, pairStride: pairStride)
                if let means = calibration?.means?[layer.inputs[0]] {
                    guard means.count == ci else {
                        throw EngineError("\(network.name): the int8 calibration has \(means.count) channel means for \(layer.inputs[0]), which has \(ci) channels; calibrate again (a new extraction)")
                    }
                    let correction = Int8Calibration.biasCorrection(weights: weights, values: values, scales: scales, inputMeans: means, groups: g)
                    for o in bias.indices { bias[o] += correction[o] }
                }
                // Even values, so oneDNN's halving is exact: it computes with `levels` levels.
                if halved { values = values.map { 2 * $0 }; scales = scales.map { 2 * $0 } }
                weights = values
                let toDst: Float = c.activation == .none ? dstScale : 1
                outputScales = scales.map { toDst / (q.srcScale * $0) }
                for o in bias.indices { bias[o] *= q.srcScale * scales[o] }
            }
            let linear: Float = c.activation == .none ? dstScale : 1
            let attr = try Attributes(residual: c.residual != nil, activation: c.activation, outputScales: outputScales,
                                      sumScale: linear / contentScale, sumType: q?.sumType, activationScale: dstScale / linear)
            defer { attr.destroy() }
            var pdOut: OpaquePointer?
            try check(dnnl_primitive_desc_create(&pdOut, &desc, attr.handle, DNNLContext.shared.engine, nil),
                      "create convolution \(layer.name) (\(ci)->\(c.outChannels), \(kh)x\(kw)/\(c.stride), groups \(g)\(q == nil ? "" : ", int8"))")
            return (pdOut!, weights, bias)
        }
        // Without VNNI, oneDNN's int8 kernels for s8 inputs halve the weights as they reorder them
        // (the weights' `scale_adjust` 0.5) and double the sums, so odd weights lose their last bit
        // (Lite0 under `ONEDNN_MAX_CPU_ISA=AVX2`: b1.expand, the first s8-input convolution, 2% off
        // the VNNI kernels' output; features at cosine 0.982-0.995). The weights are then
        // quantized to at most 63 levels and doubled: the halving is exact. Kernels that halve would
        // also saturate with more: 255 x 2 x 63 = 32,130 fits 16 bits.
        var (pd, weights, bias) = try create(halved: false)
        if q != nil, Self.halvesWeights(MD.query(pd, dnnl_query_weights_md)!) {
            dnnl_primitive_desc_destroy(pd)
            (pd, weights, bias) = try create(halved: true)
            guard Self.halvesWeights(MD.query(pd, dnnl_query_weights_md)!) else {
                throw EngineError("\(network.name): oneDNN changed its mind about halving \(layer.name)'s int8 weights")
            }
        }
        let input = try conform(layer.inputs[0], to: MD.query(pd, dnnl_query_src_md)!, layer: layer.name, scale: q?.srcScale)
        let wIndex = try addWeights(weights, dims: wDims, to: MD.query(pd, dnnl_query_weights_md)!, layer: layer.name)
        let bIndex = try addWeights(bias, dims: [c.outChannels], to: bMD, layer: layer.name)
        let outMD = MD.query(pd, dnnl_query_dst_md)!
        var out = Tensor(dims: outDims, md: outMD, scale: q?.dstScale)
        if let r = c.residual {
            if residualInPlace {
                out.aliasOf = r
                tensors[layer.name] = out
            } else {
                tensors[layer.name] = out
                try reorder(from: r, to: layer.name, layer: layer.name + " residual", scale: dstScale / (tensors[r]!.scale ?? 1))
            }
        } else {
            tensors[layer.name] = out
        }
        if ConvolutionAlgorithm.isWinograd(pd) { winogradConvolutions += 1 }
        try append(layer.name, pd, [(DNNL_ARG_SRC, .tensor(input)), (DNNL_ARG_WEIGHTS, .weights(wIndex)),
                                     (DNNL_ARG_BIAS, .weights(bIndex)), (DNNL_ARG_DST, .tensor(layer.name))],
                   reads: [input] + (c.residual.map { [$0] } ?? []), writes: layer.name,
                   type: precision == .int8 ? (q == nil ? "fp32" : "int8") : fp32InBF16 ? "fp32" : nil)
    }

    /// Whether oneDNN halves int8 weights as it reorders them into `md` (its `scale_adjust`).
    static func halvesWeights(_ md: dnnl_memory_desc_t) -> Bool {
        md.extra.flags & UInt64(dnnl_memory_extra_flag_scale_adjust.rawValue) != 0 && md.extra.scale_adjust == 0.5
    }

    /// `WORKBENCH_BF16_IMAGE_FP32=0` runs them in bf16 too, as builds before the ninth session did
    /// (for measuring; the extraction records bf16 either way).
    static let imageConvolutionsFP32InBF16 = ProcessInfo.processInfo.environment["WORKBENCH_BF16_IMAGE_FP32"] != "0"

    /// Whether `layer`, a convolution of a bf16 network, runs in fp32 (reading and writing fp32): the
    /// image's convolution when a depthwise convolution reads its output, that depthwise convolution,
    /// and a 1 x 1 convolution without residual reading the depthwise one's output, each when only
    /// convolutions read its output (EfficientNet-Lite's `stem`, `b0.depthwise` and `b0.project`;
    /// not B0's, whose squeeze-excite pool reads `b0.depthwise`).
    /// Stored in bf16, the tensor between the first two keeps 8 of fp32's 24 mantissa bits, and the
    /// depthwise filters, whose 9 taps nearly cancel on flat regions (sky, sea), turn that rounding
    /// into most of the features' error (in an exploratory build, either convolution alone in fp32
    /// did not help: the tensor is rounded either way). The third is for speed: the tensor reordered
    /// to bf16 is then its output (16 channels in Lite) instead of the depthwise one's (32). Lite0
    /// bf16 `extract bench --seconds 4`, 3 alternating rounds of exploratory builds: with the third in
    /// fp32 too, 1.7-4.4% faster than with only the first two (Lite2, 2 rounds: 1.4% and 3.0%).
    /// `tools/bench/int8_quality.sh --backbone efficientnet_lite2 --precision bf16` on the 2,400
    /// scenes6 images: lowest cosine to fp32 features 0.9937, none below 0.99; with
    /// `WORKBENCH_BF16_IMAGE_FP32=0`, 0.9598 and 173 images below 0.99. PyTorch's CPU autocast on the
    /// worst of those (`tools/goldens/bf16_autocast.py`): 0.963-0.988. The cost and the other
    /// backbones' figures are in README ("Correctness", bf16).
    func staysFP32InBF16(_ layer: Layer, _ c: Convolution) -> Bool {
        guard precision == .bf16, Self.imageConvolutionsFP32InBF16 else { return false }
        // Each reader takes the fp32 output through a reorder to bf16 (`onlyConvolutionsRead`).
        /// `reader` is a depthwise convolution of the image convolution `image`'s output that stays fp32.
        func depthwiseStays(_ reader: Layer, after image: Convolution) -> Bool {
            guard case .conv(let d) = reader.op, d.isDepthwise(inputChannels: image.outChannels) else { return false }
            return onlyConvolutionsRead(reader.name)
        }
        if Self.isImage(layer.inputs[0]) {
            return onlyConvolutionsRead(layer.name) && readers[layer.name]!.contains { depthwiseStays($0, after: c) }
        }
        guard let p = producer[layer.inputs[0]], case .conv(let pc) = p.op else { return false }
        if Self.isImage(p.inputs[0]) {   // the depthwise one
            return onlyConvolutionsRead(p.name) && depthwiseStays(layer, after: pc)
        }
        // The 1 x 1 one after it.
        guard c.groups == 1, c.kernel == (1, 1), c.residual == nil, pc.groups > 1, onlyConvolutionsRead(layer.name) else { return false }
        return staysFP32InBF16(p, pc)
    }

    /// Whether `name`'s output has readers and all are convolutions (with `asInputOnly`, reading it as
    /// their input, not as a residual); false for a network output.
    func onlyConvolutionsRead(_ name: String, asInputOnly: Bool = false) -> Bool {
        guard lastUse[name] != Int.max, let rs = readers[name], !rs.isEmpty else { return false }
        return rs.allSatisfy { r in
            guard case .conv(let rc) = r.op else { return false }
            return !asInputOnly || (r.inputs[0] == name && rc.residual == nil)
        }
    }

    /// Whether `layer`, a float convolution of an int8 network, keeps the float network's layout
    /// (`floatAheadLayers`) instead of nhwc: the image's own convolution (reading the plain input
    /// with no reorder, as the fp32 network does) when every reader of its output is a float
    /// convolution that keeps it too; such a reader when every reader of its own output is a
    /// convolution (which reorders it once, quantizing). EfficientNet-Lite's `stem` and
    /// `b0.depthwise`; not B0's `b0.depthwise` (its squeeze-excite scale would mix layouts) nor
    /// ResNet's or VGG's first convolution (a pool or an int8 convolution reads it). Lite0 int8 per
    /// batch of 16 (`ONEDNN_VERBOSE=1 extract bench --precision int8`): input reorder 0.56 ms +
    /// `brgconv` 1.46 ms, against `jit:avx512_core` reading the plain input, 0.93-0.99 ms in
    /// `tools/bench/stem_layout_probe.c`.
    func keepsFloatLayout(_ layer: Layer, inputDims: [Int], outputDims: [Int]) -> Bool {
        guard precision == .int8, !runsInt8(layer, inputDims: inputDims) else { return false }
        func convolutionsOnly(_ name: String) -> Bool { onlyConvolutionsRead(name, asInputOnly: true) }
        if Self.isImage(layer.inputs[0]) {
            return convolutionsOnly(layer.name) && (readers[layer.name] ?? []).allSatisfy { r in
                !runsInt8(r, inputDims: outputDims) && convolutionsOnly(r.name)
            }
        }
        return floatAheadLayers.contains(layer.inputs[0]) && convolutionsOnly(layer.name)
    }

    /// Whether 1x1 + depthwise pairs are fused (`fusableDepthwise`); `WORKBENCH_FUSE_DEPTHWISE=0`
    /// turns it off, for experiments.
    static let fuseDepthwise = ProcessInfo.processInfo.environment["WORKBENCH_FUSE_DEPTHWISE"] != "0"

    /// The depthwise convolution that can run inside this 1x1 convolution's primitive (oneDNN's
    /// depthwise post-op: the wide 1x1 output is never written to memory). The next layer, when it
    /// is a 3x3 depthwise convolution of stride 1 or 2 with padding 1 at the top and left (PyTorch's
    /// padding 1; Keras's SAME at stride 1, not at stride 2, which pads the bottom and right only),
    /// without a residual, and the only reader of this 1x1 convolution's output (stride 1, no
    /// residual, not a network output: `Int8Calibration.measure`'s networks, which output every
    /// layer, fuse nothing); fp32 or bf16. EfficientNet's expansion + depthwise pairs of 3x3 blocks.
    func fusableDepthwise(_ layer: Layer, _ c: Convolution, index: Int, outDims: [Int]) -> (Layer, Convolution)? {
        guard Self.fuseDepthwise, precision != .int8, c.kernel == (1, 1), c.stride == 1, c.groups == 1, c.residual == nil,
              index + 1 < network.layers.count, lastUse[layer.name] == index + 1, readers[layer.name]?.count == 1 else { return nil }
        let next = network.layers[index + 1]
        guard case .conv(let d) = next.op, next.inputs == [layer.name], d.residual == nil, d.kernel == (3, 3),
              d.stride == 1 || d.stride == 2, d.groups == c.outChannels, d.outChannels == c.outChannels else { return nil }
        let (h, w) = (outDims[2], outDims[3])
        let window = d.padding.window(input: (h, w), kernel: (3, 3), stride: d.stride)
        // The fused output is ceil(input / stride), padded by 1 before: it must be the layer's own.
        guard window.top == 1, window.left == 1, window.height == (h + d.stride - 1) / d.stride,
              window.width == (w + d.stride - 1) / d.stride else { return nil }
        return (next, d)
    }

    /// Creates the 1x1 convolution `layer` (described by `desc`) with the depthwise convolution
    /// `next` fused; false, creating nothing, when oneDNN has no kernel for the pair here (or only
    /// a reference one): the two are then created as usual.
    private mutating func convolution(_ layer: Layer, _ c: Convolution, fusing next: Layer, _ d: Convolution, index: Int,
                                      desc: inout dnnl_convolution_desc_t) throws -> Bool {
        let attr = try Attributes(residual: false, activation: c.activation, depthwise: (d.stride, dt, d.activation))
        defer { attr.destroy() }
        var pdOut: OpaquePointer?
        guard dnnl_primitive_desc_create(&pdOut, &desc, attr.handle, DNNLContext.shared.engine, nil) == dnnl_success,
              let pd = pdOut else { return false }
        let dwArg = DNNL_ARG_ATTR_POST_OP_DW
        guard !MD.implementation(pd).hasPrefix("ref"), let dwMD = MD.query(pd, dnnl_query_exec_arg_md, dwArg | DNNL_ARG_WEIGHTS) else {
            dnnl_primitive_desc_destroy(pd)
            return false
        }
        let src = tensors[layer.inputs[0]]!.dims, g = d.groups, s = d.stride
        let input = try conform(layer.inputs[0], to: MD.query(pd, dnnl_query_src_md)!, layer: layer.name)
        let w = try addWeights(c.weights, dims: [c.outChannels, src[1], 1, 1], to: MD.query(pd, dnnl_query_weights_md)!, layer: layer.name)
        let b = try addWeights(c.bias ?? [Float](repeating: 0, count: c.outChannels), dims: [c.outChannels],
                               to: try MD.make([c.outChannels], dnnl_f32, dnnl_a), layer: layer.name)
        let dw = try addWeights(d.weights, dims: [g, 1, 1, 3, 3], to: dwMD, layer: next.name)
        let db = try addWeights(d.bias ?? [Float](repeating: 0, count: g), dims: [g], to: try MD.make([g], dnnl_f32, dnnl_a), layer: next.name)
        let outMD = MD.query(pd, dnnl_query_dst_md)!
        tensors[next.name] = Tensor(dims: [src[0], g, (src[2] + s - 1) / s, (src[3] + s - 1) / s], md: outMD)
        fused.insert(index + 1)
        try append("\(layer.name)+\(next.name)", pd, [(DNNL_ARG_SRC, .tensor(input)), (DNNL_ARG_WEIGHTS, .weights(w)),
                                                      (DNNL_ARG_BIAS, .weights(b)), (dwArg | DNNL_ARG_WEIGHTS, .weights(dw)),
                                                      (dwArg | DNNL_ARG_BIAS, .weights(db)), (DNNL_ARG_DST, .tensor(next.name))],
                   reads: [input], writes: next.name)
        return true
    }

    /// Layout of int8 activations: `nhwc`, what oneDNN's int8 convolution kernels read.
    static let int8Tag = dnnl_acdb

    /// Types and scales of an int8 convolution (`dstScale` nil: fp32 output).
    /// `sumType`: the type the residual, added in place, is read as when it differs from dst's (s8
    /// under a u8 dst: oneDNN's sum post-op reinterprets the 8-bit buffer).
    struct Int8Plan {
        let srcType: dnnl_data_type_t; let srcScale: Float; let dstType: dnnl_data_type_t; let dstScale: Float?
        var sumType: dnnl_data_type_t? = nil
    }

    /// Whether a convolution reading a tensor of `inputDims` runs in int8: under `--precision int8`,
    /// with calibrated ranges for its input and output, except on the image itself (3 channels,
    /// where 8 bits lose the most and there is little to gain), on 1 x 1 maps (squeeze-excite),
    /// grouped convolutions that are not depthwise, and depthwise convolutions whose input a float
    /// layer writes (or under a calibration without `depthwise`): a depthwise output sums 9 or 25
    /// inputs of one channel, so the rounding of its input does not average out. On EfficientNet-Lite0
    /// the first one, `b0.depthwise`, which reads the fp32 first convolution's output through a
    /// quantizing reorder, lost the most in int8 (a session's exploratory build, not kept; its
    /// numbers are in issue 14's notes); with the others in int8 `tools/bench/int8_quality.sh` gives
    /// a lowest cosine of 0.9938 on the 2,400 scenes6 images (signed tensors clipped,
    /// `Int8Calibration.signedClipBound`).
    func runsInt8(_ layer: Layer, inputDims: [Int]) -> Bool {
        guard precision == .int8, case .conv(let c) = layer.op, let calibration else { return false }
        let x = layer.inputs[0], ranges = calibration.ranges
        guard !Self.isImage(x) && inputDims[2] * inputDims[3] > 1
              && ranges[x] != nil && ranges[layer.name] != nil else { return false }
        guard c.groups > 1 else { return true }
        guard calibration.depthwise == true, c.isDepthwise(inputChannels: inputDims[1]),
              let p = producer[x], let pInput = tensors[p.inputs[0]] else { return false }
        return runsInt8(p, inputDims: pInput.dims)
    }

    /// The int8 plan of a convolution, nil when it runs in the network's float type. Its output is
    /// quantized when every reader is an int8 convolution too (else fp32): u8 when the output and the
    /// residual it adds are >= 0 over the calibration images, else s8, except that an output >= 0
    /// adding an s8 residual in place (`residualDies`, the residual in `dstTag`'s layout; a ResNet
    /// stage's first block, whose shortcut is a linear convolution) is u8 (255 levels for its range,
    /// not 127) and reads the residual as s8 (`sumType`); its readers then add it in place too, as
    /// u8, without a reorder. That exception only under calibrations with `signedClip` (sixth
    /// session on): older ones compile their s8 outputs as they were computed.
    func int8Plan(_ layer: Layer, _ c: Convolution, inputDims: [Int], outputDims: [Int],
                  residualDies: Bool, dstTag: dnnl_format_tag_t) throws -> Int8Plan? {
        guard runsInt8(layer, inputDims: inputDims), let ranges = calibration?.ranges else { return nil }
        let x = tensors[layer.inputs[0]]!
        let src = x.scale.map { (type: x.md.data_type, scale: $0) } ?? Int8Calibration.quantization(ranges[layer.inputs[0]]!)
        let quantizedOut = lastUse[layer.name] != Int.max
            && (readers[layer.name] ?? []).allSatisfy { runsInt8($0, inputDims: outputDims) }
        guard quantizedOut else { return Int8Plan(srcType: src.type, srcScale: src.scale, dstType: dnnl_f32, dstScale: nil) }
        let own = ranges[layer.name]!
        // dst starts as the residual, so it is signed when the residual can be negative
        let negativeResidual = c.residual.map { (ranges[$0]?[0] ?? -1) < 0 } ?? false
        // unless the residual is read as s8 in place under a u8 dst.
        if negativeResidual, own[0] >= 0, residualDies, calibration?.signedClip != nil,
           let res = tensors[c.residual!], res.md.data_type == dnnl_s8, MD.equal(res.md, try MD.make(outputDims, dnnl_s8, dstTag)) {
            let dst = Int8Calibration.quantization(own)
            return Int8Plan(srcType: src.type, srcScale: src.scale, dstType: dst.type, dstScale: dst.scale, sumType: dnnl_s8)
        }
        let dst = Int8Calibration.quantization(own, signed: negativeResidual)
        return Int8Plan(srcType: src.type, srcScale: src.scale, dstType: dst.type, dstScale: dst.scale)
    }

    /// `Network.inputAffine` as one binary step over the fp32 input: multiply by the per-channel
    /// scale, then add the per-channel shift as a post-op (oneDNN's `jit:uni` binary kernel).
    private mutating func inputAffine(_ a: ChannelAffine) throws {
        let src = tensors[Self.userInput]!
        let c = src.dims[1]
        guard a.scale.count == c, a.shift.count == c else {
            throw EngineError("\(network.name): the input normalization has \(a.scale.count) scales and \(a.shift.count) shifts for \(c) input channels")
        }
        if let reader = network.layers.first(where: { if case .conv(let conv) = $0.op { return conv.residual == Self.userInput }; return false }) {
            throw EngineError("\(network.name): layer \(reader.name) adds the raw input, which the input normalization replaces")
        }
        var srcMD = src.md, dstMD = src.md
        var channelMD = try MD.make([1, c, 1, 1], dnnl_f32, dnnl_nchw)
        var desc = dnnl_binary_desc_t()
        try check(dnnl_binary_desc_init(&desc, dnnl_binary_mul, &srcMD, &channelMD, &dstMD), "describe the input normalization")
        let attr = try Attributes(residual: false, activation: .none, addPerChannel: channelMD)
        defer { attr.destroy() }
        var pd: OpaquePointer?
        try check(dnnl_primitive_desc_create(&pd, &desc, attr.handle, DNNLContext.shared.engine, nil),
                  "create the input normalization")
        let scale = try addWeights(a.scale, dims: [1, c, 1, 1], to: channelMD, layer: "normalize")
        let shift = try addWeights(a.shift, dims: [1, c, 1, 1], to: channelMD, layer: "normalize")
        tensors[Self.normalizedInput] = Tensor(dims: src.dims, md: src.md)
        try append("normalize", pd!, [(DNNL_ARG_SRC_0, .tensor(Self.userInput)), (DNNL_ARG_SRC_1, .weights(scale)),
                                      (Attributes.firstPostOp | DNNL_ARG_SRC_1, .weights(shift)),
                                      (DNNL_ARG_DST, .tensor(Self.normalizedInput))],
                   reads: [Self.userInput], writes: Self.normalizedInput)
    }

    private mutating func pooling(_ layer: Layer, _ alg: dnnl_alg_kind_t, kernel: (Int, Int), stride: Int,
                                  padding: Padding) throws {
        let src = tensors[layer.inputs[0]]!
        let (n, c, h, w) = (src.dims[0], src.dims[1], src.dims[2], src.dims[3])
        let window = padding.window(input: (h, w), kernel: kernel, stride: stride)
        let (pt, pl, pb, pr, oh, ow) = (window.top, window.left, window.bottom, window.right, window.height, window.width)
        var srcMD = src.md
        var dstMD = try MD.make([n, c, oh, ow], dt, dnnl_format_tag_any)
        var desc = dnnl_pooling_desc_t()
        try check(dnnl_pooling_forward_desc_init(&desc, dnnl_forward_inference, alg, &srcMD, &dstMD,
                                                 [stride, stride].map(Int64.init), [kernel.0, kernel.1].map(Int64.init),
                                                 [pt, pl].map(Int64.init), [pb, pr].map(Int64.init)),
                  "describe pooling \(layer.name)")
        let attr = try Attributes(residual: false, activation: .none)
        defer { attr.destroy() }
        var pd: OpaquePointer?
        try check(dnnl_primitive_desc_create(&pd, &desc, attr.handle, DNNLContext.shared.engine, nil),
                  "create pooling \(layer.name)")
        tensors[layer.name] = Tensor(dims: [n, c, oh, ow], md: MD.query(pd!, dnnl_query_dst_md)!)
        try append(layer.name, pd!, [(DNNL_ARG_SRC, .tensor(layer.inputs[0])), (DNNL_ARG_DST, .tensor(layer.name))],
                   reads: [layer.inputs[0]], writes: layer.name)
    }

    private mutating func dense(_ layer: Layer, _ d: Dense) throws {
        let src = tensors[layer.inputs[0]]!
        let inFeatures = src.dims.dropFirst().reduce(1, *)
        guard d.weights.count == d.outFeatures * inFeatures else {
            throw EngineError("\(network.name): dense layer \(layer.name) expects \(d.outFeatures)x\(inFeatures) weights, got \(d.weights.count)")
        }
        var srcMD = try MD.make(src.dims, dt, dnnl_format_tag_any)
        let wDims = [d.outFeatures] + src.dims.dropFirst()
        var wMD = try MD.make(wDims, dt, dnnl_format_tag_any)
        var bMD = try MD.make([d.outFeatures], dnnl_f32, dnnl_a)
        var dstMD = try MD.make([src.dims[0], d.outFeatures], dt, dnnl_format_tag_any)
        var desc = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &srcMD, &wMD, &bMD, &dstMD),
                  "describe dense layer \(layer.name)")
        let attr = try Attributes(residual: false, activation: d.activation)
        defer { attr.destroy() }
        var pdOut: OpaquePointer?
        try check(dnnl_primitive_desc_create(&pdOut, &desc, attr.handle, DNNLContext.shared.engine, nil),
                  "create dense layer \(layer.name)")
        let pd = pdOut!
        let input = try conform(layer.inputs[0], to: MD.query(pd, dnnl_query_src_md)!, layer: layer.name)
        let wIndex = try addWeights(d.weights, dims: wDims, to: MD.query(pd, dnnl_query_weights_md)!, layer: layer.name)
        let bIndex = try addWeights(d.bias ?? [Float](repeating: 0, count: d.outFeatures), dims: [d.outFeatures],
                                    to: bMD, layer: layer.name)
        tensors[layer.name] = Tensor(dims: [src.dims[0], d.outFeatures], md: MD.query(pd, dnnl_query_dst_md)!)
        try append(layer.name, pd, [(DNNL_ARG_SRC, .tensor(input)), (DNNL_ARG_WEIGHTS, .weights(wIndex)),
                                     (DNNL_ARG_BIAS, .weights(bIndex)), (DNNL_ARG_DST, .tensor(layer.name))],
                   reads: [input], writes: layer.name)
    }

    private mutating func eltwise(_ layer: Layer, _ a: Activation) throws {
        let src = tensors[layer.inputs[0]]!
        var md = src.md
        var desc = dnnl_eltwise_desc_t()
        let (alg, alpha, beta) = a.dnnl
        try check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &md, alpha, beta),
                  "describe activation \(layer.name)")
        let attr = try Attributes(residual: false, activation: .none)
        defer { attr.destroy() }
        var pd: OpaquePointer?
        try check(dnnl_primitive_desc_create(&pd, &desc, attr.handle, DNNLContext.shared.engine, nil),
                  "create activation \(layer.name)")
        tensors[layer.name] = Tensor(dims: src.dims, md: src.md)
        try append(layer.name, pd!, [(DNNL_ARG_SRC, .tensor(layer.inputs[0])), (DNNL_ARG_DST, .tensor(layer.name))],
                   reads: [layer.inputs[0]], writes: layer.name)
    }

    private mutating func binary(_ layer: Layer, _ alg: dnnl_alg_kind_t, activation: Activation) throws {
        guard layer.inputs.count == 2 else {
            throw EngineError("\(network.name): layer \(layer.name) needs two inputs")
        }
        let a = tensors[layer.inputs[0]]!
        // A broadcast operand (EfficientNet's squeeze-excite gate, [n, c, 1, 1]) in another layout than
        // the tensor it scales sends oneDNN to `ref:any` (B0 int8 on AVX2, whose depthwise kernels write nhwc):
        // it is reordered into the tensor's layout, a few hundred values.
        var second = layer.inputs[1]
        if let b = tensors[second], b.dims != a.dims, b.scale == nil, b.md.data_type == a.md.data_type, let tag = MD.tag(of: a.md, dims: a.dims),
           MD.tag(of: b.md, dims: b.dims) != tag {
            second = try conform(second, to: MD.make(b.dims, b.md.data_type, tag), layer: layer.name)
        }
        let b = tensors[second]!
        var aMD = a.md, bMD = b.md, dstMD = a.md
        var desc = dnnl_binary_desc_t()
        try check(dnnl_binary_desc_init(&desc, alg, &aMD, &bMD, &dstMD), "describe \(layer.name)")
        let attr = try Attributes(residual: false, activation: activation)
        defer { attr.destroy() }
        var pd: OpaquePointer?
        try check(dnnl_primitive_desc_create(&pd, &desc, attr.handle, DNNLContext.shared.engine, nil),
                  "create \(layer.name)")
        tensors[layer.name] = Tensor(dims: a.dims, md: a.md)
        try append(layer.name, pd!, [(DNNL_ARG_SRC_0, .tensor(layer.inputs[0])), (DNNL_ARG_SRC_1, .tensor(second)),
                                     (DNNL_ARG_DST, .tensor(layer.name))],
                   reads: [layer.inputs[0], second], writes: layer.name)
    }

    // MARK: Helpers

    /// Returns a tensor holding `name` in layout `md`, inserting a reorder when the producer chose
    /// another layout (reused if several consumers want the same one).
    /// `scale`: the scale of `md` when it is quantized (a float tensor is quantized on the way).
    private mutating func conform(_ name: String, to md: dnnl_memory_desc_t, layer: String, scale: Float? = nil) throws -> String {
        let t = tensors[name]!
        if MD.equal(t.md, md) { return name }
        var i = 0
        while let existing = tensors["\(name)~\(i)"] {
            if MD.equal(existing.md, md) { return "\(name)~\(i)" }
            i += 1
        }
        let converted = "\(name)~\(i)"
        tensors[converted] = Tensor(dims: t.dims, md: md, scale: scale)
        try reorder(from: name, to: converted, layer: layer + " input", scale: (scale ?? 1) / (t.scale ?? 1))
        return converted
    }

    /// `scale`: multiplies the values on the way (quantizing, dequantizing or rescaling int8 tensors).
    private mutating func reorder(from: String, to: String, layer: String, scale: Float = 1) throws {
        var a = tensors[from]!.md, b = tensors[to]!.md
        var pd: OpaquePointer?
        let attr = try Attributes(residual: false, activation: .none, outputScales: scale == 1 ? nil : [scale])
        defer { attr.destroy() }
        let engine = DNNLContext.shared.engine
        try check(dnnl_reorder_primitive_desc_create(&pd, &a, engine, &b, engine, attr.handle), "reorder for \(layer)")
        try append(layer, pd!, [(DNNL_ARG_FROM, .tensor(from)), (DNNL_ARG_TO, .tensor(to))], reads: [from], writes: to)
    }

    /// Copies `values` (plain row-major `dims`, fp32) into a buffer in the layout `md` chosen by
    /// the primitive. Runs once, at compile time.
    private mutating func addWeights(_ values: [Float], dims: [Int], to md: dnnl_memory_desc_t, layer: String) throws -> Int {
        let ctx = DNNLContext.shared
        var userMD = try MD.make(dims, dnnl_f32, MD.plainTag(rank: dims.count))
        var dstMD = md
        let dst = try AlignedBuffer(byteCount: MD.size(md))
        var values = values
        try values.withUnsafeMutableBytes { raw in
            var src: dnnl_memory_t?, out: dnnl_memory_t?
            try check(dnnl_memory_create(&src, &userMD, ctx.engine, raw.baseAddress), "wrap weights of \(layer)")
            defer { dnnl_memory_destroy(src) }
            try check(dnnl_memory_create(&out, &dstMD, ctx.engine, dst.pointer), "hold weights of \(layer)")
            defer { dnnl_memory_destroy(out) }
            var pd: OpaquePointer?
            try check(dnnl_reorder_primitive_desc_create(&pd, &userMD, ctx.engine, &dstMD, ctx.engine, nil),
                      "reorder weights of \(layer)")
            defer { dnnl_primitive_desc_destroy(pd) }
            var prim: dnnl_primitive_t?
            try check(dnnl_primitive_create(&prim, pd), "reorder weights of \(layer)")
            defer { dnnl_primitive_destroy(prim) }
            let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: src), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: out)]
            try check(dnnl_primitive_execute(prim, ctx.stream, 2, args), "reorder weights of \(layer)")
            try check(dnnl_stream_wait(ctx.stream), "reorder weights of \(layer)")
        }
        weightBuffers.append(dst)
        weightMDs.append(md)
        return weightBuffers.count - 1
    }

    /// `type`: the data type the primitive computes in, named after its implementation (int8
    /// networks' convolutions).
    private mutating func append(_ layer: String, _ pd: OpaquePointer, _ args: [(Int32, ArgRef)],
                                 reads: [String], writes: String, type: String? = nil) throws {
        var args = args
        if let scratch = MD.query(pd, dnnl_query_scratchpad_md), MD.size(scratch) > 0 {
            scratchpadSize = max(scratchpadSize, MD.size(scratch))
            args.append((DNNL_ARG_SCRATCHPAD, .scratchpad(scratch)))
        }
        implementations.append("\(layer): \(MD.implementation(pd))" + (type.map { " (\($0))" } ?? ""))
        steps.append(Step(layer: layer, pd: pd, args: args, reads: reads, writes: writes))
    }

    // MARK: Buffer planning

    struct Slots { var sizes: [Int] = []; var slotOf: [String: Int] = [:] }

    /// Assigns every intermediate tensor to a reusable buffer: a tensor takes a free slot when it
    /// is first written and gives it back after its last read (or hands it on to a tensor that
    /// aliases it in place).
    func planSlots() -> Slots {
        var slots = Slots()
        var free: [Int] = []
        var last: [String: Int] = [:]
        for (i, s) in steps.enumerated() {
            for r in s.reads { last[r] = i }
            last[s.writes] = max(last[s.writes] ?? i, i)
        }
        for (_, t) in network.outputs { last[t] = Int.max }
        let aliased = Set(tensors.values.compactMap { $0.aliasOf })
        var live: Set<String> = []
        for (i, s) in steps.enumerated() {
            let w = s.writes
            if slots.slotOf[w] == nil, w != Self.userInput, userOutputs[w] == nil {
                let size = MD.size(tensors[w]!.md)
                if let a = tensors[w]!.aliasOf, let slot = slots.slotOf[a] {
                    slots.slotOf[w] = slot
                } else if let best = free.filter({ slots.sizes[$0] >= size }).min(by: { slots.sizes[$0] < slots.sizes[$1] }) {
                    free.removeAll { $0 == best }
                    slots.slotOf[w] = best
                } else if let grow = free.max(by: { slots.sizes[$0] < slots.sizes[$1] }) {
                    free.removeAll { $0 == grow }
                    slots.sizes[grow] = size
                    slots.slotOf[w] = grow
                } else {
                    slots.sizes.append(size)
                    slots.slotOf[w] = slots.sizes.count - 1
                }
                live.insert(w)
            }
            for name in live where (last[name] ?? i) <= i {
                live.remove(name)
                if !aliased.contains(name), let slot = slots.slotOf[name] { free.append(slot) }
            }
        }
        return slots
    }
}

/// Post-ops of a primitive: optional residual sum, optional addition of a tensor (`addPerChannel`,
/// passed at execution as `firstPostOp | DNNL_ARG_SRC_1`), then optional activation. For int8:
/// `outputScales` (one, or one per output channel), the sum's scale and the type it reads the
/// residual as (`sumType`, nil: dst's), and the activation's scale (its result times `activationScale`).
struct Attributes {
    let handle: dnnl_primitive_attr_t
    /// `DNNL_ARG_ATTR_MULTIPLE_POST_OP(0)`: a function-like macro Swift does not import.
    static let firstPostOp = Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE)

    /// `depthwise`: a 3x3 depthwise convolution (padding 1, stride 1 or 2) fused after the activation,
    /// with its own activation (oneDNN's depthwise post-op, for 1x1 convolutions; its weights and
    /// bias are the `DNNL_ARG_ATTR_POST_OP_DW` arguments).
    init(residual: Bool, activation: Activation, addPerChannel: dnnl_memory_desc_t? = nil,
         outputScales: [Float]? = nil, sumScale: Float = 1, sumType: dnnl_data_type_t? = nil, activationScale: Float = 1,
         depthwise: (stride: Int, type: dnnl_data_type_t, activation: Activation)? = nil) throws {
        var attr: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attr), "create primitive attributes")
        try check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "set the scratchpad mode")
        if let scales = outputScales {
            try check(dnnl_primitive_attr_set_output_scales(attr, dnnl_dim_t(scales.count), scales.count == 1 ? 0 : 1 << 1, scales),
                      "set output scales")
        }
        if residual || activation != .none || addPerChannel != nil || depthwise != nil {
            var po: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&po), "create post-ops")
            defer { dnnl_post_ops_destroy(po) }
            if residual { try check(dnnl_post_ops_append_sum_v2(po, sumScale, sumType ?? dnnl_data_type_undef), "fuse a residual sum") }
            if var md = addPerChannel { try check(dnnl_post_ops_append_binary(po, dnnl_binary_add, &md), "fuse an addition") }
            if activation != .none {
                let (alg, alpha, beta) = activation.dnnl
                try check(dnnl_post_ops_append_eltwise(po, activationScale, alg, alpha, beta), "fuse an activation")
            }
            if let dw = depthwise {
                var one: Float = 1
                try check(dw.stride == 1 ? dnnl_post_ops_append_dw_k3s1p1(po, dw.type, dnnl_f32, dw.type, 1, 0, &one)
                                         : dnnl_post_ops_append_dw_k3s2p1(po, dw.type, dnnl_f32, dw.type, 1, 0, &one),
                          "fuse a depthwise convolution")
                if dw.activation != .none {
                    let (alg, alpha, beta) = dw.activation.dnnl
                    try check(dnnl_post_ops_append_eltwise(po, 1, alg, alpha, beta), "fuse the depthwise activation")
                }
            }
            try check(dnnl_primitive_attr_set_post_ops(attr, po), "attach post-ops")
        }
        handle = attr!
    }

    func destroy() { dnnl_primitive_attr_destroy(handle) }
}

extension Activation {
    var dnnl: (dnnl_alg_kind_t, Float, Float) {
        switch self {
        case .none: return (dnnl_eltwise_linear, 1, 0)
        case .relu: return (dnnl_eltwise_relu, 0, 0)
        case .relu6: return (dnnl_eltwise_clip_v2, 0, 6)
        case .swish: return (dnnl_eltwise_swish, 1, 0)
        case .sigmoid: return (dnnl_eltwise_logistic, 0, 0)
        }
    }
}
