#!/usr/bin/env python3
"""Parity of `train-head export --format onnx` with `extract predict` (issue 16), fixture for
Tests/CLITests/Fixtures/onnx (the Swift test needs no Python).

Run from the repository root after `swift build -c release` (and scripts/setup, which installs the
EfficientNet-Lite0 weights):
    /work/venv/bin/python tools/goldens/export_onnx.py [--data ../shared/datasets/scenes6] [--finetuned] [--resnet50]

What it does:
  1. builds a small store with our own tools: `extract --backbone efficientnet_lite0 --precision fp32`
     on 8 training images per scenes6 class, `train-head --hidden 8` (input BN, hidden, BN, output,
     and a temperature fitted on the validation split);
  2. `train-head export --format onnx`, then `onnx.checker.check_model` (full check);
  3. the 4 test images of the fixture, rendered by our own pipeline: `extract preview --augment 0`
     writes copy 0 (the plain render: decode + resize + pad to 224, what predict feeds the backbone)
     as a lossless PNG, so onnxruntime sees exactly predict's pixels;
  4. onnxruntime on those pixels; `extract predict --json` on the original JPEGs; prints the max
     absolute difference, and writes the fixture: head.bin (the head's stored blob) and
     expected.json (image paths relative to scenes6, ORT probabilities, class names).
With --finetuned it also caches the last two blocks (`extract --cache-blocks 2`), trains
`train-head --unfreeze 1` (one block frozen, one trained), exports that head and prints the same
comparison (no fixture). With --resnet50 it does the same for a ResNet50 head (torchvision layout:
7x7 stem, max pool, residual convolutions, ImageNet mean/std) on random weights it writes as a
safetensors file (seeded; no published ResNet50 file is needed), passed with --weights.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, ".build", "release")
CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
TEST_CLASSES = ["buildings", "forest", "glacier", "sea"]   # one test image each


def run(tool, *args):
    r = subprocess.run([os.path.join(BIN, tool), *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{tool} {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def first_files(folder, n):
    return sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))[:n]


def ort_probabilities(model_path, pixels):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name) == ("image", "tensor(uint8)", "probabilities"), (inp, out)
    return session.run(None, {"image": pixels})[0], model


def predict(store, head, images, classes, weights=()):
    rows = json.loads(run("extract", "predict", "--store", store, "--head", str(head), "--top", str(len(classes)), "--json",
                          *weights, *images))
    out = np.zeros((len(images), len(classes)), dtype=np.float64)
    for i, r in enumerate(rows):
        for t in r["top"]:
            out[i, t["index"]] = t["probability"]
    return out


def random_resnet50(path):
    """torchvision ResNet50 names and shapes, He-initialized convolutions, BN near identity (bn3 of each
    block scaled by 0.2 so the residual sum stays in range), written as safetensors."""
    rng = np.random.default_rng(0)
    tensors = {}

    def conv_bn(conv, bn, out, inp, k, gamma=1.0):
        tensors[conv + ".weight"] = rng.normal(0, np.sqrt(2 / (inp * k * k)), (out, inp, k, k))
        tensors[bn + ".weight"] = gamma * rng.uniform(0.8, 1.2, out)
        tensors[bn + ".bias"] = rng.uniform(-0.1, 0.1, out)
        tensors[bn + ".running_mean"] = rng.uniform(-0.1, 0.1, out)
        tensors[bn + ".running_var"] = rng.uniform(0.8, 1.2, out)

    conv_bn("conv1", "bn1", 64, 3, 7)
    inp = 64
    for s, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        for b in range(blocks):
            p = f"layer{s + 1}.{b}"
            conv_bn(p + ".conv1", p + ".bn1", width, inp, 1)
            conv_bn(p + ".conv2", p + ".bn2", width, width, 3)
            conv_bn(p + ".conv3", p + ".bn3", width * 4, width, 1, gamma=0.2)
            if b == 0:
                conv_bn(p + ".downsample.0", p + ".downsample.1", width * 4, inp, 1)
            inp = width * 4
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "datasets", "scenes6"))
    ap.add_argument("--out", default=os.path.join(REPO, "Tests", "CLITests", "Fixtures", "onnx"))
    ap.add_argument("--finetuned", action="store_true")
    ap.add_argument("--resnet50", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="export-onnx-")
    data, store = os.path.join(tmp, "data"), os.path.join(tmp, "f.sqlite")
    for c in CLASSES:
        os.makedirs(os.path.join(data, c))
        for f in first_files(os.path.join(args.data, "train", c), 8):
            shutil.copy(os.path.join(args.data, "train", c, f), os.path.join(data, c, f))
    run("extract", "--backbone", "efficientnet_lite0", "--precision", "fp32", "--data", data, "--store", store, "--quiet")
    head = json.loads(run("train-head", "--store", store, "--backbone", "efficientnet_lite0", "--hidden", "8",
                          "--lr", "1e-3", "--epochs", "40", "--val-split", "0.25", "--json"))["head_id"]

    # The test images and the pixels predict gives the backbone (copy 0 of `extract preview`).
    images = [os.path.join("test", c, first_files(os.path.join(args.data, "test", c), 1)[0]) for c in TEST_CLASSES]
    one_each = os.path.join(tmp, "one-each")
    for rel in images:
        c = rel.split(os.sep)[1]
        os.makedirs(os.path.join(one_each, c))
        shutil.copy(os.path.join(args.data, rel), os.path.join(one_each, c))
    previews = os.path.join(tmp, "previews")
    run("extract", "preview", "--data", one_each, "--augment", "0", "--images", str(len(images)), "--image-size", "224", "--out", previews)
    pixels = np.stack([np.asarray(Image.open(os.path.join(previews, f"{rel.split(os.sep)[1]}-{os.path.splitext(os.path.basename(rel))[0]}-copy0.png")).convert("RGB"))
                       for rel in images]).astype(np.uint8)

    def compare(head_id, label, store=store, weights=()):
        path = os.path.join(tmp, f"head{head_id}.onnx")
        print(run("train-head", "export", "--store", store, "--head", str(head_id), "--format", "onnx", "--out", path, *weights).strip())
        probs, model = ort_probabilities(path, pixels)
        classes = [p.value for p in model.metadata_props if p.key == "class_names"][0].split("\n")
        ours = predict(store, head_id, [os.path.join(args.data, r) for r in images], classes, weights)
        print(f"{label}: {os.path.getsize(path)} bytes, {len(model.graph.node)} nodes; "
              f"max |onnxruntime - extract predict| = {np.abs(probs - ours).max():.2e} over {probs.size} probabilities "
              f"(top probability per image {', '.join(f'{p:.3f}' for p in probs.max(axis=1))}); "
              f"max |log p difference| {np.abs(np.log(probs) - np.log(ours)).max():.2e} against a smallest "
              f"per-image log p range of {(np.log(probs).max(axis=1) - np.log(probs).min(axis=1)).min():.2f}")
        return probs, classes

    probs, classes = compare(head, "pooled-features head")
    os.makedirs(args.out, exist_ok=True)
    with sqlite3.connect(store) as db:
        blob = db.execute("select weights from heads where id = ?", (head,)).fetchone()[0]
    with open(os.path.join(args.out, "head.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"images": images, "class_names": classes,
                   "probabilities": [[float(v) for v in row] for row in probs]}, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}/head.bin and expected.json")

    if args.finetuned:
        run("extract", "--backbone", "efficientnet_lite0", "--precision", "fp32", "--data", data, "--store", store,
            "--cache-blocks", "2", "--cache-dtype", "f32", "--quiet")
        tuned = json.loads(run("train-head", "--store", store, "--backbone", "efficientnet_lite0", "--hidden", "8",
                               "--lr", "1e-3", "--epochs", "5", "--val-split", "0.25", "--unfreeze", "1", "--json"))["head_id"]
        compare(tuned, "fine-tuned head (--unfreeze 1)")
    if args.resnet50:
        weights = os.path.join(tmp, "resnet50-random.safetensors")
        random_resnet50(weights)
        resnet_store = os.path.join(tmp, "resnet50.sqlite")
        run("extract", "--backbone", "resnet50", "--weights", weights, "--precision", "fp32", "--data", data,
            "--store", resnet_store, "--quiet")
        resnet_head = json.loads(run("train-head", "--store", resnet_store, "--backbone", "resnet50", "--hidden", "8",
                                     "--lr", "3e-2", "--epochs", "60", "--patience", "60", "--val-split", "0.25", "--json"))["head_id"]
        compare(resnet_head, "ResNet50 head (random weights)", store=resnet_store, weights=("--weights", weights))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
