#!/usr/bin/env bash
# Test accuracy with and without `train-head --tta 2`, and with and without `--pseudo-label` when only
# a fraction of the training labels is kept, over three seeds, on EfficientNet-Lite0 features.
#
# Usage: tools/bench/tta_pseudo.sh [--store /tmp/ttapl.sqlite] [--data DIR] [--fraction 0.1] [--no-build]
# Extracts the store first if it is missing (`extract --augment 2`: copies 0-2 of train and test images).
# Prints one line per seed and setting, then the mean test accuracy of each setting.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/datasets/scenes6"; STORE=/tmp/ttapl.sqlite; FRACTION=0.1; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --fraction) FRACTION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "tta_pseudo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup
[[ -f "$STORE" ]] || $BIN/extract --backbone efficientnet_lite0 --data "$DATA" --augment 2 --store "$STORE" --quiet
# field PATH...: prints the JSON values at the dotted paths (empty for a missing one), space-separated.
field() { python3 -c '
import json, sys
r = json.load(sys.stdin)
def get(path):
    v = r
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else (v[int(k)] if isinstance(v, list) and k.lstrip("-").isdigit() else None)
    return "" if v is None else ("%.4f" % v if isinstance(v, float) else str(v))
print(" ".join(get(p) for p in sys.argv[1:]))' "$@"; }
train() { $BIN/train-head --store "$STORE" --backbone efficientnet_lite0 --json "$@"; }
declare -A SUM
add() { SUM[$1]=$(python3 -c "print(${SUM[$1]:-0} + $2)"); }
for seed in 42 1 2; do
    read -r plain tta <<<"$(train --seed "$seed" --tta 2 | field test.accuracy tta.test.accuracy)"
    echo "seed $seed  all labels:  test $plain  with --tta 2: $tta"
    add all "$plain"; add all_tta "$tta"
    base=$(train --seed "$seed" --labeled-fraction "$FRACTION" | field test.accuracy)
    read -r pl used pacc <<<"$(train --seed "$seed" --labeled-fraction "$FRACTION" --pseudo-label \
        | field test.accuracy pseudo_label_rounds.-1.pseudo_labels pseudo_label_rounds.-1.pseudo_label_accuracy)"
    echo "seed $seed  --labeled-fraction $FRACTION: test $base  with --pseudo-label: $pl ($used pseudo-labels in the last round, accuracy $pacc)"
    add frac "$base"; add frac_pl "$pl"
done
for k in all all_tta frac frac_pl; do printf "mean %-8s %.4f\n" "$k" "$(python3 -c "print(${SUM[$k]} / 3)")"; done
