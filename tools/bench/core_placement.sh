#!/usr/bin/env bash
# Where the host puts this VM's two vCPUs, and what it does to the head trainer: every --every
# seconds, the cache-line round trip between CPU 0 and CPU 1 (tools/bench/core_latency.c), then
# `train-head bench-epoch --rows 11228 --threads 2 --epochs 5` of build A and build B alternating
# (A B A B), then the round trip again. At the end, per phase (both round trips under 125 ns: near
# cores; both over 360 ns: far cores; samples with one of each, or in between, are left out), the
# median seconds per epoch of A and of B. Run it on an otherwise idle machine: other work moves both.
#
# Usage: tools/bench/core_placement.sh TRAIN_HEAD_A TRAIN_HEAD_B [--samples 30] [--every 20]
# (e.g. a copy of .build/release/train-head from before a change, and the current one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0"; exit 2; }
A="$1"; B="$2"; shift 2
SAMPLES=30; EVERY=20
while [[ $# -gt 0 ]]; do
    case "$1" in
        --samples) SAMPLES="$2"; shift 2 ;;
        --every) EVERY="$2"; shift 2 ;;
        *) echo "core_placement.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
LAT="$(mktemp -d)/core_latency"
gcc -O2 "$ROOT/tools/bench/core_latency.c" -o "$LAT" -lpthread
epoch() { "$1" bench-epoch --rows 11228 --threads 2 --epochs 5 --json | sed -n 's/.*"seconds_per_epoch":\([0-9.e-]*\).*/\1/p'; }
rt() { "$LAT" | awk '{print $3}'; }
declare -A RUNS
for s in $(seq 1 "$SAMPLES"); do
    before=$(rt); a1=$(epoch "$A"); b1=$(epoch "$B"); a2=$(epoch "$A"); b2=$(epoch "$B"); after=$(rt)
    printf "sample %d: round trip %s ns; A %.4f %.4f; B %.4f %.4f s/epoch; round trip %s ns\n" "$s" "$before" "$a1" "$a2" "$b1" "$b2" "$after"
    phase=$(awk -v x="$before" -v y="$after" 'BEGIN { print (x < 125 && y < 125) ? "near" : (x > 360 && y > 360) ? "far" : "" }')
    [[ -n "$phase" ]] && { RUNS[$phase-A]+=" $a1 $a2"; RUNS[$phase-B]+=" $b1 $b2"; }
    [[ "$s" == "$SAMPLES" ]] || sleep "$EVERY"
done
for phase in near far; do
    if [[ -n "${RUNS[$phase-A]:-}" ]]; then
        n=$(echo ${RUNS[$phase-A]} | wc -w)
        printf "%s cores, %d runs each: A median %.4f s/epoch, B median %.4f\n" "$phase" "$n" \
            "$(median ${RUNS[$phase-A]})" "$(median ${RUNS[$phase-B]})"
    else
        echo "$phase cores: no sample"
    fi
done
