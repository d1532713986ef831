#!/usr/bin/env python3
"""PyTorch peer of FineTuneBenchmark.run (Sources/FineTuneCore/Benchmark.swift): seconds per epoch of training
EfficientNet-Lite0's last N blocks + head conv + a softmax head (1280 -> 10) on synthetic cached inputs
(N x 192 x 7 x 7), batch 64, Adam (block lr 1e-4, head lr 1e-3), float32, torch.set_num_threads(2).

The network is the one tools/goldens/finetune.py checks Swift against (same functional forward, same
Synthetic tensors). One warm-up epoch, then --epochs timed epochs: their mean and the fastest.

    /work/venv/bin/python tools/bench/finetune_peer.py --rows 1024 --blocks 1 [--channels-last]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "goldens"))
import finetune as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--bn", choices=["frozen", "train"], default="frozen")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float32)
    net = g.lite0(a.blocks)
    specs = [s for b in net["blocks"] for l in b["layers"] for s in g.tensor_specs(l)]
    n_block = len(specs)
    specs += g.head_specs(1280, None, 10)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    P = {}
    for t, (n, shape, trainable) in enumerate(specs):
        v = g.synthetic(n, shape, t)
        P[n] = (v.contiguous(memory_format=fmt) if v.dim() == 4 else v).requires_grad_(trainable)
    c, h, w = 192, 7, 7
    x = torch.tensor(g.unit(a.rows * c * h * w, -1).reshape(a.rows, c, h, w), dtype=torch.float32)
    x = x.contiguous(memory_format=fmt)
    labels = torch.arange(a.rows) % 10
    opt = torch.optim.Adam([{"params": [P[n] for n, _, tr in specs[:n_block] if tr], "lr": 1e-4},
                            {"params": [P[n] for n, _, tr in specs[n_block:] if tr], "lr": 1e-3}])
    bn_train = a.bn == "train"

    def epoch():
        loss = None
        for s in range(0, a.rows, a.batch):
            opt.zero_grad()
            f = g.forward(net, P, x[s:s + a.batch], bn_train)
            loss = F.cross_entropy(g.head_forward(P, f, None), labels[s:s + a.batch])
            loss.backward()
            opt.step()
        return loss.item()

    epoch()
    times = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        loss = epoch()
        times.append(time.perf_counter() - t0)
    print(f"pytorch {torch.__version__} lite0 last {a.blocks} block(s) + head conv + head: {a.rows} rows, batch {a.batch}, "
          f"{a.threads} threads, BN {a.bn}{', channels_last' if a.channels_last else ''}: {sum(times) / len(times):.3f} s/epoch (fastest {min(times):.3f}), loss {loss:.4f}")


if __name__ == "__main__":
    main()
