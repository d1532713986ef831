#!/usr/bin/env python3
"""Golden loss, gradients and Adam steps for Sources/FineTuneCore (issue #12), computed by PyTorch in float64.

Builds each configuration's blocks + softmax head from the same architecture JSON that Swift's
`FineTuneNetwork` decodes, with the deterministic tensors of `Synthetic` (Sources/FineTuneCore/Architecture.swift:
tensor t, entry i: u uniform in [-1, 1) from splitmix64 of (t, i), rounded to float32), and writes
Tests/FineTuneTests/Fixtures/finetune_goldens.json.

    python3 -m venv /work/venv && /work/venv/bin/pip install torch numpy
    /work/venv/bin/python tools/goldens/finetune.py

'tiny' configurations: full gradients ('tiny2' also the tensors after 3 Adam steps). 'lite0' configurations (the
real EfficientNet-Lite0 shapes): loss, per-tensor gradient L2 norms and 24 sampled entries per tensor.
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


def squeeze_excite(name, c, r, a):
    return {"op": "squeezeExcite", "name": name, "inChannels": c, "outChannels": c, "reduced": r, "activation": a}


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


def tensor_specs(layer):
    n, op = layer["name"], layer["op"]
    i, o = layer.get("inChannels", 0), layer.get("outChannels", 0)
    if op == "pointwise":
        t = [(f"{n}.weight", [o, i, 1, 1], True)]
        return t + ([(f"{n}.bias", [o], True)] if layer.get("bias") else [])
    if op == "depthwise":
        return [(f"{n}.weight", [o, 1, layer["kernel"], layer["kernel"]], True)]
    if op == "batchNorm":
        return [(f"{n}.weight", [o], True), (f"{n}.bias", [o], True),
                (f"{n}.running_mean", [o], False), (f"{n}.running_var", [o], False)]
    if op == "squeezeExcite":
        r = layer["reduced"]
        return [(f"{n}.reduce.weight", [r, i, 1, 1], True), (f"{n}.reduce.bias", [r], True),
                (f"{n}.expand.weight", [i, r, 1, 1], True), (f"{n}.expand.bias", [i], True)]
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
            elif op == "depthwise":
                k, s = l["kernel"], l["stride"]
                if l["padding"] == "tfSame" and (s != 1 or k % 2 == 0):
                    x = F.conv2d(tf_same_pad(x, k, s), P[f"{n}.weight"], stride=s, groups=x.shape[1])
                else:  # symmetric, or TF SAME with stride 1 and an odd kernel (the same padding)
                    x = F.conv2d(x, P[f"{n}.weight"], stride=s, padding=k // 2, groups=x.shape[1])
            elif op == "batchNorm":
                x = F.batch_norm(x, P[f"{n}.running_mean"], P[f"{n}.running_var"], P[f"{n}.weight"], P[f"{n}.bias"],
                                 training=bn_train, momentum=0.1, eps=l["epsilon"])
            elif op == "activation":
                x = activation(l["activation"], x)
            elif op == "squeezeExcite":
                s = x.mean(dim=(2, 3), keepdim=True)
                s = activation(l["activation"], F.conv2d(s, P[f"{n}.reduce.weight"], P[f"{n}.reduce.bias"]))
                x = x * torch.sigmoid(F.conv2d(s, P[f"{n}.expand.weight"], P[f"{n}.expand.bias"]))
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
        for blocks in [1, 2]:
            configs.append(run(f"lite0-{blocks}-{mode}", lite0(blocks), 4, 6, None, mode, False))
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/goldens/finetune.py", "torch": torch.__version__, "configs": configs}, f,
                  separators=(",", ":"))
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
