#!/usr/bin/env bash
# `train-head bench-finetune` on ResNet50's last bottleneck (--unfreeze 1: 1x1 2048->512, 3x3 512->512,
# 1x1 512->2048 on 7x7, full k x k convolution by im2col + GEMM) with generated torchvision-layout weights:
# a checkpoint with the torchvision names and shapes and random values (torch.save, the format torchvision
# publishes), `extract --cache-blocks 1` of 12 scenes6 images into a temporary store (the block definition
# and tensors), then bench-finetune on --rows random inputs of the cached 2048x7x7 shape.
#
# Usage: tools/bench/finetune_blocks.sh [--rows 1024] [--epochs 2] [--unfreeze 1] [--no-build]
# Needs torch in /work/venv (or $PYTHON).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/datasets/scenes6"; ROWS=1024; EPOCHS=2; UNFREEZE=1; BUILD=1
PYTHON="${PYTHON:-/work/venv/bin/python}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --unfreeze) UNFREEZE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "finetune_blocks.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup "ResNet50 --unfreeze $UNFREEZE, $ROWS rows"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
"$PYTHON" - "$TMP/resnet50.pth" <<'PY'
import sys, torch
g = torch.Generator().manual_seed(0)
sd = {}
def conv(name, o, i, k):
    sd[f"{name}.weight"] = torch.randn(o, i, k, k, generator=g) * (2.0 / (i * k * k)) ** 0.5
def bn(name, c):
    sd[f"{name}.weight"], sd[f"{name}.bias"] = torch.ones(c), torch.zeros(c)
    sd[f"{name}.running_mean"], sd[f"{name}.running_var"] = torch.zeros(c), torch.ones(c)
    sd[f"{name}.num_batches_tracked"] = torch.tensor(0)
conv("conv1", 64, 3, 7); bn("bn1", 64)
inp = 64
for s, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
    for b in range(blocks):
        p = f"layer{s + 1}.{b}"
        conv(f"{p}.conv1", width, inp, 1); bn(f"{p}.bn1", width)
        conv(f"{p}.conv2", width, width, 3); bn(f"{p}.bn2", width)
        conv(f"{p}.conv3", width * 4, width, 1); bn(f"{p}.bn3", width * 4)
        if b == 0:
            conv(f"{p}.downsample.0", width * 4, inp, 1); bn(f"{p}.downsample.1", width * 4)
        inp = width * 4
torch.save(sd, sys.argv[1])
PY
mkdir -p "$TMP/data"
for class in $(ls "$DATA/train" | head -3); do
    mkdir -p "$TMP/data/train/$class"; ls "$DATA/train/$class" | head -4 | while read -r f; do cp "$DATA/train/$class/$f" "$TMP/data/train/$class/"; done
done
$BIN/extract --backbone resnet50 --weights "$TMP/resnet50.pth" --data "$TMP/data" --store "$TMP/s.sqlite" \
    --cache-blocks "$UNFREEZE" --quiet --json >/dev/null
$BIN/train-head bench-finetune --store "$TMP/s.sqlite" --backbone resnet50 --unfreeze "$UNFREEZE" --rows "$ROWS" \
    --epochs "$EPOCHS" --json
