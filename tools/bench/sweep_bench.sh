#!/usr/bin/env bash
# Sweep throughput: 100 trials of the experiment's head (hidden 128/256/512, dropout, L2, lr varied)
# on an 11,228 x 1280 feature matrix, 10 epochs each (early stopping off, so the work is fixed),
# against Keras (TF-CPU) doing the same trials one after the other.
#
# Usage: tools/bench/sweep_bench.sh [--store FILE] [--trials 100] [--epochs 10] [--jobs 2] [--no-build] [--no-keras]
#   --store FILE   repeat the Lite0 features of this store to 11,228 rows (default: random ReLU6-like
#                  features, the distribution of tools/bench/peer_heads.py)
# Env: KERAS_PYTHON (default /work/venv-tf/bin/python)
#
# Measures, one after the other (never at the same time: they would share the cores):
#   1. ours, sweep:     train-head bench-sweep --trials N --jobs J        (J trials at once, 1 thread each)
#   2. ours, one trial: train-head bench-sweep --trials 2 --jobs 1 --threads-per-trial 2 --hidden 256
#   3. Keras:           peer_heads.py keras --hidden H --rows 8982 --threads 2, for H in 128 256 512
#      (seconds per training epoch on the 80% of rows a trial fits on; no validation pass)
#   4. the experiment's way: peer_heads.py keras-backbone (frozen Keras EfficientNetB0 inside the
#      model, so every epoch runs the backbone over every image; 256 images timed, scaled to a trial's rows)
# and prints the ratios (> 1: we are faster):
#   sweep ratio    = Keras time for the same N trials run one after the other / our sweep wall time
#   per-trial ratio = Keras time of one hidden-256 trial / ours (both 2 threads, one trial alone)
#   experiment-way ratio = N trials x epochs x the backbone-inside epoch time / our sweep wall time
# Keras trial time = its seconds per epoch x epochs (its validation passes are not even counted).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TRIALS=100; EPOCHS=10; JOBS=2; BUILD=1; KERAS=1; STORE=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE=(--store "$2"); shift 2 ;;
        --trials) TRIALS="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-keras) KERAS=0; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "sweep_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_python KERAS_PYTHON /work/venv-tf
bench_setup "a shared machine: numbers vary"
ROWS=11228
FIT_ROWS=8982   # what a trial fits on: 80% of 11,228 (20% held out for validation)

echo "== ours: bench-sweep --trials $TRIALS --jobs $JOBS --epochs $EPOCHS" >&2
SWEEP="$($BIN/train-head bench-sweep "${STORE[@]}" --rows $ROWS --trials "$TRIALS" --jobs "$JOBS" --epochs "$EPOCHS" --json)"
echo "$SWEEP"
echo "== ours: one hidden-256 trial at a time, 2 threads" >&2
ONE="$($BIN/train-head bench-sweep "${STORE[@]}" --rows $ROWS --trials 2 --jobs 1 --threads-per-trial 2 --hidden 256 --epochs "$EPOCHS" --json)"
echo "$ONE"
[[ "$KERAS" == 1 ]] || exit 0

KJSON="{}"
for H in 128 256 512; do
    echo "== keras: peer_heads.py keras --hidden $H --rows $FIT_ROWS --epochs 3 --threads 2" >&2
    KLOG="$(mktemp)"
    if ! R="$(TF_CPP_MIN_LOG_LEVEL=3 "$KERAS_PYTHON" tools/bench/peer_heads.py keras --hidden "$H" --rows "$FIT_ROWS" \
                --epochs 3 --threads 2 2>"$KLOG" | tail -1)" || [[ -z "$R" ]]; then
        cat "$KLOG" >&2; echo "sweep_bench.sh: Keras failed (is it installed in $KERAS_PYTHON?)" >&2; exit 1
    fi
    rm -f "$KLOG"
    echo "$R"
    KJSON="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d[sys.argv[2]]=json.loads(sys.argv[3])["seconds_per_epoch"]; print(json.dumps(d))' "$KJSON" "$H" "$R")"
done
echo "== keras, the experiment's way: peer_heads.py keras-backbone --images 256 --rows $FIT_ROWS --epochs 1 --threads 2" >&2
KLOG="$(mktemp)"
if ! KB="$(TF_CPP_MIN_LOG_LEVEL=3 "$KERAS_PYTHON" tools/bench/peer_heads.py keras-backbone --images 256 --rows "$FIT_ROWS" \
            --epochs 1 --threads 2 2>"$KLOG" | tail -1)" || [[ -z "$KB" ]]; then
    cat "$KLOG" >&2; echo "sweep_bench.sh: Keras (backbone inside) failed" >&2; exit 1
fi
rm -f "$KLOG"
echo "$KB"
python3 - "$SWEEP" "$ONE" "$KJSON" "$EPOCHS" "$KB" <<'PY'
import json, sys
sweep, one, keras, epochs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
backbone_epoch = json.loads(sys.argv[5])["seconds_per_epoch_scaled"]
experiment_sweep = sweep["trials"] * epochs * backbone_epoch
keras_sweep = sum(n * keras[h] * epochs for h, n in sweep["trials_by_hidden"].items())
keras_trial = keras["256"] * epochs
out = {
    "trials": sweep["trials"], "epochs_per_trial": epochs, "rows": sweep["rows"], "dim": sweep["dim"],
    "ours_sweep_wall_seconds": round(sweep["wall_seconds"], 2), "ours_jobs": sweep["jobs"],
    "keras_sweep_seconds_estimated": round(keras_sweep, 2),
    "sweep_ratio_keras_over_ours": round(keras_sweep / sweep["wall_seconds"], 2),
    "ours_trial_seconds_hidden256_2threads": round(one["trial_seconds_mean"], 3),
    "keras_trial_seconds_hidden256_2threads": round(keras_trial, 3),
    "per_trial_ratio_keras_over_ours": round(keras_trial / one["trial_seconds_mean"], 2),
    "keras_seconds_per_epoch": keras,
    "experiment_way_seconds_per_epoch": round(backbone_epoch, 1),
    "experiment_way_sweep_seconds_estimated": round(experiment_sweep),
    "sweep_ratio_experiment_way_over_ours": round(experiment_sweep / sweep["wall_seconds"]),
}
print(json.dumps(out, indent=2))
PY
