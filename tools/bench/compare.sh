#!/usr/bin/env bash
# Throughput of our extractor vs the ONNX Runtime peer on the same backbone, batch and thread count.
#
# Usage: tools/bench/compare.sh [--backbone efficientnet_lite0] [--batch 16] [--seconds 20] [--no-build]
# Env:   PYTHON  interpreter with torch + onnxruntime + efficientnet-lite-pytorch
#                (default /work/venv-ref/bin/python if present, else python3)
#
# Runs `swift build -c release` in the repo root, then
#   .build/release/extract bench --backbone B --batch N --json
#   $PYTHON tools/bench/peer_ort.py --backbone B --batch N --seconds S
# one after the other (never at the same time: they would share the 2 cores), and prints both
# JSON results and the ratio ours/peer of their "images_per_second" fields (> 1 means we are faster).
# Both sides measure preprocessed float batch -> pooled feature vector with 2 intra-op threads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BACKBONE=efficientnet_lite0
BATCH=16
SECONDS_ARG=20
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backbone) BACKBONE="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --seconds) SECONDS_ARG="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /work/venv-ref/bin/python ]]; then PYTHON=/work/venv-ref/bin/python; else PYTHON=python3; fi
fi

cd "$ROOT"
if [[ "$BUILD" == 1 ]]; then
    echo "== swift build -c release" >&2
    swift build -c release >&2
fi
if [[ ! -x .build/release/extract ]]; then
    echo "compare.sh: .build/release/extract not found; run 'swift build -c release' in $ROOT" >&2
    exit 1
fi

echo "== ours: extract bench --backbone $BACKBONE --batch $BATCH --json" >&2
OURS_JSON="$(.build/release/extract bench --backbone "$BACKBONE" --batch "$BATCH" --json)"
echo "== peer: peer_ort.py --backbone $BACKBONE --batch $BATCH --seconds $SECONDS_ARG" >&2
PEER_JSON="$("$PYTHON" tools/bench/peer_ort.py --backbone "$BACKBONE" --batch "$BATCH" --seconds "$SECONDS_ARG")"

"$PYTHON" - "$OURS_JSON" "$PEER_JSON" <<'EOF'
import json, sys

def parse(label, text):
    """Whole output as JSON, else the last line that is a JSON object (tolerates log lines)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    sys.exit(f"compare.sh: no JSON object in the {label} output:\n{text}")

ours, peer = parse("ours", sys.argv[1]), parse("peer", sys.argv[2])
for label, d in (("ours", ours), ("peer", peer)):
    if not isinstance(d.get("images_per_second"), (int, float)) or d["images_per_second"] <= 0:
        sys.exit(f"compare.sh: {label} JSON lacks a positive images_per_second: {d}")
print(json.dumps({"ours": ours, "peer": peer}))
ratio = ours["images_per_second"] / peer["images_per_second"]
print(f"ours {ours['images_per_second']:.2f} img/s, {peer['peer']} {peer['images_per_second']:.2f} img/s, "
      f"ratio ours/peer = {ratio:.3f}")
EOF
