#!/usr/bin/env bash
# Forward-pass speed of --precision int8 against fp32 on the same backbone, batch and threads:
# `extract bench` alternately at int8 and fp32 for --rounds rounds (so both see the same load on a
# shared machine), then each round's ratio int8/fp32, the ratio of the medians and that of the best rounds.
# --ort: each round also times ONNX Runtime on the same model (tools/bench/peer_ort.py), fp32 and its own
# static int8 quantization (QDQ, u8 activations, s8 per-channel weights, calibrated on the 32 images
# `extract --precision int8` calibrates on, from --data), and prints ours-int8 / ORT-int8 and
# ours-int8 / ORT-fp32 per round and of the medians, after the cosine of ORT int8 to ORT fp32 features.
#
# Usage: tools/bench/int8_speed.sh [--backbone efficientnet_lite0] [--batch 16] [--seconds 5] [--rounds 5]
#                                  [--weights FILE] [--ort] [--layout pytorch|keras] [--data DIR] [--no-build]
# (--weights: any file of the backbone's format, e.g. the generated ones of tools/goldens/experiment.py;
#  with --ort a Keras file (.h5), which ORT runs as the Keras model converted by tf2onnx: --layout keras,
#  the default for .h5 files. Without --weights ORT runs peer_ort.py's PyTorch model: the same published
#  weights for EfficientNet-Lite.)
# Env: PYTHON (--ort) interpreter with onnxruntime (default /work/venv/bin/python; --layout keras:
#      /work/venv-tf/bin/python, with tensorflow + tf2onnx); BIN_DIR: another build folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0
BATCH=16
SECS=5
ROUNDS=5
WEIGHTS=()
BUILD=1
ORT=0
LAYOUT=""
DATA="$ROOT/../shared/datasets/scenes6"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --weights) WEIGHTS=(--weights "$2"); shift 2 ;;
        --ort) ORT=1; shift ;;
        --layout) LAYOUT="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "int8_speed.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup "CPU$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"

PEER=()
if [[ "$ORT" == 1 ]]; then
    if [[ -z "$LAYOUT" ]]; then
        if [[ "${WEIGHTS[1]:-}" == *.h5 ]]; then LAYOUT=keras; else LAYOUT=pytorch; fi
    fi
    if [[ "$LAYOUT" == pytorch && ${#WEIGHTS[@]} -gt 0 ]]; then
        echo "int8_speed.sh: --ort with --weights needs a Keras weights file and --layout keras (the PyTorch peer has its own weights)" >&2
        exit 2
    fi
    if [[ "$LAYOUT" == keras ]]; then bench_python PYTHON /work/venv-tf; else bench_python PYTHON /work/venv; fi
    MODELS="$(mktemp -d)"; trap 'rm -rf "$MODELS"' EXIT
    PEER=("$PYTHON" tools/bench/peer_ort.py --backbone "$BACKBONE" --batch "$BATCH" --threads "$(nproc)" --layout "$LAYOUT"
          --model-dir "$MODELS" --extract "$BIN/extract" --data "$DATA")
    [[ "$LAYOUT" == keras ]] && PEER+=(${WEIGHTS[@]+"${WEIGHTS[@]}"})
    echo "== ORT: exporting and quantizing $BACKBONE ($LAYOUT layout) with $PYTHON" >&2
    "${PEER[@]}" --int8 --prepare-only 2>"$MODELS/prepare.log" | "$PYTHON" -c '
import json, sys
d = json.loads(sys.stdin.read().splitlines()[-1])
print("ORT int8:", d["quantization"])
print("cosine ORT int8 vs ORT fp32 features:", ", ".join("{} ({} images) min {:.4f} median {:.4f}".format(
    k, v["images"], v["min"], v["median"]) for k, v in d["cosine_int8_vs_fp32"].items()))' \
        || { tail -n 20 "$MODELS/prepare.log" >&2; exit 1; }
fi

rate() { tr -d '\n' | sed -E 's/.*"images_per_second" *: *([0-9.e+-]+).*/\1/' | awk '{ printf "%.1f", $1 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
I8=(); F32=(); O32=(); O8=()
for ((r = 1; r <= ROUNDS; r++)); do
    for p in int8 fp32; do
        v="$("$BIN/extract" bench --backbone "$BACKBONE" --batch "$BATCH" --precision "$p" --seconds "$SECS" ${WEIGHTS[@]+"${WEIGHTS[@]}"} --json | rate)"
        if [[ "$p" == int8 ]]; then I8+=("$v"); else F32+=("$v"); fi
    done
    line="round $r: int8 ${I8[-1]} img/s, fp32 ${F32[-1]} img/s, ratio $(ratio "${I8[-1]}" "${F32[-1]}")"
    if [[ "$ORT" == 1 ]]; then
        O32+=("$("${PEER[@]}" --seconds "$SECS" 2>/dev/null | rate)")
        O8+=("$("${PEER[@]}" --int8 --seconds "$SECS" 2>/dev/null | rate)")
        line+="; ORT fp32 ${O32[-1]}, ORT int8 ${O8[-1]} img/s; ours-int8/ORT-int8 $(ratio "${I8[-1]}" "${O8[-1]}"), ours-int8/ORT-fp32 $(ratio "${I8[-1]}" "${O32[-1]}")"
    fi
    echo "$line"
done
best() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mi="$(median "${I8[@]}")"; mf="$(median "${F32[@]}")"; bi="$(best "${I8[@]}")"; bf="$(best "${F32[@]}")"
# A shared machine slows whichever runs during a burst: the best rounds are the least disturbed.
echo "$BACKBONE batch $BATCH: int8 median $mi img/s, fp32 median $mf img/s, ratio of medians $(ratio "$mi" "$mf"); best $bi vs $bf img/s, ratio of bests $(ratio "$bi" "$bf")"
if [[ "$ORT" == 1 ]]; then
    m32="$(median "${O32[@]}")"; m8="$(median "${O8[@]}")"; b32="$(best "${O32[@]}")"; b8="$(best "${O8[@]}")"
    echo "ORT ($LAYOUT): fp32 median $m32 img/s, int8 median $m8 img/s (int8/fp32 $(ratio "$m8" "$m32")); ours-int8/ORT-int8: medians $(ratio "$mi" "$m8"), bests $(ratio "$bi" "$b8"); ours-int8/ORT-fp32: medians $(ratio "$mi" "$m32"), bests $(ratio "$bi" "$b32")"
fi
