#!/usr/bin/env bash
# One experiment head (BN, Dense 256, dropout 0.2, L2 1e-4, BN, Adam 1e-4, batch 32) on 2 threads,
# trained on the same 11,228 x 1280 matrix of ReLU6-like random features (labels i % 6): our seconds
# per training epoch against Keras 3 / TF-CPU's, alternating ours and Keras in each round (this
# machine's speed drifts by 10-30% over minutes, so one pair of numbers says little). Both time
# training steps only, after one warm-up epoch. Prints each round and the ratio of the medians.
#
# Usage: tools/bench/head_bench.sh [--rounds 5] [--rows 11228] [--no-build]
# Ours:  `train-head bench-epoch --rows R --threads 2 --epochs 3`
# Keras: `peer_heads.py keras --hidden 256 --rows R --epochs 3 --threads 2`
# Env: KERAS_PYTHON (default /work/venv-tf/bin/python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS=5; BUILD=1; ROWS=11228
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "head_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_python KERAS_PYTHON /work/venv-tf
bench_setup
OURS=(); KERAS=()
for r in $(seq 1 "$ROUNDS"); do
    O="$($BIN/train-head bench-epoch --rows "$ROWS" --threads 2 --epochs 3 --json \
            | sed -n 's/.*"seconds_per_epoch":\([0-9.e-]*\).*/\1/p')"
    K="$(TF_CPP_MIN_LOG_LEVEL=3 "$KERAS_PYTHON" tools/bench/peer_heads.py keras --hidden 256 --rows "$ROWS" --epochs 3 \
            --threads 2 2>/dev/null | tail -1 | sed -n 's/.*"seconds_per_epoch": \([0-9.e-]*\).*/\1/p')"
    [[ -n "$O" && -n "$K" ]] || { echo "head_bench.sh: a run failed (is Keras installed in $KERAS_PYTHON?)" >&2; exit 1; }
    printf "round %d: ours %.4f s/epoch, Keras %.4f s/epoch, ratio %.2f\n" "$r" "$O" "$K" "$(echo "$K $O" | awk '{print $1/$2}')"
    OURS+=("$O"); KERAS+=("$K")
done
MO=$(median "${OURS[@]}"); MK=$(median "${KERAS[@]}")
printf "median: ours %.4f s/epoch, Keras %.4f s/epoch, ratio %.2f (target 10)\n" "$MO" "$MK" "$(echo "$MK $MO" | awk '{print $1/$2}')"
