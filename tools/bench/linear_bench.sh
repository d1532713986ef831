#!/usr/bin/env bash
# A linear softmax head (`train-head --hidden 0`, fitted with L-BFGS) against scikit-learn's
# LogisticRegression(lbfgs) on standardized features, on the same rows: the Lite0 features of the
# scenes6 training images (copy 0), with the validation images our trainer held out given to both.
# Reports fit seconds and validation/test accuracy of each (issue target: at least as fast, to the
# same validation accuracy within 0.5 points).
#
# Usage: tools/bench/linear_bench.sh [--store demo-out/features.sqlite] [--C 0.01] [--rounds 3] [--no-build]
# Env: SKLEARN_PYTHON (default /work/venv-ref/bin/python; needs numpy, scikit-learn, threadpoolctl).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STORE="$ROOT/demo-out/features.sqlite"; C=0.01; ROUNDS=3; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE="$2"; shift 2 ;;
        --C) C="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "linear_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_python SKLEARN_PYTHON /work/venv-ref
PY="$SKLEARN_PYTHON"
bench_setup
[[ -f "$STORE" ]] || { echo "linear_bench.sh: $STORE does not exist (run make demo, or pass --store)" >&2; exit 1; }
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cp "$STORE" "$TMP/s.sqlite"   # train-head keeps its heads in the store: work on a copy
EXTRACTION="$($BIN/extract store info "$TMP/s.sqlite" --json | "$PY" -c 'import json,sys; print(next(e["id"] for e in json.load(sys.stdin)["extractions"] if e["backbone"] == "efficientnet_lite0"))')"
$BIN/extract store export --store "$TMP/s.sqlite" --extraction "$EXTRACTION" --format npy --out "$TMP/npy" >/dev/null
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
for r in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s.%N)
    $BIN/train-head --store "$TMP/s.sqlite" --extraction "$EXTRACTION" --hidden 0 --augmented 0 --json \
        --write-validation-ids "$TMP/val_ids.json" > "$TMP/ours.json"
    t1=$(date +%s.%N)
    "$PY" - "$TMP" "$t0" "$t1" "$C" <<'PYEOF'
import csv, json, sys, time
import numpy as np
tmp, t0, t1, C = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ours = json.load(open(f"{tmp}/ours.json"))
val_ids = set(json.load(open(f"{tmp}/val_ids.json")))
x = np.load(f"{tmp}/npy/features.npy"); y = np.load(f"{tmp}/npy/labels.npy")
rows = list(csv.DictReader(open(f"{tmp}/npy/images.csv")))
train = [i for i, r in enumerate(rows) if r["split"] == "train" and r["aug_index"] == "0"]
test = [i for i, r in enumerate(rows) if r["split"] == "test" and r["aug_index"] == "0"]
fit = [i for i in train if int(rows[i]["image_id"]) not in val_ids]
val = [i for i in train if int(rows[i]["image_id"]) in val_ids]
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
with threadpool_limits(2):
    s = time.perf_counter()
    scaler = StandardScaler().fit(x[fit])
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=1000).fit(scaler.transform(x[fit]), y[fit])
    sk_seconds = time.perf_counter() - s
sk_val = clf.score(scaler.transform(x[val]), y[val]); sk_test = clf.score(scaler.transform(x[test]), y[test])
print(f"ours:    fit {ours['seconds']:.3f} s (whole command {t1 - t0:.2f} s), validation {ours['validation']['accuracy']:.4f}, "
      f"test {ours['test']['accuracy']:.4f} ({len(fit)} fitted, {len(val)} validation images)")
print(f"sklearn: fit {sk_seconds:.3f} s (C={C}, standardized, 2 threads), validation {sk_val:.4f}, test {sk_test:.4f}")
print(f"fit time ratio sklearn/ours {sk_seconds / ours['seconds']:.1f}; validation accuracy difference "
      f"{100 * (ours['validation']['accuracy'] - sk_val):+.2f} points")
PYEOF
done
