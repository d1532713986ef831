#!/usr/bin/env bash
# Whether int8 features agree between oneDNN's kernels without VNNI and this CPU's own, for the same
# calibration: `extract --precision int8` over a dataset with oneDNN capped at --isa (default
# AVX512_CORE: AVX-512 without VNNI, as on Skylake-X), which calibrates with `Int8WeightRule.pairs16`;
# then a copy of that store without its features, resumed uncapped, recomputes them with the same
# calibration. Prints how many feature rows are bit-identical.
# Under pairs16 no 16-bit pair sum can overflow, so on a CPU with AVX-512 they should all be equal
# (a saturating sum, or a rounding that differs between kernels, would show here).
#
# Usage: tools/bench/int8_isa_agreement.sh [--data DIR] [--per-class N] [--backbone B] [--weights FILE]
#                                          [--isa AVX512_CORE|AVX2] [--no-build]
# (--per-class N: only the first N files, by name, of each class folder of DIR/train, linked into a
#  temporary folder: a quicker run for the slower backbones)
# (--weights: any file of the backbone's format, e.g. the generated ones of tools/goldens/experiment.py:
#  agreement needs no trained weights)
# Env:   PYTHON  interpreter with numpy (default /work/venv/bin/python if present, else python3);
#        BIN_DIR another build folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/datasets/scenes6"; BACKBONE=efficientnet_lite0; ISA=AVX512_CORE; BUILD=1; WEIGHTS=(); PER_CLASS=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --backbone) BACKBONE="$2"; shift 2 ;;
        --isa) ISA="$2"; shift 2 ;;
        --per-class) PER_CLASS="$2"; shift 2 ;;
        --weights) WEIGHTS=(--weights "$2"); shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "int8_isa_agreement.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
source "$ROOT/tools/bench/common.sh"
bench_setup
bench_python PYTHON /work/venv
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
if [[ -n "$PER_CLASS" ]]; then
    for class in "$DATA"/train/*/; do
        mkdir -p "$TMP/data/$(basename "$class")"
        files=("$class"*)
        for f in "${files[@]:0:$PER_CLASS}"; do ln -s "$f" "$TMP/data/$(basename "$class")/"; done
    done
    DATA="$TMP/data"
fi
echo "== extract --backbone $BACKBONE --precision int8 with ONEDNN_MAX_CPU_ISA=$ISA"
ONEDNN_MAX_CPU_ISA="$ISA" "$BIN/extract" --backbone "$BACKBONE" "${WEIGHTS[@]}" --data "$DATA" --store "$TMP/capped.sqlite" --precision int8 --quiet
cp "$TMP/capped.sqlite" "$TMP/own.sqlite"
"$PYTHON" -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM features"); db.commit()' "$TMP/own.sqlite"
echo "== the same calibration, resumed on this CPU's own kernels (${ONEDNN_MAX_CPU_ISA:-uncapped})"
"$BIN/extract" --backbone "$BACKBONE" "${WEIGHTS[@]}" --data "$DATA" --store "$TMP/own.sqlite" --precision int8
"$PYTHON" - "$TMP/capped.sqlite" "$TMP/own.sqlite" <<'PYEOF'
import sqlite3, sys
import numpy as np
def load(path):
    db = sqlite3.connect(path)
    rule = db.execute("SELECT precision FROM extractions").fetchone()[0]
    rows = db.execute("SELECT image_id, aug_index, vector FROM features").fetchall()
    return rule, {(i, a): np.frombuffer(v, dtype=np.uint8) for i, a, v in rows}
rule, a = load(sys.argv[1])
_, b = load(sys.argv[2])
assert a.keys() == b.keys(), "different rows"
same = sum(1 for k in a if np.array_equal(a[k], b[k]))
pairs = '"weightRule":"pairs16"' in rule
print("calibration weight rule:", "pairs16" if pairs else "full")
print(f"feature rows bit-identical: {same} of {len(a)}")
PYEOF
