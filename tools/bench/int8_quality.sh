#!/usr/bin/env bash
# Quality of `extract --precision int8` against fp32 on a dataset (default scenes6, EfficientNet-Lite0
# with its installed weights): the cosine similarity of each image's int8 features to its fp32 features
# (un-augmented copies; min and median over all images), and the default head (`train-head`) trained
# on each extraction: test accuracy for --seeds, and the medians. With more than 3 seeds it also prints
# the mean of the per-seed differences (int8 minus fp32, same seed) with its standard error, and the
# share of the seeds' 3-subsets whose median difference is within 0.5 points: how often a median of 3
# seeds meets issue 14's bar, given the head's own spread over seeds.
# It also prints the mean of 1 - cosine over the images, and the fp32 head's standard deviation over seeds.
# --precision bf16 measures bf16 the same way (in place of int8).
#
# Usage: tools/bench/int8_quality.sh [--data DIR] [--backbone B] [--precision int8|bf16] [--seeds "1 2 3"]
#                                    [--no-int8-depthwise] [--no-build]
# (--no-int8-depthwise: passed to the int8 extraction, which then keeps depthwise convolutions in fp32)
# Env:   PYTHON  interpreter with numpy (default /work/venv/bin/python if present, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/datasets/scenes6"
BACKBONE=efficientnet_lite0
SEEDS="1 2 3"
LOW=int8
BUILD=1
INT8_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --backbone) BACKBONE="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --precision) LOW="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-int8-depthwise) INT8_ARGS=(--no-int8-depthwise); shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "int8_quality.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$LOW" in
    int8|bf16) ;;
    *) echo "int8_quality.sh: --precision is int8 or bf16, not '$LOW'" >&2; exit 2 ;;
esac
[[ "$LOW" == bf16 && ${#INT8_ARGS[@]} -gt 0 ]] && { echo "int8_quality.sh: --no-int8-depthwise is for --precision int8" >&2; exit 2; }
source "$ROOT/tools/bench/common.sh"
bench_python PYTHON /work/venv
bench_setup   # cd, build unless --no-build, BIN (BIN_DIR picks another build)
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
STORE="$TMP/s.sqlite"

declare -A EXTRACTION ACC
for p in fp32 "$LOW"; do
    echo "== extract --backbone $BACKBONE --precision $p" >&2
    EXTRA=(); [[ "$p" == int8 ]] && EXTRA=("${INT8_ARGS[@]+"${INT8_ARGS[@]}"}")
    "$BIN/extract" --backbone "$BACKBONE" --data "$DATA" --store "$STORE" --precision "$p" "${EXTRA[@]}" --quiet --json > "$TMP/$p.json"
    EXTRACTION[$p]="$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["extraction_id"])' "$TMP/$p.json")"
    "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%s: %d images, %.1f images/s end to end" % (sys.argv[2], d["images"], d["images_per_second"]))' "$TMP/$p.json" "$p" >&2
    ACC[$p]=""
    for s in $SEEDS; do
        a="$("$BIN/train-head" --store "$STORE" --extraction "${EXTRACTION[$p]}" --seed "$s" --json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["test"]["accuracy"])')"
        ACC[$p]="${ACC[$p]} $a"
    done
done

"$PYTHON" - "$STORE" "${EXTRACTION[fp32]}" "${EXTRACTION[$LOW]}" "${ACC[fp32]}" "${ACC[$LOW]}" "$LOW" <<'PYEOF'
import itertools, json, sqlite3, statistics, sys
import numpy as np
store, e32, e8, acc32, acc8, low = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5].split(), sys.argv[6]
db = sqlite3.connect(store)
def vectors(e):
    return {i: np.frombuffer(v, dtype="<f4") for i, v in db.execute(
        "SELECT image_id, vector FROM features WHERE extraction_id = ? AND aug_index = 0", (e,))}
a, b = vectors(e32), vectors(e8)
cos = np.array([float(a[i] @ b[i] / (np.linalg.norm(a[i]) * np.linalg.norm(b[i]))) for i in sorted(a)])
acc32, acc8 = [float(x) for x in acc32], [float(x) for x in acc8]
m32, m8 = statistics.median(acc32), statistics.median(acc8)
print(f"cosine {low} vs fp32 over {len(cos)} images: min {cos.min():.4f}, median {np.median(cos):.4f}, "
      f"mean of 1 - cosine {np.mean(1 - cos):.3g}, images below 0.99: {(cos < 0.99).sum()}, below 0.999: {(cos < 0.999).sum()}")
print(f"test accuracy fp32 {acc32} median {m32:.4f}; {low} {acc8} median {m8:.4f}; difference {100 * (m8 - m32):+.2f} points")
summary = {"precision": low, "images": len(cos), "cosine_min": float(cos.min()), "cosine_median": float(np.median(cos)),
           "mean_one_minus_cosine": float(np.mean(1 - cos)), "below_0_99": int((cos < 0.99).sum()), "below_0_999": int((cos < 0.999).sum()),
           "fp32_test_accuracy": acc32, "test_accuracy": acc8, "fp32_median": m32, "median": m8}
if len(acc8) > 3:
    d = 100 * (np.array(acc8) - np.array(acc32))
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    triples = [statistics.median(acc8[i] for i in t) - statistics.median(acc32[i] for i in t)
               for t in itertools.combinations(range(len(d)), 3)]
    within = float(np.mean([abs(100 * x) <= 0.5 + 1e-9 for x in triples]))
    sd32 = float(100 * np.std(acc32, ddof=1))
    print(f"per-seed difference over {len(d)} seeds: mean {d.mean():+.2f} points (standard error {se:.2f}); "
          f"3-seed subsets with the median difference within 0.5 points: {100 * within:.0f}% of {len(triples)}; "
          f"fp32 head's standard deviation over the seeds {sd32:.2f} points")
    summary.update({"difference_mean": float(d.mean()), "difference_standard_error": se, "triples_within_0_5": within,
                    "fp32_standard_deviation": sd32})
print(json.dumps(summary))
PYEOF
