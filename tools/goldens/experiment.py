#!/usr/bin/env python3
"""Reference fixtures for the experiment backbones (VGG16, ResNet50, ResNet101, EfficientNet-B0),
in both weight layouts each: torchvision and Keras applications.

Run (two interpreters: torch and TensorFlow live in separate venvs):
  /work/venv-ref/bin/python tools/goldens/experiment.py torch [--weights-dir DIR] [--only vgg16,...]
  /work/venv-ref/bin/python tools/goldens/experiment.py timm  [--weights-dir DIR] [--only vgg16,...]
  /work/venv-tf/bin/python  tools/goldens/experiment.py keras [--weights-dir DIR] [--only vgg16,...]
Needs: torch + torchvision (0.29) + pillow (+ timm 1.0 for `timm`) in the first; tensorflow + keras
(3.x) + h5py in the second.

The timm mode covers efficientnet_b0 and vgg16 (timm's resnet50/101 use torchvision's tensor
names): weights generated under timm's names exactly as for torchvision, the reference is
timm.create_model(name, pretrained=False) with them loaded; features are forward_head(...,
pre_logits=True) for EfficientNet-B0, and forward_features(x).mean((2, 3)) plus fc7 =
pre_logits(forward_features(x)) for VGG16. With --weights-dir the keras mode also saves each
loaded model with Keras 3's own `model.save_weights("<backbone>_keras.weights.h5")` (the Keras 3
layout, `layers/<class>/vars/<i>` with the layer name as the `name` attribute of `vars`); its
reference outputs are those of the Keras 2 file (same model, same weights).
The Swift tests never need either.

Writes Tests/BackboneTests/Fixtures/experiment/<backbone>_<layout>.json (small: summaries of the
reference outputs, see "Fixture contents"). With --weights-dir it also keeps the weights files it
made (<backbone>_torchvision.pth, <backbone>_keras.h5); they are NOT committed (VGG16 is 528 MB).

Approach to the weights (why the big files need not be committed)
------------------------------------------------------------------
Every weight is a deterministic function of (tensor key, flat index), computed the same way here
and in Tests/BackboneTests/ExperimentBackbonesTests.swift:
    h = FNV-1a 64 of the key's UTF-8 bytes
    z = splitmix64 finaliser of (h + index * 0x9E3779B97F4A7C15)  (all mod 2^64)
    r = 2 * ((z >> 11) * 2^-53) - 1                   (float64, in [-1, 1), exact)
    value = float32(offset + scale * r)                (float64 arithmetic, one rounding to float32)
The key is the PyTorch state-dict name for torchvision, and the canonical Keras 2 name
"<layer>/<weight>" (e.g. "conv2_block1_1_conv/kernel", "block1a_dwconv/depthwise_kernel") for
Keras; the index runs over the tensor as stored (PyTorch OIHW / [out, in]; Keras HWIO,
[kh, kw, in, 1], [in, out]). (offset, scale) by kind:
    convolution / dense kernel   (0, sqrt(6 / fan_in))     fan_in = in/groups * kh * kw  (Keras dense: in)
    convolution / dense bias     (0, 1 / sqrt(fan_in))     fan_in of the layer's kernel
    batch-norm gamma (weight)    (1, 0.25)
    batch-norm beta (bias)       (0, 0.1)
    batch-norm running mean      (0, 0.1)
    batch-norm running variance  (1, 0.5)
    Keras Normalization mean     (0.45, 0.05)
    Keras Normalization variance (0.06, 0.02)
(`num_batches_tracked` and the Normalization `count` stay 0.) The running statistics differ per
channel from the identity (mean 0, variance 1), so batch-norm folding is exercised. The kernel
scale is He uniform: with the smaller LeCun scale the swish/sigmoid layers of EfficientNet-B0
shrink the image-dependent signal until all three images give the same feature (each fixture
records this as "relative_spread"; it is 0.06-0.54 with He). The reference models load these values through their
framework's own file loader: torchvision from a torch.save(state_dict) zip checkpoint read back
with torch.load; Keras from an HDF5 file written in the Keras 2 layout of the published
keras-applications files (root attribute layer_names, per-layer weight_names "<layer>/<weight>:0")
and loaded by `keras.applications.X(weights="imagenet")` with keras's download function
pointed at that file, so the model is the one Keras builds for its ImageNet weights (for
EfficientNet that includes the extra Rescaling(1/sqrt(std)) layer). The script checks that every
weight in the loaded model equals the generated one. The Swift test generates the same values,
builds an in-memory StateDict with the same names and shapes, and goes through the backbone's
WeightLayout (matches -> expected -> build) via BackboneSpec.network(from:); the file readers
(PyTorch zip, Keras HDF5) are tested on their own in WeightFormatsTests. The files this script
keeps with --weights-dir DIR are checked end to end (WeightFiles.load -> LoadedBackbone ->
FeatureExtractor on 8-bit pixels) by testGeneratedWeightFilesEndToEnd when the tests run with
WORKBENCH_EXPERIMENT_WEIGHTS=DIR (skipped otherwise).

Inputs
------
Three 224x224 RGB PNGs already committed for the Lite0 goldens:
Tests/BackboneTests/Fixtures/lite0/inputs/{buildings,forest,sea}.png (scenes6 images resized by
tools/goldens/lite0.py). Each reference applies its own framework's preprocessing to those uint8
pixels: torchvision `to_tensor` (/255) + `normalize(ImageNet mean, std)`; Keras
`keras.applications.<family>.preprocess_input` (caffe: RGB->BGR, mean subtracted, 0-255, for VGG16
and ResNet; nothing for EfficientNet, whose model rescales and normalizes inside).

Outputs compared
----------------
features: VGG16 512 = global average pool of the last block after its max pool (torchvision
  features(x).mean((2,3)); Keras GlobalAveragePooling2D on block5_pool); ResNet 2048 = the
  avgpool / avg_pool output; EfficientNet-B0 1280 = the avgpool / avg_pool output.
fc7 (VGG16 only): 4096 after ReLU (torchvision classifier[:5] on the flattened 7x7 map; Keras fc2).

Fixture contents
----------------
For each output and image (float32 outputs, summaries computed in float64):
  sample      64 values, indices i * (dimension / 64), i = 0..63
  norm        L2 norm of the whole vector
  projections 32 values p_j = sum_i s_j[i] * f[i], s_j[i] = -1 if r(key "projection/<j>", i) < 0
              else +1 (r as above): any error pattern in the full vector shows up in them
The Swift test requires relative L2 <= 1e-4 on the sample, |norm difference| / norm <= 1e-4 and
RMS(projection difference) / norm <= 1e-4 (for an error vector e, E[(s.e)^2] = |e|^2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
FIXTURES = REPO_ROOT / "Tests" / "BackboneTests" / "Fixtures"
INPUTS = FIXTURES / "lite0" / "inputs"
OUT_DIR = FIXTURES / "experiment"
IMAGES = ["buildings", "forest", "sea"]
SIZE = 224
SAMPLES = 64
PROJECTIONS = 32
BACKBONES = ["vgg16", "resnet50", "resnet101", "efficientnet_b0"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The deterministic weight generator (mirrored in ExperimentBackbonesTests.swift)

MASK = (1 << 64) - 1


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def uniform(key: str, count: int) -> np.ndarray:
    """r in [-1, 1), float64, for indices 0..count-1 of `key`."""
    out = np.empty(count, dtype=np.float64)
    h = np.uint64(fnv1a64(key))
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, count, chunk):
            i = np.arange(start, min(start + chunk, count), dtype=np.uint64)
            z = h + i * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            u = (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
            out[start:start + len(i)] = 2.0 * u - 1.0
    return out


RULES = {  # kind -> (offset, scale); kernel and bias scales depend on fan_in
    "gamma": (1.0, 0.25), "beta": (0.0, 0.1), "mean": (0.0, 0.1), "variance": (1.0, 0.5),
    "input_mean": (0.45, 0.05), "input_variance": (0.06, 0.02),
}


def generate(key: str, shape, kind: str, fan_in: int = 0) -> np.ndarray:
    count = int(np.prod(shape)) if len(shape) else 1
    if kind == "kernel":
        offset, scale = 0.0, math.sqrt(6.0 / fan_in)
    elif kind == "bias":
        offset, scale = 0.0, 1.0 / math.sqrt(fan_in)
    else:
        offset, scale = RULES[kind]
    return (offset + scale * uniform(key, count)).astype(np.float32).reshape(shape)


def torch_kind(name: str, shapes: dict) -> tuple[str, int]:
    """(kind, fan_in) of a PyTorch state-dict entry, from its name and its siblings."""
    prefix, _, last = name.rpartition(".")
    is_bn = f"{prefix}.running_mean" in shapes
    if last == "running_mean":
        return "mean", 0
    if last == "running_var":
        return "variance", 0
    if last == "weight":
        return ("gamma", 0) if is_bn else ("kernel", int(np.prod(shapes[name][1:])))
    if last == "bias":
        return ("beta", 0) if is_bn else ("bias", int(np.prod(shapes[f"{prefix}.weight"][1:])))
    raise ValueError(f"no generator rule for {name}")


def keras_kind(key: str, shapes: dict) -> tuple[str, int]:
    layer, _, weight = key.rpartition("/")
    if weight == "kernel":
        return "kernel", int(np.prod(shapes[key][:-1]))
    if weight == "depthwise_kernel":
        return "kernel", int(np.prod(shapes[key][:2]))
    if weight == "bias":
        kernel = shapes.get(f"{layer}/kernel") or shapes[f"{layer}/depthwise_kernel"]
        return "bias", int(np.prod(kernel[:-1]))
    return {"gamma": "gamma", "beta": "beta", "moving_mean": "mean", "moving_variance": "variance",
            "mean": "input_mean", "variance": "input_variance"}[weight], 0


def summarize(features: np.ndarray) -> dict:
    """features: [images, dimension] float32 -> sample, norm, projections per image."""
    n, d = features.shape
    stride = d // SAMPLES
    signs = np.stack([np.where(uniform(f"projection/{j}", d) < 0, -1.0, 1.0) for j in range(PROJECTIONS)])
    f64 = features.astype(np.float64)
    return {
        "dimension": d,
        "sample_stride": stride,
        "samples": [[float(v) for v in row[::stride][:SAMPLES]] for row in features],
        "norms": [float(np.linalg.norm(row)) for row in f64],
        "projections": [[float(v) for v in signs @ row] for row in f64],
        # Not compared: how much the images differ (the parity test is only meaningful if they do).
        "relative_spread": float(np.linalg.norm(f64 - f64.mean(0)) / np.linalg.norm(f64)),
    }


def load_pixels() -> np.ndarray:
    """[3, 224, 224, 3] uint8 RGB from the committed PNGs (decoded with whatever is installed)."""
    images = []
    for name in IMAGES:
        path = INPUTS / f"{name}.png"
        try:
            from PIL import Image
            px = np.asarray(Image.open(path).convert("RGB"))
        except ImportError:
            import tensorflow as tf
            px = tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()
        assert px.shape == (SIZE, SIZE, 3) and px.dtype == np.uint8, (path, px.shape, px.dtype)
        images.append(px)
    return np.stack(images)


def write_fixture(backbone: str, layout: str, reference: str, outputs: dict, classifier: bool) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "backbone": backbone,
        "layout": layout,
        "reference": reference,
        "weights": "generated (tools/goldens/experiment.py), classifier included" if classifier else "generated",
        "images": [f"lite0/inputs/{n}.png" for n in IMAGES],
        "outputs": {k: summarize(v) for k, v in outputs.items()},
    }
    path = OUT_DIR / f"{backbone}_{layout}.json"
    text = json.dumps(doc, indent=1)
    # One line per list of numbers.
    text = re.sub(r"\[\s+([-0-9.eE+,\s]+?)\s+\]", lambda m: "[" + ",".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    path.write_text(text + "\n")
    spread = {k: round(v["relative_spread"], 3) for k, v in doc["outputs"].items()}
    log(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes); image spread {spread}")


# --------------------------------------------------------------------------------------------
# torchvision

def run_torch(backbones, weights_dir: Path | None) -> None:
    import torch
    import torchvision
    from torchvision.transforms import functional as TF

    torch.set_num_threads(2)
    pixels = load_pixels()
    batch = torch.stack([TF.normalize(TF.to_tensor(p), IMAGENET_MEAN, IMAGENET_STD) for p in pixels])
    for backbone in backbones:
        model = getattr(torchvision.models, backbone)(weights=None).eval()
        generated = generated_state_dict(model)
        with tempfile.TemporaryDirectory() as tmp:
            path = (weights_dir or Path(tmp)) / f"{backbone}_torchvision.pth"
            torch.save(generated, path)  # the zip checkpoint format torchvision publishes
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(loaded, strict=True)
        for name, t in model.state_dict().items():
            assert torch.equal(t, generated[name]), name
        with torch.no_grad():
            if backbone == "vgg16":
                maps = model.features(batch)
                outputs = {"features": maps.mean((2, 3)),
                           "fc7": model.classifier[:5](torch.flatten(model.avgpool(maps), 1))}
            else:
                if backbone.startswith("resnet"):
                    model.fc = torch.nn.Identity()
                else:
                    model.classifier = torch.nn.Identity()
                outputs = {"features": model(batch)}
        write_fixture(backbone, "torchvision", f"torchvision {torchvision.__version__} models.{backbone}, "
                      f"torch {torch.__version__}", {k: v.numpy() for k, v in outputs.items()}, classifier=True)


def generated_state_dict(model):
    """Deterministic weights for every tensor of a PyTorch model's state dict (by name and shape)."""
    import torch

    reference_sd = model.state_dict()
    shapes = {k: list(v.shape) for k, v in reference_sd.items()}
    generated = {}
    for name, t in reference_sd.items():
        if name.endswith("num_batches_tracked"):
            generated[name] = torch.zeros_like(t)
            continue
        kind, fan_in = torch_kind(name, shapes)
        generated[name] = torch.from_numpy(generate(name, shapes[name], kind, fan_in))
    return generated


# --------------------------------------------------------------------------------------------
# timm (efficientnet_b0, vgg16: the two whose tensor names differ from torchvision's; timm's
# resnet50/101 use torchvision's names and are covered by the torchvision fixtures)

TIMM_BACKBONES = ["vgg16", "efficientnet_b0"]


def run_timm(backbones, weights_dir: Path | None) -> None:
    import timm
    import torch
    from torchvision.transforms import functional as TF

    torch.set_num_threads(2)
    pixels = load_pixels()
    batch = torch.stack([TF.normalize(TF.to_tensor(p), IMAGENET_MEAN, IMAGENET_STD) for p in pixels])
    for backbone in backbones:
        if backbone not in TIMM_BACKBONES:
            log(f"timm: skipping {backbone} (same tensor names as torchvision)")
            continue
        model = timm.create_model(backbone, pretrained=False).eval()
        generated = generated_state_dict(model)
        with tempfile.TemporaryDirectory() as tmp:
            path = (weights_dir or Path(tmp)) / f"{backbone}_timm.pth"
            torch.save(generated, path)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(loaded, strict=True)
        for name, t in model.state_dict().items():
            assert torch.equal(t, generated[name]), name
        with torch.no_grad():
            maps = model.forward_features(batch)
            if backbone == "vgg16":
                outputs = {"features": maps.mean((2, 3)), "fc7": torch.flatten(model.pre_logits(maps), 1)}
            else:
                outputs = {"features": model.forward_head(maps, pre_logits=True)}
        write_fixture(backbone, "timm", f"timm {timm.__version__} create_model('{backbone}'), torch {torch.__version__}",
                      {k: v.numpy() for k, v in outputs.items()}, classifier=True)


# --------------------------------------------------------------------------------------------
# Keras applications

KERAS_MODELS = {  # backbone -> (application function, preprocess module, feature layer)
    "vgg16": ("VGG16", "vgg16", "block5_pool"),
    "resnet50": ("ResNet50", "resnet", "avg_pool"),
    "resnet101": ("ResNet101", "resnet", "avg_pool"),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", "avg_pool"),
}


def keras_weight_name(layer, variable) -> str:
    """Canonical Keras 2 key "<layer>/<weight>" (Keras 3 calls a depthwise kernel just `kernel`)."""
    import keras
    weight = variable.name
    if isinstance(layer, keras.layers.DepthwiseConv2D) and weight == "kernel":
        weight = "depthwise_kernel"
    layer_name = "normalization" if isinstance(layer, keras.layers.Normalization) else layer.name
    return f"{layer_name}/{weight}"


def write_keras2_h5(model, path: Path, values: dict) -> None:
    """The published keras-applications layout: root attrs layer_names / backend / keras_version,
    one group per layer with attr weight_names ["<layer>/<weight>:0", ...] and the datasets at those
    paths inside the group."""
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [l.name.encode("utf8") for l in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.4.0"
        for layer in model.layers:
            g = f.create_group(layer.name)
            keys = [keras_weight_name(layer, w) for w in layer.weights]
            g.attrs["weight_names"] = [f"{k}:0".encode("utf8") for k in keys]
            for k, w in zip(keys, layer.weights):
                g.create_dataset(f"{k}:0", data=values[k])


def run_keras(backbones, weights_dir: Path | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from keras.src.utils import file_utils

    tf.config.threading.set_intra_op_parallelism_threads(2)
    pixels = load_pixels().astype(np.float32)
    for backbone in backbones:
        fn, module, feature_layer = KERAS_MODELS[backbone]
        keras.backend.clear_session()
        # 1. The architecture with placeholder weights, to list the tensors.
        skeleton = getattr(keras.applications, fn)(weights=None, include_top=True)
        values = {}
        for layer in skeleton.layers:
            shapes = {keras_weight_name(layer, w): list(w.shape) for w in layer.weights}
            for w in layer.weights:
                key = keras_weight_name(layer, w)
                if key.endswith("/count"):
                    values[key] = np.zeros(w.shape, dtype=np.int64)
                    continue
                kind, fan_in = keras_kind(key, shapes)
                values[key] = generate(key, shapes[key], kind, fan_in)
        with tempfile.TemporaryDirectory() as tmp:
            path = (weights_dir or Path(tmp)) / f"{backbone}_keras.h5"
            write_keras2_h5(skeleton, path, values)
            # 2. The model exactly as keras.applications builds it for its ImageNet weights,
            #    with the download redirected to our file (read by Keras's legacy HDF5 loader).
            original = file_utils.get_file
            file_utils.get_file = lambda *a, **k: str(path)
            try:
                keras.backend.clear_session()
                model = getattr(keras.applications, fn)(weights="imagenet", include_top=True)
            finally:
                file_utils.get_file = original
        for layer in model.layers:
            for w in layer.weights:
                key = keras_weight_name(layer, w)
                assert np.array_equal(np.asarray(w.numpy()), values[key]), key
        if weights_dir:
            model.save_weights(str(weights_dir / f"{backbone}_keras.weights.h5"))
        x = getattr(keras.applications, module).preprocess_input(pixels.copy())
        if backbone == "vgg16":
            pooled = keras.layers.GlobalAveragePooling2D()(model.get_layer(feature_layer).output)
            probe = keras.Model(model.inputs, [pooled, model.get_layer("fc2").output])
            feats, fc7 = probe.predict(x, verbose=0)
            outputs = {"features": feats, "fc7": fc7}
        else:
            probe = keras.Model(model.inputs, model.get_layer(feature_layer).output)
            outputs = {"features": probe.predict(x, verbose=0)}
        write_fixture(backbone, "keras", f"keras {keras.__version__} applications.{fn}(weights='imagenet' layout), "
                      f"tensorflow {tf.__version__}", outputs, classifier=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("framework", choices=["torch", "timm", "keras"])
    parser.add_argument("--only", default=",".join(BACKBONES), help="comma-separated backbones")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="keep the generated weights files here (not committed)")
    args = parser.parse_args()
    backbones = [b for b in args.only.split(",") if b]
    for b in backbones:
        if b not in BACKBONES:
            raise SystemExit(f"unknown backbone {b}; choose from {BACKBONES}")
    if args.weights_dir:
        args.weights_dir.mkdir(parents=True, exist_ok=True)
    {"torch": run_torch, "timm": run_timm, "keras": run_keras}[args.framework](backbones, args.weights_dir)


if __name__ == "__main__":
    main()
