#!/usr/bin/env bash
# Forward-pass throughput under each OpenMP wait setting, alternately in the same run: libgomp's
# default spin (300,000), GOMP_SPINCOUNT 100000 / 10000 / 1000 (what `extract` and `train-head` set
# for themselves, Sources/WorkbenchCLI/OpenMPWaiting.swift) and OMP_WAIT_POLICY=passive.
#
# Usage: tools/bench/openmp_wait.sh [--backbone efficientnet_lite0] [--rounds 2] [--seconds 6] [--no-build]
# Prints one line per (round, setting) with `extract bench --precision fp32` images/s and the load
# average, then the median per setting. Run it on a quiet machine and on a busy one: the setting
# matters most when other work competes for the cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0; ROUNDS=2; SECS=6; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "openmp_wait.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup

SETTINGS=("GOMP_SPINCOUNT=300000" "GOMP_SPINCOUNT=100000" "GOMP_SPINCOUNT=10000" "GOMP_SPINCOUNT=1000" "OMP_WAIT_POLICY=passive")
declare -A RATES
for r in $(seq 1 "$ROUNDS"); do
    for s in "${SETTINGS[@]}"; do
        R=$(env "$s" "$BIN/extract" bench --backbone "$BACKBONE" --precision fp32 --seconds "$SECS" --json \
            | sed -n 's/.*"images_per_second" : \([0-9.]*\).*/\1/p')
        R=$(printf "%.1f" "$R")
        echo "round $r: $s: $R img/s (load $(cut -d' ' -f1 /proc/loadavg))"
        RATES[$s]="${RATES[$s]:-} $R"
    done
done
for s in "${SETTINGS[@]}"; do
    # shellcheck disable=SC2086
    echo "median $s: $(median ${RATES[$s]}) img/s"
done
