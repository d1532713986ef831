#!/usr/bin/env bash
# `extract --cache-blocks N` against plain `extract`, alternately into fresh stores in the same run.
#
# Usage: tools/bench/cache_blocks.sh [--data DIR] [--rounds 2] [--blocks 1] [--no-build]
# Prints per round the images_per_second of each (EfficientNet-Lite0, --augment 0), the store sizes
# and the block cache's bytes (`extract store info`), then the ratio of the medians (cached / plain).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/datasets/scenes6"; ROUNDS=2; BLOCKS=1; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --blocks) BLOCKS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "cache_blocks.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
PLAIN=(); CACHED=()
rate() { python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])'; }
for r in $(seq 1 "$ROUNDS"); do
    rm -f "$TMP"/*.sqlite*
    p=$($BIN/extract --backbone efficientnet_lite0 --data "$DATA" --store "$TMP/plain.sqlite" --augment 0 --quiet --json --precision fp32 | rate)
    c=$($BIN/extract --backbone efficientnet_lite0 --data "$DATA" --store "$TMP/cached.sqlite" --augment 0 --quiet --json \
        --cache-blocks "$BLOCKS" | rate)
    PLAIN+=("$p"); CACHED+=("$c")
    bytes=$($BIN/extract store info "$TMP/cached.sqlite" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["extractions"][0]["block_cache_bytes"])')
    echo "round $r: plain $p images/s, --cache-blocks $BLOCKS $c images/s; store $(stat -c %s "$TMP/plain.sqlite") vs $(stat -c %s "$TMP/cached.sqlite") bytes, block cache $bytes bytes"
done
MP=$(median "${PLAIN[@]}"); MC=$(median "${CACHED[@]}")
printf "median plain %.1f images/s, cached %.1f images/s, ratio %.3f\n" "$MP" "$MC" "$(echo "$MC $MP" | awk '{print $1/$2}')"
