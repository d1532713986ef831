#!/usr/bin/env python3
"""Golden loss, gradients and Adam steps for Sources/FineTuneCore (issue #12), computed by PyTorch in float64.

Builds each configuration's blocks + softmax head from the same architecture JSON that Swift's
`FineTuneNetwork` decodes, with the deterministic tensors of `Synthetic` (Sources/FineTuneCore/Architecture.swift:
tensor t, entry i: u uniform in [-1, 1) from splitmix64 of (t, i), rounded to float32), and writes
Tests/FineTuneTests/Fixtures/finetune_goldens.json.

    python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy
    /work/venv/bin/python tools/goldens/finetune.py

'tiny' configurations: full gradients ('tiny2' also the tensors after 3 Adam steps); 'convtiny': full k x k
convolutions (TF SAME stride 2, symmetric stride 1 and 2, biases) and a max pool, full gradients. The real
definitions ('lite0'; 'b0', 'resnet50', 'resnet50keras', 'vgg16': the last blocks of the experiment backbones as
Sources/Backbones/BlockNetworks.swift defines them, which BlockRoundTripTests checks against this file): loss,
per-tensor gradient L2 norms and 24 sampled entries per tensor.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "FineTuneTests", "Fixtures", "finetune_goldens.json")


# ---- architecture (the JSON of Swift's Layer / Block / FineTuneNetwork) ----

def pointwise(name, i, o, bias=False):
    return {"op": "pointwise", "name": name, "inChannels": i, "outChannels": o, "bias": bias}


def depthwise(name, c, k, s, padding):
    return {"op": "depthwise", "name": name, "inChannels": c, "outChannels": c, "kernel": k, "stride": s,
            "padding": padding}


def batch_norm(name, c, eps):
    return {"op": "batchNorm", "name": name, "inChannels": c, "outChannels": c, "epsilon": eps}


def act(a):
    return {"op": "activation", "name": a, "activation": a}


def squeeze_excite(name, c, r, a, reduce=None, expand=None):
    l = {"op": "squeezeExcite", "name": name, "inChannels": c, "outChannels": c, "reduced": r, "activation": a}
    if reduce:
        l["reduceName"], l["expandName"] = reduce, expand
    return l


def conv(name, i, o, k, s, padding, bias=False):
    return {"op": "conv", "name": name, "inChannels": i, "outChannels": o, "kernel": k, "stride": s,
            "padding": padding, "bias": bias}


def max_pool(k, s):
    return {"op": "maxPool", "name": "maxpool", "kernel": k, "stride": s}


RESIDUAL = {"op": "residualAdd", "name": "residual"}
POOL = {"op": "globalAveragePool", "name": "pool"}


def mbconv(p, i, o, e, k, s, eps, a="relu6", padding="tfSame", se=None):
    mid = i * e
    layers = []
    if e != 1:
        layers += [pointwise(f"{p}._expand_conv", i, mid), batch_norm(f"{p}._bn0", mid, eps), act(a)]
    layers += [depthwise(f"{p}._depthwise_conv", mid, k, s, padding), batch_norm(f"{p}._bn1", mid, eps), act(a)]
    if se:
        layers.append(squeeze_excite(f"{p}._se", mid, se, a))
    layers += [pointwise(f"{p}._project_conv", mid, o), batch_norm(f"{p}._bn2", o, eps)]
    if s == 1 and i == o:
        layers.append(RESIDUAL)
    return {"name": p, "layers": layers}


def lite0(last_blocks):
    """FineTuneNetwork.efficientNetLite0(lastBlocks:) for 1 or 2 (Lite0's blocks are 0...15)."""
    blocks = [mbconv("_blocks.14", 192, 192, 6, 5, 1, 1e-3), mbconv("_blocks.15", 192, 320, 6, 3, 1, 1e-3)]
    head = {"name": "head", "layers": [pointwise("_conv_head", 320, 1280), batch_norm("_bn1", 1280, 1e-3),
                                       act("relu6"), POOL]}
    return {"input": {"channels": 192, "height": 7, "width": 7}, "blocks": blocks[2 - last_blocks:] + [head]}


def tiny(last_blocks):
    """Lite0's last two blocks with channel widths 192 -> 4, 320 -> 6, 1280 -> 16."""
    blocks = [mbconv("_blocks.14", 4, 4, 6, 5, 1, 1e-3), mbconv("_blocks.15", 4, 6, 6, 3, 1, 1e-3)]
    head = {"name": "head", "layers": [pointwise("_conv_head", 6, 16), batch_norm("_bn1", 16, 1e-3),
                                       act("relu6"), POOL]}
    return {"input": {"channels": 4, "height": 7, "width": 7}, "blocks": blocks[2 - last_blocks:] + [head]}


def b0_tiny():
    """Squeeze-excite and swish (EfficientNet-B0 style), TF SAME stride 2 on an even size (asymmetric
    padding), symmetric padding k5 s1 with a skip, symmetric stride 2, sigmoid, biased 1x1 head."""
    blocks = [
        mbconv("b0", 6, 8, 4, 3, 2, 1e-3, a="swish", se=2),
        {"name": "b1", "layers": [depthwise("b1.dw", 8, 5, 1, "symmetric"), batch_norm("b1.bn", 8, 1e-5),
                                  act("swish"), pointwise("b1.pw", 8, 8), batch_norm("b1.bn2", 8, 1e-5), RESIDUAL]},
        {"name": "b2", "layers": [depthwise("b2.dw", 8, 3, 2, "symmetric"), act("sigmoid")]},
        {"name": "head", "layers": [pointwise("head_conv", 8, 16, bias=True), batch_norm("head_bn", 16, 1e-5),
                                    act("relu"), POOL]},
    ]
    return {"input": {"channels": 6, "height": 8, "width": 8}, "blocks": blocks}


def b0(last_blocks):
    """EfficientNet.blockNetwork(layout: "torchvision", lastBlocks:) for 1 or 2: blocks 14 (192 -> 192, k5) and
    15 (192 -> 320, k3), swish, squeeze-excite to 48, symmetric padding, BN epsilon 1e-5."""
    def block(i, name, o, k, skip):
        p = f"{name}.block"
        layers = [pointwise(f"{p}.0.0", 192, 1152), batch_norm(f"{p}.0.1", 1152, 1e-5), act("swish"),
                  depthwise(f"{p}.1.0", 1152, k, 1, "symmetric"), batch_norm(f"{p}.1.1", 1152, 1e-5), act("swish"),
                  squeeze_excite(f"b{i}.se", 1152, 48, "swish", f"{p}.2.fc1", f"{p}.2.fc2"),
                  pointwise(f"{p}.3.0", 1152, o), batch_norm(f"{p}.3.1", o, 1e-5)]
        return {"name": f"b{i}", "layers": layers + ([RESIDUAL] if skip else [])}
    blocks = [block(14, "features.6.3", 192, 5, True), block(15, "features.7.0", 320, 3, False)]
    head = {"name": "head", "layers": [pointwise("features.8.0", 320, 1280), batch_norm("features.8.1", 1280, 1e-5),
                                       act("swish"), POOL]}
    return {"input": {"channels": 192, "height": 7, "width": 7}, "blocks": blocks[2 - last_blocks:] + [head]}


def resnet50(last_blocks, keras=False):
    """ResNet.blockNetwork(.resnet50, layout:, lastBlocks:): bottlenecks layer4.1 and layer4.2 + global pool;
    torchvision names without biases (BN epsilon 1e-5) or Keras names with biased convolutions (1.001e-5)."""
    eps = 1.001e-5 if keras else 1e-5
    blocks = []
    for b in [1, 2][2 - last_blocks:]:
        def n(i):
            return (f"conv5_block{b + 1}_{i}_conv", f"conv5_block{b + 1}_{i}_bn") if keras else \
                (f"layer4.{b}.conv{i}", f"layer4.{b}.bn{i}")
        blocks.append({"name": f"layer4.{b}", "layers": [
            pointwise(n(1)[0], 2048, 512, bias=keras), batch_norm(n(1)[1], 512, eps), act("relu"),
            conv(n(2)[0], 512, 512, 3, 1, "symmetric", bias=keras), batch_norm(n(2)[1], 512, eps), act("relu"),
            pointwise(n(3)[0], 512, 2048, bias=keras), batch_norm(n(3)[1], 2048, eps), RESIDUAL, act("relu")]})
    return {"input": {"channels": 2048, "height": 7, "width": 7},
            "blocks": blocks + [{"name": "head", "layers": [POOL]}]}


def vgg16(last_blocks):
    """VGG.blockNetwork(layout: "torchvision", lastBlocks:): conv5_2 (features.26) and conv5_3 (features.28),
    3x3 + bias + ReLU, then the 2x2 max pool and the global average pool."""
    blocks = [{"name": f"features.{i}", "layers": [conv(f"features.{i}", 512, 512, 3, 1, "symmetric", bias=True),
                                                     act("relu")]} for i in [26, 28][2 - last_blocks:]]
    head = {"name": "head", "layers": [max_pool(2, 2), POOL]}
    return {"input": {"channels": 512, "height": 14, "width": 14}, "blocks": blocks + [head]}


def conv_tiny():
    """Full convolutions on a small map: TF SAME 3x3 stride 2 on an even size (asymmetric padding), a
    bottleneck with a 3x3 symmetric conv and the skip, symmetric stride 2 with bias, 2x2 max pool."""
    blocks = [
        {"name": "a", "layers": [conv("a.conv", 3, 6, 3, 2, "tfSame", bias=True), batch_norm("a.bn", 6, 1e-3),
                                 act("relu")]},
        {"name": "b", "layers": [pointwise("b.c1", 6, 4), batch_norm("b.bn1", 4, 1e-5), act("relu"),
                                 conv("b.c2", 4, 4, 3, 1, "symmetric"), batch_norm("b.bn2", 4, 1e-5), act("relu"),
                                 pointwise("b.c3", 4, 6), batch_norm("b.bn3", 6, 1e-5), RESIDUAL, act("relu")]},
        {"name": "c", "layers": [conv("c.conv", 6, 8, 3, 2, "symmetric", bias=True), act("relu"),
                                 conv("c.conv2", 8, 8, 2, 1, "tfSame"), max_pool(2, 2), POOL]},
    ]
    return {"input": {"channels": 3, "height": 10, "width": 10}, "blocks": blocks}


def tensor_specs(layer):
    n, op = layer["name"], layer["op"]
    i, o = layer.get("inChannels", 0), layer.get("outChannels", 0)
    if op in ("pointwise", "conv"):
        k = layer.get("kernel", 1)
        t = [(f"{n}.weight", [o, i, k, k], True)]
        return t + ([(f"{n}.bias", [o], True)] if layer.get("bias") else [])
    if op == "depthwise":
        return [(f"{n}.weight", [o, 1, layer["kernel"], layer["kernel"]], True)]
    if op == "batchNorm":
        return [(f"{n}.weight", [o], True), (f"{n}.bias", [o], True),
                (f"{n}.running_mean", [o], False), (f"{n}.running_var", [o], False)]
    if op == "squeezeExcite":
        r, red, exp = layer["reduced"], layer.get("reduceName", f"{n}.reduce"), layer.get("expandName", f"{n}.expand")
        return [(f"{red}.weight", [r, i, 1, 1], True), (f"{red}.bias", [r], True),
                (f"{exp}.weight", [i, r, 1, 1], True), (f"{exp}.bias", [i], True)]
    return []


def head_specs(features, hidden, classes):
    t, width = [], features
    if hidden:
        t += [("head.hidden.weight", [hidden, features], True), ("head.hidden.bias", [hidden], True)]
        width = hidden
    return t + [("head.out.weight", [classes, width], True), ("head.out.bias", [classes], True)]


def unit(n, t):
    """Synthetic.unit: splitmix64 of (t, i) -> uniform [-1, 1)."""
    m = np.uint64(0xFFFFFFFFFFFFFFFF)
    z = (np.full(n, t % 2**64, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019)
         + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)) & m
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1


def synthetic(name, shape, t):
    n = int(np.prod(shape)) if shape else 1
    u = unit(n, t)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = u * math.sqrt(3.0 / fan_in)
    elif name.endswith(".running_var"):
        v = 1 + 0.25 * (1 + u)
    elif name.endswith(".weight"):
        v = 1 + 0.1 * u
    else:
        v = 0.1 * u
    return torch.tensor(v.astype(np.float32).astype(np.float64).reshape(shape), dtype=torch.get_default_dtype())


# ---- the PyTorch model ----

def tf_same_pad(x, k, s):
    h, w = x.shape[2], x.shape[3]
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def activation(a, x):
    return {"relu": F.relu, "relu6": F.relu6, "swish": F.silu, "sigmoid": torch.sigmoid}[a](x)


def forward(net, P, x, bn_train):
    for block in net["blocks"]:
        block_input = x
        for l in block["layers"]:
            op, n = l["op"], l["name"]
            if op == "pointwise":
                x = F.conv2d(x, P[f"{n}.weight"], P.get(f"{n}.bias"))
            elif op in ("depthwise", "conv"):
                k, s = l["kernel"], l["stride"]
                groups = x.shape[1] if op == "depthwise" else 1
                if l["padding"] == "tfSame" and (s != 1 or k % 2 == 0):
                    x = F.conv2d(tf_same_pad(x, k, s), P[f"{n}.weight"], P.get(f"{n}.bias"), stride=s, groups=groups)
                else:  # symmetric, or TF SAME with stride 1 and an odd kernel (the same padding)
                    x = F.conv2d(x, P[f"{n}.weight"], P.get(f"{n}.bias"), stride=s, padding=k // 2, groups=groups)
            elif op == "maxPool":
                x = F.max_pool2d(x, l["kernel"], l["stride"])
            elif op == "batchNorm":
                x = F.batch_norm(x, P[f"{n}.running_mean"], P[f"{n}.running_var"], P[f"{n}.weight"], P[f"{n}.bias"],
                                 training=bn_train, momentum=0.1, eps=l["epsilon"])
            elif op == "activation":
                x = activation(l["activation"], x)
            elif op == "squeezeExcite":
                s = x.mean(dim=(2, 3), keepdim=True)
                red, exp = l.get("reduceName", f"{n}.reduce"), l.get("expandName", f"{n}.expand")
                s = activation(l["activation"], F.conv2d(s, P[f"{red}.weight"], P[f"{red}.bias"]))
                x = x * torch.sigmoid(F.conv2d(s, P[f"{exp}.weight"], P[f"{exp}.bias"]))
            elif op == "residualAdd":
                x = x + block_input
            elif op == "globalAveragePool":
                x = x.mean(dim=(2, 3))
    return x


def head_forward(P, f, hidden):
    if hidden:
        f = F.relu(F.linear(f, P["head.hidden.weight"], P["head.hidden.bias"]))
    return F.linear(f, P["head.out.weight"], P["head.out.bias"])


def run(name, net, batch, classes, hidden, bn_mode, full, adam=False, lr=1e-2, block_lr=1e-3):
    specs = [s for b in net["blocks"] for l in b["layers"] for s in tensor_specs(l)]
    n_block = len(specs)
    features = [l for b in net["blocks"] for l in b["layers"] if "outChannels" in l][-1]["outChannels"]
    specs += head_specs(features, hidden, classes)
    P = {n: synthetic(n, shape, t) for t, (n, shape, _) in enumerate(specs)}
    for n, _, trainable in specs:
        P[n].requires_grad_(trainable)
    c, h, w = net["input"]["channels"], net["input"]["height"], net["input"]["width"]
    count = batch * c * h * w
    x = torch.tensor(unit(count, -1).astype(np.float32).astype(np.float64).reshape(batch, c, h, w), dtype=torch.get_default_dtype())
    labels = torch.tensor([b % classes for b in range(batch)])
    bn_train = bn_mode == "train"

    def loss_fn():
        return F.cross_entropy(head_forward(P, forward(net, P, x, bn_train), hidden), labels)

    stats = {n: P[n].detach().clone() for n, _, tr in specs if not tr}
    loss = loss_fn()
    loss.backward()
    grads = {n: P[n].grad.detach().clone() for n, _, tr in specs if tr}
    out = {"name": name, "network": net, "batch": batch, "classes": classes, "batchNorm": bn_mode,
           "loss": loss.item()}
    if hidden:
        out["hidden"] = hidden
    if full:
        out["gradients"] = {n: rounded(g) for n, g in grads.items()}
        if bn_train:
            out["runningStats"] = {n: rounded(P[n].detach()) for n in stats}
    if adam:
        # Three Adam steps on the same batch from the initial tensors (running statistics restored).
        with torch.no_grad():
            for n, v in stats.items():
                P[n].copy_(v)
        opt = torch.optim.Adam([{"params": [P[n] for n, _, tr in specs[:n_block] if tr], "lr": block_lr},
                                {"params": [P[n] for n, _, tr in specs[n_block:] if tr], "lr": lr}])
        losses = []
        for _ in range(3):
            opt.zero_grad()
            l = loss_fn()
            l.backward()
            opt.step()
            losses.append(l.item())
        out["adam"] = {"learningRate": lr, "blockLearningRate": block_lr, "losses": losses,
                       "tensors": {n: rounded(P[n].detach()) for n, _, _ in specs}}
    if not full:
        out["gradientNorms"] = {n: g.norm().item() for n, g in grads.items()}
        samples = {}
        for n, g in grads.items():
            flat = g.flatten()
            idx = sorted({(j * 7919 + 13) % flat.numel() for j in range(24)})
            samples[n] = [[i, float(f"{flat[i].item():.9g}")] for i in idx]
        out["gradientSamples"] = samples
    return out


def rounded(t):
    """9 significant digits: far below the 1e-4 the tests allow, half the bytes of float64 repr."""
    return [float(f"{v:.9g}") for v in t.flatten().tolist()]


def main():
    configs = []
    for mode in ["frozen", "train"]:
        # Adam on frozen BN only: in train mode a BN beta followed by conv + BN has a zero gradient
        # (float32 noise in Swift), whose sign Adam turns into a full step.
        configs.append(run(f"tiny2-{mode}", tiny(2), 4, 5, 8, mode, True, adam=mode == "frozen"))
        configs.append(run(f"b0tiny-{mode}", b0_tiny(), 4, 3, None, mode, True))
        configs.append(run(f"convtiny-{mode}", conv_tiny(), 3, 4, None, mode, True))
        for blocks in [1, 2]:
            configs.append(run(f"lite0-{blocks}-{mode}", lite0(blocks), 4, 6, None, mode, False))
            # The experiment backbones' real blocks on a batch of 2 cached inputs.
            configs.append(run(f"b0-{blocks}-{mode}", b0(blocks), 2, 6, None, mode, False))
            configs.append(run(f"resnet50-{blocks}-{mode}", resnet50(blocks), 2, 6, None, mode, False))
            if mode == "frozen":   # VGG16 has no batch norm
                configs.append(run(f"vgg16-{blocks}-{mode}", vgg16(blocks), 2, 6, None, mode, False))
    configs.append(run("resnet50keras-1-frozen", resnet50(1, keras=True), 2, 6, None, "frozen", False))
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/goldens/finetune.py", "torch": torch.__version__, "configs": configs}, f,
                  separators=(",", ":"))
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
