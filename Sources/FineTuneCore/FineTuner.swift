import CHeadKernels
import COpenBLAS
import Foundation

/// Softmax classifier trained on the fine-tuned features: dense (in -> classes), or dense (in ->
/// hidden) + ReLU + dense (hidden -> classes); mean softmax cross-entropy. Tensors `head.hidden.weight`
/// [hidden, in], `head.hidden.bias`, `head.out.weight` [classes, hidden or in], `head.out.bias`
/// (PyTorch `nn.Linear` layout).
public struct SoftmaxHead: Codable, Equatable, Sendable {
    public var inFeatures: Int
    public var hidden: Int?
    public var classes: Int
    public init(inFeatures: Int, hidden: Int? = nil, classes: Int) {
        self.inFeatures = inFeatures; self.hidden = hidden; self.classes = classes
    }

    public func requiredTensors() -> [TensorSpec] {
        var t: [TensorSpec] = []
        var width = inFeatures
        if let hidden {
            t += [TensorSpec(name: "head.hidden.weight", shape: [hidden, inFeatures], trainable: true),
                  TensorSpec(name: "head.hidden.bias", shape: [hidden], trainable: true)]
            width = hidden
        }
        return t + [TensorSpec(name: "head.out.weight", shape: [classes, width], trainable: true),
                    TensorSpec(name: "head.out.bias", shape: [classes], trainable: true)]
    }
}

/// Adam (PyTorch's `torch.optim.Adam`, no weight decay) with one learning rate for the backbone
/// blocks and one for the head (fine-tuning practice: blocks 10x lower, as fastai's discriminative
/// learning rates and Keras's fine-tuning guide).
public struct FineTuneOptions: Sendable {
    public var learningRate: Float = 1e-3
    public var blockLearningRate: Float = 1e-4
    public var beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    public var batchNorm: BatchNormMode = .frozen
    /// Momentum of the running statistics in `BatchNormMode.train` (PyTorch's default).
    public var batchNormMomentum: Float = 0.1
    /// Parts the loops around the GEMMs are split into, and OpenBLAS's threads (set process-wide with
    /// openblas_set_num_threads on each step); oneDNN's GEMM threads follow OMP_NUM_THREADS.
    public var threads: Int = 2
    public var gemm: GemmLibrary = .oneDNN
    public init() {}
}

/// Forward, backward and Adam for the last blocks of a backbone plus a softmax head, on cached block
/// inputs (NCHW float32, as the store keeps them).
///
/// Layout: activations are NHWC inside ([batch * H * W, C] row-major), so every 1x1 convolution is one
/// sgemm on (B*H*W) x Cin x Cout (forward Y = X W^T, backward dW = dY^T X, dX = dY W), and depthwise,
/// batch norm, ReLU/ReLU6 and Adam are loops over the contiguous channel axis in C kernels compiled
/// per instruction set (CHeadKernels' finetune_body.h), split over `threads` (the GEMMs carry 97.9 of
/// the 98.9 MFLOP per image forward of Lite0's last block + head conv; the depthwise 3x3 1.0). A batch
/// norm runs with the ReLU/ReLU6 after it, and with the global average pool after that (`Fusion`):
/// these loops are bound by memory traffic, not arithmetic.
///
/// Full k x k convolutions (ResNet's 3x3, VGG's) are im2col + the same GEMMs (`ConvolutionGeometry`,
/// which says why not oneDNN's convolution primitives); max pool routes the gradient to each window's
/// first maximum, as PyTorch.
///
/// GEMM library: oneDNN's `dnnl_sgemm` by default, OpenBLAS selectable (`FineTuneOptions.gemm`).
/// `tools/bench/finetune_gemm.sh` (this step's GEMMs, 188 GFLOP) measured CPU time OpenBLAS 1.74,
/// 1.86, 1.89, 1.82, 1.64 s against oneDNN 1.70, 1.41, 1.27, 1.64, 1.66 s on the shared 2-core
/// machine (OPENBLAS_CORETYPE=Haswell there). oneDNN's convolution training primitives were not
/// tried: with the GEMMs already in oneDNN they would mainly fuse batch norm and ReLU6.
public final class FineTuner {
    public let network: FineTuneNetwork
    /// nil: the blocks only (`trainingFeatures` / `backward(featureGradient:)` with a head trained
    /// elsewhere, as `train-head --unfreeze` does with its own head).
    public let head: SoftmaxHead?
    public var options: FineTuneOptions

    // Parameters, flat: values, gradients, Adam moments; `isHead` picks the learning rate.
    let specs: [TensorSpec]
    let values: [Buffer]
    let grads: [Buffer]
    let m: [Buffer], v: [Buffer]
    let isHead: [Bool]
    var adamSteps = 0
    let index: [String: Int]

    /// A compiled layer with the geometry of its input (height, width, channels).
    struct Step {
        let layer: Layer
        let h: Int, w: Int, c: Int
        let outH: Int, outW: Int, outC: Int
        var tensors: [Int]          // indices into values, in Layer.tensorSpecs() order
        let blockInput: Int         // index of the activation that is the enclosing block's input
        var depthwise: DepthwiseGeometry?
        var convolution: ConvolutionGeometry?
        var maxPool: MaxPoolGeometry?
        var inPixels: Int { h * w }
        var outPixels: Int { outH * outW }
    }
    let steps: [Step]
    /// Steps run together with the batch norm step before them, in one pass over the activations each
    /// way (their outputs are never written; backward recomputes the activation's input from x).
    enum Fusion { case none, activation, activationPool }
    /// fusion[k] for a batch norm step k: `.activation`, the ReLU/ReLU6 step k + 1 runs with it;
    /// `.activationPool`, the global average pool k + 2 as well (the last block's end). Never when a
    /// residual reads one of the skipped outputs.
    let fusion: [Fusion]
    /// Steps a fusion at k covers.
    func fusedSteps(_ k: Int) -> Int { fusion[k] == .activationPool ? 3 : fusion[k] == .activation ? 2 : 1 }
    /// The last step of each fusion -> its batch norm step (where backward starts the fused pass).
    let fusionEnds: [Int: Int]

    // Per-batch buffers (reallocated when the batch grows).
    var capacity = 0
    var acts: [Buffer] = []      // acts[k] = input of step k (NHWC); acts[steps.count] = features
    var dActs: [Buffer] = []     // gradients of the same
    // Saved by batch norm in train mode (mean, 1/std per channel), squeeze-excite (pooled, reduced
    // pre-activation, reduced, gate), head (hidden pre-activation, probabilities).
    var saved: [Int: [Buffer]] = [:]
    var depthwiseWeights: [Int: Buffer] = [:]   // [k*k, C] transposes of the weights and their gradients
    var depthwiseGrads: [Int: Buffer] = [:]
    // Full convolutions: weights reordered to [Cout, k*k*Cin], their gradient, the patch matrix of a chunk.
    var convWeights: [Int: Buffer] = [:], convGrads: [Int: Buffer] = [:], convColumns: [Int: Buffer] = [:]
    var headBuffers: [Buffer] = []

    public init(network: FineTuneNetwork, head: SoftmaxHead?, tensors: [String: [Float]],
                options: FineTuneOptions = FineTuneOptions()) throws {
        self.network = network; self.head = head; self.options = options
        if let head, head.inFeatures != network.outputChannels {
            throw FineTuneError.invalidNetwork("the head takes \(head.inFeatures) features, the blocks give \(network.outputChannels)")
        }
        let blockSpecs = network.requiredTensors()
        specs = blockSpecs + (head?.requiredTensors() ?? [])
        isHead = specs.indices.map { $0 >= blockSpecs.count }
        var vals: [Buffer] = []
        for s in specs {
            guard let t = tensors[s.name] else { throw FineTuneError.missingTensor(name: s.name, shape: s.shape) }
            guard t.count == s.count else { throw FineTuneError.wrongTensorSize(name: s.name, expected: s.count, got: t.count) }
            vals.append(Buffer(t))
        }
        values = vals
        grads = specs.map { Buffer($0.count) }
        m = specs.map { Buffer($0.trainable ? $0.count : 0) }
        v = specs.map { Buffer($0.trainable ? $0.count : 0) }
        var idx: [String: Int] = [:]
        for (i, s) in specs.enumerated() { idx[s.name] = i }
        index = idx
        steps = try Self.compile(network, index: idx, pooled: head != nil)
        let compiled = steps
        let fused: [Fusion] = compiled.indices.map { k in
            guard compiled[k].layer.op == .batchNorm, k + 1 < compiled.count, compiled[k + 1].layer.op == .activation,
                  compiled[k + 1].layer.activation!.kernelCode != nil, !compiled.contains(where: { $0.blockInput == k + 1 }) else { return .none }
            return k + 2 < compiled.count && compiled[k + 2].layer.op == .globalAveragePool
                && !compiled.contains(where: { $0.blockInput == k + 2 }) ? .activationPool : .activation
        }
        fusion = fused
        fusionEnds = Dictionary(uniqueKeysWithValues: fused.indices.filter { fused[$0] != .none }
            .map { ($0 + (fused[$0] == .activationPool ? 2 : 1), $0) })
    }

    /// `pooled`: the network must end in a global average pool (it feeds a head).
    static func compile(_ network: FineTuneNetwork, index: [String: Int], pooled: Bool = true) throws -> [Step] {
        var steps: [Step] = []
        var h = network.input.height, w = network.input.width, c = network.input.channels
        for block in network.blocks {
            let blockInput = steps.count
            let blockC = c, blockH = h, blockW = w
            for l in block.layers {
                var outH = h, outW = w, outC = c
                var dw: DepthwiseGeometry?, conv: ConvolutionGeometry?, maxPool: MaxPoolGeometry?
                if let i = l.inChannels, i != c {
                    throw FineTuneError.invalidNetwork("\(l.name) takes \(i) channels, gets \(c)")
                }
                switch l.op {
                case .pointwise: outC = l.outChannels!
                case .depthwise, .conv:
                    guard let k = l.kernel, let s = l.stride, let p = l.padding, k >= 1, s >= 1, let o = l.outChannels else {
                        throw FineTuneError.invalidNetwork("\(l.name): \(l.op.rawValue) needs kernel, stride, padding and output channels")
                    }
                    let g = DepthwiseGeometry(channels: c, kernel: k, stride: s, padding: p, inH: h, inW: w)
                    guard g.outH >= 1, g.outW >= 1 else { throw FineTuneError.invalidNetwork("\(l.name): \(k)x\(k) kernel on \(h)x\(w)") }
                    if l.op == .conv { conv = ConvolutionGeometry(window: g, outChannels: o); outC = o } else { dw = g }
                    outH = g.outH; outW = g.outW
                case .maxPool:
                    guard let k = l.kernel, let s = l.stride, k >= 1, s >= 1, h >= k, w >= k else {
                        throw FineTuneError.invalidNetwork("\(l.name): max pool needs kernel <= \(h)x\(w) and stride")
                    }
                    let g = MaxPoolGeometry(channels: c, kernel: k, stride: s, inH: h, inW: w)
                    maxPool = g; outH = g.outH; outW = g.outW
                case .globalAveragePool: outH = 1; outW = 1
                case .residualAdd:
                    guard blockC == c, blockH == h, blockW == w else {
                        throw FineTuneError.invalidNetwork("\(block.name): residual add of \(blockC)x\(blockH)x\(blockW) to \(c)x\(h)x\(w)")
                    }
                case .batchNorm, .activation, .squeezeExcite: break
                }
                let t = l.tensorSpecs().map { index[$0.name]! }
                steps.append(Step(layer: l, h: h, w: w, c: c, outH: outH, outW: outW, outC: outC, tensors: t,
                                  blockInput: blockInput, depthwise: dw, convolution: conv, maxPool: maxPool))
                h = outH; w = outW; c = outC
            }
        }
        guard !pooled || (h == 1 && w == 1) else {
            throw FineTuneError.invalidNetwork("the last block must end with globalAveragePool (output is \(c)x\(h)x\(w))")
        }
        return steps
    }

    func reserve(batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        acts = []; dActs = []; saved = [:]; depthwiseWeights = [:]; depthwiseGrads = [:]
        convWeights = [:]; convGrads = [:]; convColumns = [:]
        for s in steps {
            acts.append(Buffer(batch * s.inPixels * s.c)); dActs.append(Buffer(batch * s.inPixels * s.c))
        }
        let f = outputShape.count
        acts.append(Buffer(batch * f)); dActs.append(Buffer(batch * f))
        for (k, s) in steps.enumerated() {
            switch s.layer.op {
            case .batchNorm: saved[k] = [Buffer(s.c), Buffer(s.c), Buffer(s.c), Buffer(s.c)]   // mean, 1/std, scale, shift
            case .squeezeExcite:
                let r = s.layer.reduced!
                saved[k] = [Buffer(batch * s.c), Buffer(batch * r), Buffer(batch * r), Buffer(batch * s.c),
                            Buffer(batch * s.c), Buffer(batch * r)]
            case .depthwise:
                depthwiseWeights[k] = Buffer(s.c * s.layer.kernel! * s.layer.kernel!)
                depthwiseGrads[k] = Buffer(s.c * s.layer.kernel! * s.layer.kernel!)
            case .conv:
                let g = s.convolution!
                convWeights[k] = Buffer(g.outChannels * g.columns); convGrads[k] = Buffer(g.outChannels * g.columns)
                convColumns[k] = Buffer(min(g.chunk, batch) * g.outPixels * g.columns)
            default: break
            }
        }
        if let head {
            let width = head.hidden ?? head.inFeatures
            // hidden pre-activation, hidden, logits/probabilities, d hidden
            headBuffers = [Buffer(batch * width), Buffer(batch * width), Buffer(batch * head.classes), Buffer(batch * width)]
        }
    }

    /// Shape of one output: channels x 1 x 1 after a global average pool, else the last feature map.
    public var outputShape: FeatureShape {
        guard let s = steps.last else { return network.input }
        if s.layer.op == .globalAveragePool { return FeatureShape(channels: s.c, height: 1, width: 1) }
        return FeatureShape(channels: s.outC, height: s.outH, width: s.outW)
    }

    // MARK: Forward

    /// Runs the blocks on a batch (NCHW, `batch * input.count` values); returns the features
    /// [batch, outputChannels].
    public func features(_ inputs: [Float], batch: Int) throws -> [Float] {
        try check(inputs, batch: batch)
        var out = [Float](repeating: 0, count: batch * outputShape.count)
        inputs.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { outputs(x.baseAddress!, batch: batch, into: $0.baseAddress!) } }
        return out
    }

    /// Inference (batch norm on running statistics) on `batch` NCHW inputs at `inputs`; writes the
    /// outputs NCHW (`outputShape`; [batch, channels] after a pool) to `out`.
    public func outputs(_ inputs: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Float>) {
        reserve(batch: batch)
        forwardBlocks(inputs, batch: batch, training: false)
        let o = outputShape, hw = o.height * o.width, c = o.channels, y = acts[steps.count].pointer
        if hw == 1 { out.update(from: y, count: batch * c); return }
        for b in 0..<batch {   // NHWC -> NCHW
            for p in 0..<hw { for ch in 0..<c { out[(b * c + ch) * hw + p] = y[(b * hw + p) * c + ch] } }
        }
    }

    /// Training forward (batch norm as `options.batchNorm`) on `batch` NCHW inputs at `inputs`; returns
    /// the pooled features [batch, outputChannels], valid until the next call. Follow with
    /// `backward(featureGradient:batch:)` and `adamStep()`.
    public func trainingFeatures(_ inputs: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        reserve(batch: batch)
        openblas_set_num_threads(Int32(options.threads))
        forwardBlocks(inputs, batch: batch, training: true)
        return UnsafePointer(acts[steps.count].pointer)
    }

    /// Gradients of the block tensors from d loss / d features ([batch, outputChannels]) of the last
    /// `trainingFeatures` call.
    public func backward(featureGradient: UnsafePointer<Float>, batch: Int) {
        dActs[steps.count].pointer.update(from: featureGradient, count: batch * outputShape.count)
        backwardBlocks(batch: batch)
    }

    /// The name of the first layer whose output (from the last forward) holds NaN or infinity, or
    /// "input" when the input does.
    public func firstNonFiniteLayer(batch: Int) -> String? {
        for k in 0...steps.count {
            let n = k == steps.count ? batch * outputShape.count : batch * steps[k].inPixels * steps[k].c
            let a = acts[k].pointer
            for i in 0..<n where !a[i].isFinite { return k == 0 ? "input" : steps[k - 1].layer.name }
        }
        return nil
    }

    func check(_ inputs: [Float], batch: Int) throws {
        guard batch > 0, inputs.count == batch * network.input.count else {
            throw FineTuneError.badInput("\(inputs.count) input values for a batch of \(batch) x \(network.input.count)")
        }
        reserve(batch: batch)
    }

    func forwardBlocks(_ inputs: UnsafePointer<Float>, batch: Int, training: Bool) {
        // NCHW -> NHWC.
        let c = network.input.channels, hw = network.input.height * network.input.width
        let dst = acts[0].pointer
        for b in 0..<batch {
            for ch in 0..<c {
                let s = inputs + (b * c + ch) * hw, d = dst + b * hw * c + ch
                for p in 0..<hw { d[p * c] = s[p] }
            }
        }
        var k = 0
        while k < steps.count {
            forward(k, batch: batch, training: training)
            k += fusedSteps(k)
        }
    }

    func forward(_ k: Int, batch: Int, training: Bool) {
        let s = steps[k], x = acts[k].pointer, y = acts[k + 1].pointer
        let rows = batch * s.inPixels, n = rows * s.c
        switch s.layer.op {
        case .pointwise:
            gemm(options.gemm, false, true, rows, s.outC, s.c, x, s.c, values[s.tensors[0]].pointer, s.c, y, s.outC)
            if s.tensors.count > 1 {
                let bias = values[s.tensors[1]].pointer
                for r in 0..<rows { let row = y + r * s.outC; for o in 0..<s.outC { row[o] += bias[o] } }
            }
        case .depthwise:
            let g = s.depthwise!, kk = g.kernel * g.kernel, wt = depthwiseWeights[k]!.pointer, w = values[s.tensors[0]].pointer
            for ch in 0..<s.c { for t in 0..<kk { wt[t * s.c + ch] = w[ch * kk + t] } }
            let inSize = s.inPixels * s.c, outSize = s.outPixels * s.c
            let window = g.window
            parallel(batch, parts: options.threads) { r in
                var window = window
                chk_ft_depthwise(&window, x + r.lowerBound * inSize, wt, y + r.lowerBound * outSize, r.count)
            }
        case .batchNorm:
            let c = s.c, gamma = values[s.tensors[0]].pointer, beta = values[s.tensors[1]].pointer
            let mean = saved[k]![0].pointer, invstd = saved[k]![1].pointer
            let eps = s.layer.epsilon ?? 1e-5
            if training && options.batchNorm == .train {
                columnSums(x, rows: rows, cols: c, into: mean)
                for ch in 0..<c { mean[ch] /= Float(rows) }
                invstd.update(repeating: 0, count: c)   // variance accumulator
                for r in 0..<rows {
                    let row = x + r * c
                    for ch in 0..<c { let d = row[ch] - mean[ch]; invstd[ch] += d * d }
                }
                let rm = values[s.tensors[2]].pointer, rv = values[s.tensors[3]].pointer, mom = options.batchNormMomentum
                for ch in 0..<c {
                    let variance = invstd[ch] / Float(rows)
                    rm[ch] = (1 - mom) * rm[ch] + mom * mean[ch]
                    rv[ch] = (1 - mom) * rv[ch] + mom * variance * Float(rows) / Float(max(rows - 1, 1))
                    invstd[ch] = 1 / (variance + eps).squareRoot()
                }
            } else {
                let rm = values[s.tensors[2]].pointer, rv = values[s.tensors[3]].pointer
                for ch in 0..<c { mean[ch] = rm[ch]; invstd[ch] = 1 / (rv[ch] + eps).squareRoot() }
            }
            // Kept for backward: the fused activation's mask is recomputed from x with the same scale and shift.
            let scale = saved[k]![2].pointer, shift = saved[k]![3].pointer
            for ch in 0..<c { scale[ch] = gamma[ch] * invstd[ch]; shift[ch] = beta[ch] - mean[ch] * scale[ch] }
            // Fused: the activation's output (acts[k + 2]) or the pooled features (acts[k + 3]) are
            // written, not what comes before them.
            let act = fusion[k] == .none ? Int32(CHK_FT_NONE) : steps[k + 1].layer.activation!.kernelCode!
            if fusion[k] == .activationPool {
                let pooled = acts[k + 3].pointer, hw = s.inPixels
                parallel(batch, parts: options.threads) { range in
                    chk_ft_affine_pool(range.count, hw, c, x + range.lowerBound * hw * c, scale, shift, act, pooled + range.lowerBound * c)
                }
            } else {
                let out = fusion[k] == .activation ? acts[k + 2].pointer : y
                parallel(rows, parts: options.threads) { range in
                    chk_ft_affine(range.count, c, x + range.lowerBound * c, scale, shift, act, nil, out + range.lowerBound * c)
                }
            }
        case .activation:
            let a = s.layer.activation!
            parallel(n, parts: options.threads) { r in
                if let code = a.kernelCode { chk_ft_act(r.count, Int32(code), x + r.lowerBound, y + r.lowerBound) }
                else { a.forward(x + r.lowerBound, y + r.lowerBound, count: r.count) }
            }
        case .squeezeExcite:
            let c = s.c, r = s.layer.reduced!, hw = s.inPixels, sv = saved[k]!
            let pooled = sv[0].pointer, pre = sv[1].pointer, red = sv[2].pointer, gate = sv[3].pointer
            pool(x, pooled, batch: batch, pixels: hw, channels: c)
            gemm(options.gemm, false, true, batch, r, c, pooled, c, values[s.tensors[0]].pointer, c, pre, r)
            addBias(pre, values[s.tensors[1]].pointer, rows: batch, cols: r)
            s.layer.activation!.forward(pre, red, count: batch * r)
            gemm(options.gemm, false, true, batch, c, r, red, r, values[s.tensors[2]].pointer, r, sv[4].pointer, c)
            addBias(sv[4].pointer, values[s.tensors[3]].pointer, rows: batch, cols: c)
            Activation.sigmoid.forward(sv[4].pointer, gate, count: batch * c)
            for b in 0..<batch {
                let g = gate + b * c
                for p in 0..<hw { let xi = x + (b * hw + p) * c, yo = y + (b * hw + p) * c; for ch in 0..<c { yo[ch] = xi[ch] * g[ch] } }
            }
        case .residualAdd:
            let skip = acts[s.blockInput].pointer
            for i in 0..<n { y[i] = x[i] + skip[i] }
        case .globalAveragePool:
            pool(x, y, batch: batch, pixels: s.inPixels, channels: s.c)
        case .conv:
            let g = s.convolution!, wt = convWeights[k]!.pointer, cols = convColumns[k]!.pointer
            g.reorder(values[s.tensors[0]].pointer, into: wt)
            let inSize = s.inPixels * s.c, outSize = s.outPixels * s.outC
            for b0 in stride(from: 0, to: batch, by: g.chunk) {
                let nb = min(g.chunk, batch - b0), m = nb * g.outPixels
                g.im2col(x + b0 * inSize, cols, batch: nb, threads: options.threads)
                gemm(options.gemm, false, true, m, s.outC, g.columns, cols, g.columns, wt, g.columns, y + b0 * outSize, s.outC)
            }
            if s.tensors.count > 1 { addBias(y, values[s.tensors[1]].pointer, rows: batch * s.outPixels, cols: s.outC) }
        case .maxPool:
            let g = s.maxPool!, inSize = s.inPixels * s.c, outSize = s.outPixels * s.c
            parallel(batch, parts: options.threads) { r in for b in r {
                let xb = x + b * inSize, yb = y + b * outSize
                g.forEachMaximum(xb) { o, i in yb[o] = xb[i] }
            } }
        }
    }

    func pool(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, pixels: Int, channels c: Int) {
        for b in 0..<batch {
            columnSums(x + b * pixels * c, rows: pixels, cols: c, into: y + b * c)
            for ch in 0..<c { y[b * c + ch] /= Float(pixels) }
        }
    }

    func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows { let row = y + r * cols; for o in 0..<cols { row[o] += bias[o] } }
    }

    // MARK: Backward

    /// dActs[k] from dActs[k + 1]; parameter gradients of step k (overwritten).
    func backward(_ k: Int, batch: Int, needInput: Bool, training: Bool) {
        let s = steps[k], x = acts[k].pointer, dy = dActs[k + 1].pointer, dx = dActs[k].pointer
        let rows = batch * s.inPixels, n = rows * s.c
        switch s.layer.op {
        case .pointwise:
            let w = values[s.tensors[0]].pointer
            gemm(options.gemm, true, false, s.outC, s.c, rows, dy, s.outC, x, s.c, grads[s.tensors[0]].pointer, s.c)
            if s.tensors.count > 1 { columnSums(dy, rows: rows, cols: s.outC, into: grads[s.tensors[1]].pointer) }
            if needInput { gemm(options.gemm, false, false, rows, s.c, s.outC, dy, s.outC, w, s.c, dx, s.c) }
        case .depthwise:
            let g = s.depthwise!, kk = g.kernel * g.kernel
            let dwt = depthwiseGrads[k]!
            // Samples split between threads; each part's weight gradient in its own buffer, then summed.
            let parts = max(1, min(options.threads, batch)), inSize = s.inPixels * s.c, outSize = s.outPixels * s.c
            var extra = [Float](repeating: 0, count: (parts - 1) * kk * s.c)
            extra.withUnsafeMutableBufferPointer { extra in
                parallel(parts, parts: parts) { ps in for part in ps {
                    let b0 = batch * part / parts, b1 = batch * (part + 1) / parts
                    var window = g.window
                    chk_ft_depthwise_backward(&window, x + b0 * inSize, depthwiseWeights[k]!.pointer, dy + b0 * outSize,
                                              part == 0 ? dwt.pointer : extra.baseAddress! + (part - 1) * kk * s.c,
                                              needInput ? dx + b0 * inSize : nil, b1 - b0)
                } }
                for i in 0..<extra.count { dwt.pointer[i % (kk * s.c)] += extra[i] }
            }
            let dw = grads[s.tensors[0]].pointer
            for ch in 0..<s.c { for t in 0..<kk { dw[ch * kk + t] = dwt.pointer[t * s.c + ch] } }
        case .batchNorm:
            batchNormBackward(k, batch: batch, dy: dy, activation: nil, needInput: needInput, training: training)
        case .activation:
            if needInput {
                let a = s.layer.activation!
                parallel(n, parts: options.threads) { r in
                    if let code = a.kernelCode { chk_ft_act_backward(r.count, Int32(code), x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound) }
                    else { a.backward(x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound, count: r.count) }
                }
            }
        case .squeezeExcite:
            let c = s.c, r = s.layer.reduced!, hw = s.inPixels, sv = saved[k]!
            let pooled = sv[0].pointer, pre = sv[1].pointer, red = sv[2].pointer, gate = sv[3].pointer
            let dz = sv[4].pointer, dred = sv[5].pointer   // sv[4] (expand pre-activation) is reused
            // d gate[b, c] = sum_p dy x; dz = d gate * gate (1 - gate)
            for b in 0..<batch {
                let d = dz + b * c
                d.update(repeating: 0, count: c)
                for p in 0..<hw { let xi = x + (b * hw + p) * c, g = dy + (b * hw + p) * c; for ch in 0..<c { d[ch] += g[ch] * xi[ch] } }
                let gt = gate + b * c
                for ch in 0..<c { d[ch] *= gt[ch] * (1 - gt[ch]) }
            }
            gemm(options.gemm, true, false, c, r, batch, dz, c, red, r, grads[s.tensors[2]].pointer, r)
            columnSums(dz, rows: batch, cols: c, into: grads[s.tensors[3]].pointer)
            gemm(options.gemm, false, false, batch, r, c, dz, c, values[s.tensors[2]].pointer, r, dred, r)
            s.layer.activation!.backward(pre, dred, dred, count: batch * r)
            gemm(options.gemm, true, false, r, c, batch, dred, r, pooled, c, grads[s.tensors[0]].pointer, c)
            columnSums(dred, rows: batch, cols: r, into: grads[s.tensors[1]].pointer)
            guard needInput else { break }
            // d pooled -> dz (reused), then dx = dy * gate + d pooled / hw
            gemm(options.gemm, false, false, batch, c, r, dred, r, values[s.tensors[0]].pointer, c, dz, c)
            for b in 0..<batch {
                let gt = gate + b * c, dp = dz + b * c, inv = 1 / Float(hw)
                for p in 0..<hw {
                    let g = dy + (b * hw + p) * c, d = dx + (b * hw + p) * c
                    for ch in 0..<c { d[ch] = g[ch] * gt[ch] + dp[ch] * inv }
                }
            }
        case .residualAdd:
            // The block input's gradient gets dy twice: here and through the block's layers.
            dx.update(from: dy, count: n)
        case .globalAveragePool:
            let c = s.c, hw = s.inPixels, inv = 1 / Float(hw)
            for b in 0..<batch {
                let g = dy + b * c
                for p in 0..<hw { let d = dx + (b * hw + p) * c; for ch in 0..<c { d[ch] = g[ch] * inv } }
            }
        case .conv:
            let g = s.convolution!, wt = convWeights[k]!.pointer, dwt = convGrads[k]!.pointer, cols = convColumns[k]!.pointer
            let inSize = s.inPixels * s.c, outSize = s.outPixels * s.outC
            for b0 in stride(from: 0, to: batch, by: g.chunk) {
                let nb = min(g.chunk, batch - b0), m = nb * g.outPixels, dyb = dy + b0 * outSize
                g.im2col(x + b0 * inSize, cols, batch: nb, threads: options.threads)
                gemm(options.gemm, true, false, s.outC, g.columns, m, dyb, s.outC, cols, g.columns, dwt, g.columns,
                     beta: b0 == 0 ? 0 : 1)
                guard needInput else { continue }
                // The patches are used; their buffer takes the patch gradients.
                gemm(options.gemm, false, false, m, g.columns, s.outC, dyb, s.outC, wt, g.columns, cols, g.columns)
                g.col2im(cols, dx + b0 * inSize, batch: nb, threads: options.threads)
            }
            g.restore(dwt, into: grads[s.tensors[0]].pointer)
            if s.tensors.count > 1 { columnSums(dy, rows: batch * s.outPixels, cols: s.outC, into: grads[s.tensors[1]].pointer) }
        case .maxPool:
            guard needInput else { break }
            let g = s.maxPool!, inSize = s.inPixels * s.c, outSize = s.outPixels * s.c
            parallel(batch, parts: options.threads) { r in for b in r {
                let xb = x + b * inSize, dxb = dx + b * inSize, dyb = dy + b * outSize
                dxb.update(repeating: 0, count: inSize)
                g.forEachMaximum(xb) { o, i in dxb[i] += dyb[o] }
            } }
        }
    }

    /// Batch norm step k backward. With `activation` (the fused ReLU/ReLU6 step k + 1), `dy` is the
    /// gradient of the activation's output, and its mask comes from the activation's input recomputed
    /// from x with the scale and shift the forward pass kept (so the same bits as it computed).
    /// With `pooled`, `dy` is the gradient of the global average pool's output ([batch, C]), spread
    /// over each sample's pixels (times 1 / pixels, as the pool's backward).
    func batchNormBackward(_ k: Int, batch: Int, dy: UnsafePointer<Float>, activation: Int32?, pooled: Bool = false,
                           needInput: Bool, training: Bool) {
        let s = steps[k], x = acts[k].pointer, dx = dActs[k].pointer, rows = batch * s.inPixels
        let c = s.c
        let mean = saved[k]![0].pointer, invstd = saved[k]![1].pointer, scale = saved[k]![2].pointer, shift = saved[k]![3].pointer
        let dgamma = grads[s.tensors[0]].pointer, dbeta = grads[s.tensors[1]].pointer
        let train = training && options.batchNorm == .train
        // Train mode keeps g (dy through the activation) for the second pass, in the activation's
        // input gradient; frozen mode writes dx = g gamma invstd in the same pass.
        let g: UnsafePointer<Float> = activation == nil ? dy : UnsafePointer(dActs[k + 1].pointer)
        let hw = pooled ? s.inPixels : 1
        // dbeta = sum g, dgamma = sum g xhat = invstd (sum g x - mean sum g), per part then summed.
        let parts = max(1, min(options.threads, rows))
        var partial = [Float](repeating: 0, count: parts * 2 * c)   // per part: sum g, sum g x
        partial.withUnsafeMutableBufferPointer { sums in
            let sums = sums.baseAddress!
            parallel(parts, parts: parts) { ps in for part in ps {
                let r0 = rows * part / parts, n = rows * (part + 1) / parts - r0, o = r0 * c
                chk_ft_bn_backward(n, c, hw, r0, dy, activation ?? Int32(CHK_FT_NONE), x + o, scale, shift,
                                   sums + part * 2 * c, sums + part * 2 * c + c,
                                   activation != nil && train && needInput ? dActs[k + 1].pointer + o : nil,
                                   !train && needInput ? dx + o : nil)
            } }
            dbeta.update(from: sums, count: c); dgamma.update(from: sums + c, count: c)
            for part in 1..<parts {
                for ch in 0..<c { dbeta[ch] += sums[part * 2 * c + ch]; dgamma[ch] += sums[part * 2 * c + c + ch] }
            }
        }
        for ch in 0..<c { dgamma[ch] = invstd[ch] * (dgamma[ch] - mean[ch] * dbeta[ch]) }
        guard needInput, train else { return }
        // dx = gamma invstd / N (N g - sum g - xhat sum(g xhat)) = scale g - (b - mean cc) - x cc
        var b = [Float](repeating: 0, count: c), cc = b
        let nr = Float(rows)
        for ch in 0..<c {
            b[ch] = scale[ch] * dbeta[ch] / nr
            cc[ch] = scale[ch] * dgamma[ch] * invstd[ch] / nr
            b[ch] -= mean[ch] * cc[ch]
        }
        parallel(rows, parts: options.threads) { range in
            let o = range.lowerBound * c
            chk_ft_bn_train_dx(range.count, c, g + o, x + o, scale, b, cc, dx + o)
        }
    }

    // MARK: Head

    /// Loss of the head on acts[last]; fills head gradients and dActs[last].
    func headLossAndBackward(_ head: SoftmaxHead, labels: [Int32], batch: Int) -> Float {
        let f = head.inFeatures, cls = head.classes, feats = acts[steps.count].pointer
        let specsStart = specs.count - head.requiredTensors().count
        var input = feats, width = f
        if let hid = head.hidden {
            let pre = headBuffers[0].pointer, hidden = headBuffers[1].pointer
            gemm(options.gemm, false, true, batch, hid, f, feats, f, values[specsStart].pointer, f, pre, hid)
            addBias(pre, values[specsStart + 1].pointer, rows: batch, cols: hid)
            Activation.relu.forward(pre, hidden, count: batch * hid)
            input = hidden; width = hid
        }
        let outW = specsStart + (head.hidden == nil ? 0 : 2)
        let probs = headBuffers[2].pointer
        gemm(options.gemm, false, true, batch, cls, width, input, width, values[outW].pointer, width, probs, cls)
        addBias(probs, values[outW + 1].pointer, rows: batch, cols: cls)
        var loss: Double = 0
        for b in 0..<batch {
            let z = probs + b * cls
            var mx = -Float.infinity
            for j in 0..<cls { mx = max(mx, z[j]) }
            var sum: Float = 0
            for j in 0..<cls { z[j] = expf(z[j] - mx); sum += z[j] }
            let label = Int(labels[b])
            loss -= Double(logf(z[label] / sum))
            // d logits = (softmax - onehot) / batch
            for j in 0..<cls { z[j] = z[j] / sum / Float(batch) }
            z[label] -= 1 / Float(batch)
        }
        gemm(options.gemm, true, false, cls, width, batch, probs, cls, input, width, grads[outW].pointer, width)
        columnSums(probs, rows: batch, cols: cls, into: grads[outW + 1].pointer)
        let dFeats = dActs[steps.count].pointer
        if let hid = head.hidden {
            let dh = headBuffers[3].pointer
            gemm(options.gemm, false, false, batch, hid, cls, probs, cls, values[outW].pointer, width, dh, hid)
            Activation.relu.backward(headBuffers[0].pointer, dh, dh, count: batch * hid)
            gemm(options.gemm, true, false, hid, f, batch, dh, hid, feats, f, grads[specsStart].pointer, f)
            columnSums(dh, rows: batch, cols: hid, into: grads[specsStart + 1].pointer)
            gemm(options.gemm, false, false, batch, f, hid, dh, hid, values[specsStart].pointer, f, dFeats, f)
        } else {
            gemm(options.gemm, false, false, batch, f, cls, probs, cls, values[outW].pointer, width, dFeats, f)
        }
        return Float(loss / Double(batch))
    }

    // MARK: Training

    /// Forward, loss, backward: fills the gradients of every trainable tensor (readable with
    /// `gradients()`). Labels are 0..<classes. Batch norm in `.train` mode updates the running
    /// statistics (as a PyTorch forward in train()).
    @discardableResult
    public func computeGradients(inputs: [Float], labels: [Int32], batch: Int) throws -> Float {
        try check(inputs, batch: batch)
        guard let head else { throw FineTuneError.badInput("computeGradients needs a head; this FineTuner has the blocks only") }
        guard labels.count == batch, labels.allSatisfy({ $0 >= 0 && Int($0) < head.classes }) else {
            throw FineTuneError.badInput("labels must be \(batch) values in 0..<\(head.classes)")
        }
        openblas_set_num_threads(Int32(options.threads))
        inputs.withUnsafeBufferPointer { forwardBlocks($0.baseAddress!, batch: batch, training: true) }
        let loss = headLossAndBackward(head, labels: labels, batch: batch)
        backwardBlocks(batch: batch)
        return loss
    }

    /// Backward through the blocks from dActs[last]; a block's input collects the residual's gradient too.
    func backwardBlocks(batch: Int) {
        var pendingSkip: [Int: Buffer] = [:]
        var k = steps.count - 1
        while k >= 0 {
            defer { k -= 1 }
            if let bn = fusionEnds[k] {
                // The activation (and pool) up to k run inside their batch norm's backward; none of them is a
                // block input or holds a skip.
                batchNormBackward(bn, batch: batch, dy: dActs[k + 1].pointer, activation: steps[bn + 1].layer.activation!.kernelCode!,
                                  pooled: fusion[bn] == .activationPool, needInput: bn > 0, training: true)
                k = bn
            } else {
                backward(k, batch: batch, needInput: k > 0, training: true)
            }
            if steps[k].layer.op == .residualAdd && steps[k].blockInput > 0 {
                let n = batch * steps[k].inPixels * steps[k].c, copy = Buffer(n)
                copy.pointer.update(from: dActs[k + 1].pointer, count: n)
                pendingSkip[steps[k].blockInput] = copy
            }
            if let skip = pendingSkip.removeValue(forKey: k) {
                let d = dActs[k].pointer
                for i in 0..<skip.count { d[i] += skip.pointer[i] }
            }
        }
    }

    /// One Adam step over all trainable tensors with the gradients of the last `computeGradients`.
    public func adamStep() {
        adamSteps += 1
        let b1 = options.beta1, b2 = options.beta2, eps = options.epsilon
        let c1 = 1 - powf(b1, Float(adamSteps)), c2 = 1 - powf(b2, Float(adamSteps))
        for i in specs.indices where specs[i].trainable {
            let lr = isHead[i] ? options.learningRate : options.blockLearningRate
            let p = values[i].pointer, g = grads[i].pointer, mi = m[i].pointer, vi = v[i].pointer
            chk_ft_adam(p, g, mi, vi, specs[i].count, b1, b2, lr / c1, c2.squareRoot(), eps)
        }
    }

    /// `computeGradients` then `adamStep`; returns the batch loss (before the step).
    @discardableResult
    public func trainStep(inputs: [Float], labels: [Int32], batch: Int) throws -> Float {
        let loss = try computeGradients(inputs: inputs, labels: labels, batch: batch)
        adamStep()
        return loss
    }

    /// Gradients of the trainable tensors from the last `computeGradients`, by tensor name.
    public func gradients() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (i, s) in specs.enumerated() where s.trainable { out[s.name] = grads[i].array }
        return out
    }

    /// Current tensors (trained weights and, in `.train` batch-norm mode, updated running statistics).
    public func tensors() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (i, s) in specs.enumerated() { out[s.name] = values[i].array }
        return out
    }
}
