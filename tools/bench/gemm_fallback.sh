#!/usr/bin/env bash
# The trainer on a CPU that the system OpenBLAS does not know, simulated with OPENBLAS_CORETYPE=Prescott
# (what Debian's DYNAMIC_ARCH OpenBLAS 0.3.21 falls back to on an unknown CPU model), against the
# environment as is. Per thread count, each round runs `train-head bench-epoch --rows R --threads T
# --epochs 3 --hidden H --batch B --json` four times, alternating:
#   as-is             environment as is, automatic GEMM backend
#   as-is/openblas    environment as is, WORKBENCH_TRAINER_GEMM=openblas (OpenBLAS with its own kernel)
#   unknown           OPENBLAS_CORETYPE=Prescott, automatic GEMM backend (the fallback to oneDNN)
#   unknown/openblas  OPENBLAS_CORETYPE=Prescott, WORKBENCH_TRAINER_GEMM=openblas (before the fallback)
# Prints each round, the medians, and the ratios of medians:
#   unknown / as-is/openblas   target <= 1.2 (within 20% of OpenBLAS with its own kernel)
#   unknown / as-is            the automatic choice with and without a known core
#   unknown/openblas / as-is/openblas   what the fallback saves
#
# Run it with OPENBLAS_CORETYPE=<the CPU's own core> set (by hand, for this one command) to compare with that core.
#
# Usage: tools/bench/gemm_fallback.sh [--rounds 5] [--rows 11228] [--threads "1 2"] [--hidden 256] [--batch 32]
#                                     [--core Prescott] [--no-build]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS=5; BUILD=1; ROWS=11228; THREADS="1 2"; CORE=Prescott; HIDDEN=256; BATCH=32
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --core) CORE="$2"; shift 2 ;;
        --hidden) HIDDEN="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gemm_fallback.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup "OPENBLAS_CORETYPE as is: '${OPENBLAS_CORETYPE:-}'"
NAMES=("as-is" "as-is/openblas" "unknown" "unknown/openblas")
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
# run <config index> <threads>: prints bench-epoch's JSON.
run() {
    local envs=()
    case "$1" in
        1) envs=(WORKBENCH_TRAINER_GEMM=openblas) ;;
        2) envs=(OPENBLAS_CORETYPE="$CORE" WORKBENCH_TRAINER_GEMM=auto) ;;
        3) envs=(OPENBLAS_CORETYPE="$CORE" WORKBENCH_TRAINER_GEMM=openblas) ;;
        *) envs=(WORKBENCH_TRAINER_GEMM=auto) ;;
    esac
    env "${envs[@]}" "$BIN/train-head" bench-epoch --rows "$ROWS" --threads "$2" --epochs 3 --hidden "$HIDDEN" --batch "$BATCH" --json
}
describe() {
    printf "  %-17s corename %s, gemm %s (%s)\n" "${NAMES[$1]}" "$(field openblas_corename <<<"$2")" \
        "$(field gemm <<<"$2")" "$(sed -n 's/.*"gemm_reason":"\([^"]*\)".*/\1/p' <<<"$2")"
}
for T in $THREADS; do
    echo "== --threads $T, --rows $ROWS, --hidden $HIDDEN, --batch $BATCH, $ROUNDS rounds (s/epoch)"
    S0=(); S1=(); S2=(); S3=()
    for r in $(seq 1 "$ROUNDS"); do
        J=(); for i in 0 1 2 3; do J+=("$(run "$i" "$T")"); done
        [[ "$r" == 1 ]] && for i in 0 1 2 3; do describe "$i" "${J[$i]}"; done
        A="$(field seconds_per_epoch <<<"${J[0]}")"; B="$(field seconds_per_epoch <<<"${J[1]}")"
        C="$(field seconds_per_epoch <<<"${J[2]}")"; D="$(field seconds_per_epoch <<<"${J[3]}")"
        [[ -n "$A" && -n "$B" && -n "$C" && -n "$D" ]] || { echo "gemm_fallback.sh: a run failed" >&2; exit 1; }
        printf "round %d: as-is %.4f, as-is/openblas %.4f, unknown %.4f, unknown/openblas %.4f\n" "$r" "$A" "$B" "$C" "$D"
        S0+=("$A"); S1+=("$B"); S2+=("$C"); S3+=("$D")
    done
    M0=$(median "${S0[@]}"); M1=$(median "${S1[@]}"); M2=$(median "${S2[@]}"); M3=$(median "${S3[@]}")
    printf "median: as-is %.4f, as-is/openblas %.4f, unknown %.4f, unknown/openblas %.4f\n" "$M0" "$M1" "$M2" "$M3"
    awk -v a="$M0" -v b="$M1" -v c="$M2" -v d="$M3" 'BEGIN {
        printf "ratio unknown / as-is/openblas %.2f (target <= 1.2); unknown / as-is %.2f; unknown/openblas / as-is/openblas %.2f\n", c/b, c/a, d/b }'
done
