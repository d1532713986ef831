import FineTuneCore

// The fine-tuning definitions (`BackboneSpec.blockNetwork`) of the experiment backbones, apart from
// their engine networks: FineTuneCore's `Layer`, `Block`, `Padding` and `Activation` would clash
// with BackboneEngine's names in the same file.

extension EfficientNet {
    // MARK: Fine-tuning blocks

    /// The last `lastBlocks` MBConv blocks + head (1x1 320 -> 1280, BN, swish, global average pool) under
    /// the tensor names of `layout`: torchvision and timm with symmetric padding and BN epsilon 1e-5,
    /// Keras with TF SAME padding and epsilon 1e-3 (the same rules as `network`); squeeze-excite to
    /// max(1, block input / 4) with swish. Input 192 x 7 x 7 at 224 for 1...4 blocks.
    static func blockNetwork(layout: String, lastBlocks: Int) throws -> FineTuneNetwork {
        guard (1...cacheableBlocks).contains(lastBlocks) else {
            throw FineTuneError.invalidNetwork("EfficientNet-B0 caches its last 1...\(cacheableBlocks) blocks, not \(lastBlocks)")
        }
        let keras = layout == "keras"
        let eps = keras ? kerasEpsilon : torchvisionEpsilon
        let padding: Padding = keras ? .tfSame : .symmetric
        func names(_ part: Part) -> (conv: String, bn: String) {
            switch layout {
            case "keras": return kerasName(part)
            case "timm": return timmName(part)
            default: let n = torchvisionName(part); return ("\(n).0", "\(n).1")
            }
        }
        /// Squeeze-excite convolutions carry no batch norm: their names as they are.
        func seName(_ part: Part) -> String { layout == "torchvision" ? torchvisionName(part) : names(part).conv }
        var size = (224 + 1) / 2   // after the stride-2 stem (either padding)
        var sizes: [Int] = []
        for b in blocks { sizes.append(size); size = (size + b.stride - 1) / b.stride }
        let first = blocks.count - lastBlocks
        var out: [FineTuneCore.Block] = []
        for i in first..<blocks.count {
            let b = blocks[i]
            var layers: [Layer] = []
            if b.expands {
                let n = names(.expand(i))
                layers += [.pointwise(n.conv, b.input, b.expanded), .batchNorm(n.bn, channels: b.expanded, epsilon: eps),
                           .activation(.swish)]
            }
            let dw = names(.depthwise(i)), project = names(.project(i))
            let reduce = seName(.seReduce(i)), expand = seName(.seExpand(i))
            layers += [.depthwise(dw.conv, channels: b.expanded, kernel: b.kernel, stride: b.stride, padding: padding),
                       .batchNorm(dw.bn, channels: b.expanded, epsilon: eps), .activation(.swish),
                       .squeezeExcite("b\(i).se", channels: b.expanded, reduced: b.squeezed, activation: .swish,
                                      reduceName: reduce, expandName: expand),
                       .pointwise(project.conv, b.expanded, b.output), .batchNorm(project.bn, channels: b.output, epsilon: eps)]
            if b.skip { layers.append(.residualAdd) }
            out.append(FineTuneCore.Block(name: "b\(i)", layers: layers))
        }
        let head = names(.head)
        out.append(FineTuneCore.Block(name: "head", layers: [
            .pointwise(head.conv, stages.last!.output, featureDimension), .batchNorm(head.bn, channels: featureDimension, epsilon: eps),
            .activation(.swish), .globalAveragePool]))
        return FineTuneNetwork(input: FeatureShape(channels: blocks[first].input, height: sizes[first], width: sizes[first]),
                               blocks: out)
    }

}

extension ResNet {
    /// The last `lastBlocks` bottleneck blocks of the last stage (1x1 2048 -> 512, BN, ReLU, 3x3 512 ->
    /// 512, BN, ReLU, 1x1 512 -> 2048, BN, + block input, ReLU) and the global average pool, under the
    /// names of `layout`: torchvision (`layer4.2.conv2`, `layer4.2.bn2`; no biases, BN epsilon 1e-5) or
    /// Keras (`conv5_block3_2_conv`, `conv5_block3_2_bn`; biased convolutions, epsilon 1.001e-5). These
    /// blocks have stride 1 in both variants (v1 and v1.5 differ in a stage's first block only).
    static func blockNetwork(_ depth: Depth, layout: String, lastBlocks: Int) throws -> FineTuneNetwork {
        guard (1...cacheableBlocks).contains(lastBlocks) else {
            throw FineTuneError.invalidNetwork("ResNet\(depth.rawValue) caches its last 1...\(cacheableBlocks) blocks, not \(lastBlocks)")
        }
        let keras = layout == "keras", eps = keras ? kerasEpsilon : torchvisionEpsilon
        let stage = widths.count - 1, width = widths[stage], out = width * expansion, count = depth.blocks[stage]
        var blocks: [Block] = []
        for b in count - lastBlocks ..< count {
            func names(_ i: Int) -> (conv: String, bn: String) {
                let part = Part.conv(stage: stage, block: b, index: i)
                return keras ? kerasName(part) : torchvisionName(part)
            }
            let (c1, c2, c3) = (names(1), names(2), names(3))
            blocks.append(Block(name: "layer4.\(b)", layers: [
                .pointwise(c1.conv, out, width, bias: keras), .batchNorm(c1.bn, channels: width, epsilon: eps), .activation(.relu),
                .conv(c2.conv, width, width, kernel: 3, stride: 1, padding: .symmetric, bias: keras),
                .batchNorm(c2.bn, channels: width, epsilon: eps), .activation(.relu),
                .pointwise(c3.conv, width, out, bias: keras), .batchNorm(c3.bn, channels: out, epsilon: eps),
                .residualAdd, .activation(.relu),
            ]))
        }
        blocks.append(Block(name: "head", layers: [.globalAveragePool]))
        return FineTuneNetwork(input: FeatureShape(channels: out, height: 7, width: 7), blocks: blocks)
    }
}

extension VGG {
    /// The last `lastBlocks` convolutions of block 5 (3x3 512 -> 512 + bias, symmetric padding 1,
    /// ReLU), then block 5's 2x2 max pool and the global average pool that makes `features`; names of
    /// `layout` (torchvision and timm `features.24/26/28`, Keras `block5_conv1...3`). Input 512 x 14 x 14 at 224.
    static func blockNetwork(layout: String, lastBlocks: Int) throws -> FineTuneNetwork {
        guard (1...cacheableBlocks).contains(lastBlocks) else {
            throw FineTuneError.invalidNetwork("VGG16 caches its last 1...\(cacheableBlocks) convolutions, not \(lastBlocks)")
        }
        var blocks: [Block] = []
        for i in convolutions.count - lastBlocks ..< convolutions.count {
            let name = layout == "keras" ? kerasName(i) : "features.\(torchvisionIndex[i])"
            blocks.append(Block(name: name, layers: [.conv(name, 512, 512, kernel: 3, stride: 1, padding: .symmetric, bias: true),
                                                      .activation(.relu)]))
        }
        blocks.append(Block(name: "head", layers: [.maxPool(kernel: 2, stride: 2), .globalAveragePool]))
        return FineTuneNetwork(input: FeatureShape(channels: 512, height: 14, width: 14), blocks: blocks)
    }
}
