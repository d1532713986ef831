#!/usr/bin/env bash
# Train the sweeps of configs/ on a store, then write the HTML/Markdown report.
#
# Usage: scripts/sweep.sh [--store FILE] [--jobs N] [--out DIR] [--extract] [CONFIG.yaml ...]
#   default configs: configs/scenes-experiment.yaml configs/scenes-lite0-sweep.yaml
#   default store: features.sqlite, report folder: report/
#   --extract   first run scripts/extract-all.sh (all backbones, 2 augmented copies) on the store
#
# Every sweep resumes: re-running after an interruption trains only the missing trials. A backbone
# without features is reported (with the `extract` command to run) and the others go on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STORE=features.sqlite
OUT=report
JOBS=()
EXTRACT=0
CONFIGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE="$2"; shift 2 ;;
        --jobs) JOBS=(--jobs "$2"); shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --extract) EXTRACT=1; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) echo "sweep.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
        *) CONFIGS+=("$1"); shift ;;
    esac
done
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(configs/scenes-experiment.yaml configs/scenes-lite0-sweep.yaml)

BIN="${BIN:-.build/release}"
if [[ ! -x "$BIN/train-head" ]]; then
    echo "== building (swift build -c release)" >&2
    swift build -c release >&2
fi
if [[ "$EXTRACT" == 1 ]]; then scripts/extract-all.sh --store "$STORE" || true; fi

for c in "${CONFIGS[@]}"; do
    echo "== train-head sweep $c --store $STORE ${JOBS[*]:-}" >&2
    "$BIN/train-head" sweep "$c" --store "$STORE" "${JOBS[@]}"
done
echo "== train-head report --store $STORE --out $OUT" >&2
"$BIN/train-head" report --store "$STORE" --out "$OUT"
