#!/usr/bin/env bash
# `extract` end to end (scan + hash + decode + preprocess + forward + SQLite) against the same
# backbone's forward-only rate (`extract bench`), measured alternately in the same run, both at
# --precision fp32 (`extract` defaults to auto).
#
# Usage: tools/bench/extract_e2e.sh [--backbone efficientnet_lite0] [--data DIR] [--rounds 3] [--no-build]
# Prints per round: e2e images/s over the whole wall time of the command (startup included) and
# bench images/s, then the ratio of the medians (issue target: >= 0.90).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0; DATA="$ROOT/../shared/datasets/scenes6"; ROUNDS=3; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "extract_e2e.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
E2E=(); BENCH=()
for r in $(seq 1 "$ROUNDS"); do
    rm -f "$TMP"/s.sqlite*
    t0=$(date +%s.%N)
    OUT="$($BIN/extract --backbone "$BACKBONE" --data "$DATA" --store "$TMP/s.sqlite" --quiet --json --precision fp32)"
    t1=$(date +%s.%N)
    N=$(echo "$OUT" | sed -n 's/.*"new_features" : \([0-9]*\).*/\1/p')
    E=$(echo "$N $t0 $t1" | awk '{printf "%.1f", $1 / ($3 - $2)}')
    B=$($BIN/extract bench --backbone "$BACKBONE" --seconds 10 --json | sed -n 's/.*"images_per_second" : \([0-9.]*\).*/\1/p')
    B=$(printf "%.1f" "$B")
    echo "round $r: end to end $E img/s ($N images, wall time of the whole command); bench $B img/s; ratio $(echo "$E $B" | awk '{printf "%.3f", $1/$2}')"
    E2E+=("$E"); BENCH+=("$B")
done
ME=$(median "${E2E[@]}"); MB=$(median "${BENCH[@]}")
echo "median: end to end $ME img/s, bench $MB img/s, ratio $(echo "$ME $MB" | awk '{printf "%.3f", $1/$2}')"
