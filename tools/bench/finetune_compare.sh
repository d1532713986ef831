#!/usr/bin/env bash
# Fine-tuning speed, Swift (FineTuneBenchmark.run through the FineTuneTests entry point) against PyTorch
# (tools/bench/finetune_peer.py, NCHW and channels_last), measured alternately in one session.
#   tools/bench/finetune_compare.sh [rows] [rounds] [epochs]   (PYTHON defaults to /work/venv/bin/python)
# This goes through the test binary (both GEMM libraries in one run); build first with
#   swift build -c release -Xswiftc -enable-testing --build-tests   (BUILD=.build-dev for another scratch path)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1024}; rounds=${2:-2}; epochs=${3:-2}; py=${PYTHON:-/work/venv/bin/python}
bin=$(ls -d "${BUILD:-.build}"/release/*PackageTests.xctest | head -1)
for r in $(seq "$rounds"); do
  echo "== round $r"
  FINETUNE_BENCH_ROWS=$rows FINETUNE_BENCH_EPOCHS=$epochs "$bin" FineTuneTests.FineTuneBenchmarkTests/testBenchmarkEntryPoint 2>&1 | grep '^finetune'
  for b in 1 2; do
    "$py" tools/bench/finetune_peer.py --rows "$rows" --epochs "$epochs" --blocks "$b"
    "$py" tools/bench/finetune_peer.py --rows "$rows" --epochs "$epochs" --blocks "$b" --channels-last
  done
done
