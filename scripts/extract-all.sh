#!/usr/bin/env bash
# Extract the features of every backbone of the scene experiment into one store, as a user would:
# one `extract` run per backbone (each resumes and reuses whatever is already stored).
#
# Usage: scripts/extract-all.sh [--data DIR] [--store FILE] [--augment K] [BACKBONE ...]
#   default backbones: vgg16 resnet50 resnet101 efficientnet_b0 efficientnet_lite0
#   default data: ../shared/datasets/scenes6, store: features.sqlite, augment: 2
#
# Only efficientnet_lite0 has weights on these machines: the others fail with the extractor's own
# message, are listed at the end, and the script goes on. It exits non-zero only if every backbone
# failed. Then: scripts/sweep.sh (sweeps + report).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=../shared/datasets/scenes6
STORE=features.sqlite
AUGMENT=2
BACKBONES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --store) STORE="$2"; shift 2 ;;
        --augment) AUGMENT="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "extract-all.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
        *) BACKBONES+=("$1"); shift ;;
    esac
done
[[ ${#BACKBONES[@]} -gt 0 ]] || BACKBONES=(vgg16 resnet50 resnet101 efficientnet_b0 efficientnet_lite0)

BIN="${BIN:-.build/release}"
if [[ ! -x "$BIN/extract" ]]; then
    echo "== building (swift build -c release)" >&2
    swift build -c release >&2 || exit 1
fi

done_list=(); failed_list=()
for b in "${BACKBONES[@]}"; do
    echo "== extract --backbone $b --data $DATA --store $STORE --augment $AUGMENT" >&2
    if "$BIN/extract" --backbone "$b" --data "$DATA" --store "$STORE" --augment "$AUGMENT"; then
        done_list+=("$b")
    else
        failed_list+=("$b")
        echo "   ($b skipped: see the message above)" >&2
    fi
done
echo "extracted: ${done_list[*]:-none}"
[[ ${#failed_list[@]} -eq 0 ]] || echo "not extracted: ${failed_list[*]}"
"$BIN/extract" store info "$STORE" || true
[[ ${#done_list[@]} -gt 0 ]]
