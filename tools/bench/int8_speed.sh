#!/usr/bin/env bash
# Forward-pass speed of --precision int8 against fp32 on the same backbone, batch and threads:
# `extract bench` alternately at int8 and fp32 for --rounds rounds (so both see the same load on a
# shared machine), then each round's ratio int8/fp32, the ratio of the medians and that of the best rounds.
#
# Usage: tools/bench/int8_speed.sh [--backbone efficientnet_lite0] [--batch 16] [--seconds 5] [--rounds 5] [--weights FILE] [--no-build]
# (--weights: any file of the backbone's format, e.g. the generated ones of tools/goldens/experiment.py)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0
BATCH=16
SECS=5
ROUNDS=5
WEIGHTS=()
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --weights) WEIGHTS=(--weights "$2"); shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "int8_speed.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
cd "$ROOT"
[[ "$BUILD" == 1 ]] && swift build -c release >&2
BIN="${BIN_DIR:-$ROOT/.build/release}"   # BIN_DIR: another build folder
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
I8=(); F32=()
for ((r = 1; r <= ROUNDS; r++)); do
    for p in int8 fp32; do
        v="$("$BIN/extract" bench --backbone "$BACKBONE" --batch "$BATCH" --precision "$p" --seconds "$SECS" ${WEIGHTS[@]+"${WEIGHTS[@]}"} --json \
             | tr -d '\n' | sed -E 's/.*"images_per_second" *: *([0-9.e+-]+).*/\1/')"
        if [[ "$p" == int8 ]]; then I8+=("$v"); else F32+=("$v"); fi
    done
    echo "round $r: int8 ${I8[-1]} img/s, fp32 ${F32[-1]} img/s, ratio $(awk -v a="${I8[-1]}" -v b="${F32[-1]}" 'BEGIN { printf "%.3f", a / b }')"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mi="$(median "${I8[@]}")"; mf="$(median "${F32[@]}")"
bi="$(printf '%s\n' "${I8[@]}" | sort -g | tail -n 1)"; bf="$(printf '%s\n' "${F32[@]}" | sort -g | tail -n 1)"
# A shared machine slows whichever runs during a burst: the best rounds are the least disturbed.
echo "$BACKBONE batch $BATCH: int8 median $mi img/s, fp32 median $mf img/s, ratio of medians $(awk -v a="$mi" -v b="$mf" 'BEGIN { printf "%.3f", a / b }'); best $bi vs $bf img/s, ratio of bests $(awk -v a="$bi" -v b="$bf" 'BEGIN { printf "%.3f", a / b }')"
