#!/usr/bin/env bash
# Throughput of our extractor vs the ONNX Runtime peer on the same backbone, batch and thread count.
#
# Usage: tools/bench/compare.sh [--backbone efficientnet_lite0] [--batch 16] [--seconds 10] [--rounds 3] [--precision fp32] [--weights FILE] [--layout keras] [--no-build]
# (--weights: any file of the backbone's format; speed does not depend on the values, so the generated
#  weights of tools/goldens/experiment.py serve for backbones whose published files are not at hand)
# Env:   PYTHON  interpreter with torch + onnxruntime + efficientnet-lite-pytorch
#                (default /work/venv/bin/python if present, else python3)
#                (--layout keras: one with tensorflow + tf2onnx + onnxruntime, default /work/venv-tf/bin/python;
#                the peer is then the Keras
#                applications model converted by tf2onnx, and --weights should be a Keras file, e.g. the
#                <backbone>_keras.weights.h5 that tools/goldens/experiment.py keras --weights-dir writes)
#        BIN_DIR folder of the extract binary (default .build/release; BIN, its older name, also works)
#
# Runs `swift build -c release` in the repo root, then
#   .build/release/extract bench --backbone B --batch N --json
#   $PYTHON tools/bench/peer_ort.py --backbone B --batch N --seconds S
# one after the other (never at the same time: they would share the 2 cores), and prints both
# JSON results and the ratio ours/peer of their "images_per_second" fields (> 1 means we are faster).
# Both sides measure preprocessed float batch -> pooled feature vector with 2 intra-op threads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0
BATCH=16
SECONDS_ARG=10
ROUNDS=3
PRECISION=fp32
WEIGHTS=()
LAYOUT=pytorch
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --seconds) SECONDS_ARG="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --precision) PRECISION="$2"; shift 2 ;;
        --weights) WEIGHTS=(--weights "$2"); shift 2 ;;
        --layout) LAYOUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

source "$ROOT/tools/bench/common.sh"
if [[ "$LAYOUT" == keras ]]; then bench_python PYTHON /work/venv-tf; else bench_python PYTHON /work/venv; fi
BIN_DIR="${BIN_DIR:-${BIN:-}}"   # BIN: this script's older name for BIN_DIR
bench_setup
if [[ ! -x "$BIN/extract" ]]; then
    echo "compare.sh: $BIN/extract not found; run 'swift build -c release' in $ROOT" >&2
    exit 1
fi

# Alternate ours and the peer for --rounds rounds, so both see the same machine; a shared or noisy
# machine slows whichever runs during a burst, so the best round of each is compared (and the median).
OURS=()
PEER=()
for ((r = 1; r <= ROUNDS; r++)); do
    echo "== round $r/$ROUNDS ours: extract bench --backbone $BACKBONE --batch $BATCH --precision $PRECISION --seconds $SECONDS_ARG" >&2
    OURS+=("$("$BIN"/extract bench --backbone "$BACKBONE" --batch "$BATCH" --precision "$PRECISION" --seconds "$SECONDS_ARG" ${WEIGHTS[@]+"${WEIGHTS[@]}"} --json | tr -d '\n')")
    echo "== round $r/$ROUNDS peer: peer_ort.py --backbone $BACKBONE --batch $BATCH --seconds $SECONDS_ARG --layout $LAYOUT" >&2
    PEER+=("$("$PYTHON" tools/bench/peer_ort.py --backbone "$BACKBONE" --batch "$BATCH" --seconds "$SECONDS_ARG" --layout "$LAYOUT" 2>/dev/null | tail -n 1)")
done

"$PYTHON" - "${#OURS[@]}" "${OURS[@]}" "${PEER[@]}" <<'EOF'
import json, statistics, sys

n = int(sys.argv[1])
ours = [json.loads(t) for t in sys.argv[2:2 + n]]
peer = [json.loads(t) for t in sys.argv[2 + n:2 + 2 * n]]
o = [d["images_per_second"] for d in ours]
p = [d["images_per_second"] for d in peer]
for i, (a, b) in enumerate(zip(o, p), 1):
    print(f"round {i}: ours {a:.1f} img/s, {peer[0]['peer']} {b:.1f} img/s, ratio {a / b:.3f}")
print(json.dumps({"backbone": ours[0]["backbone"], "precision": ours[0]["precision"], "batch": ours[0]["batch"],
                  "threads": ours[0]["threads"], "ours_best": max(o), "peer_best": max(p),
                  "ratio_best": max(o) / max(p), "ratio_median": statistics.median(o) / statistics.median(p),
                  "peak_rss_bytes": max(d["peak_rss_bytes"] for d in ours)}))
print(f"best of {n}: ours {max(o):.1f} img/s, {peer[0]['peer']} {max(p):.1f} img/s, ratio ours/peer = {max(o) / max(p):.3f}")
EOF
