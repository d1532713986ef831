#!/bin/sh
# Records, for each sweep file in tools/goldens/sweeps/, what `train-head trial-keys` prints (the
# sweep's canonical JSON, then every trial's key and canonical config) into NAME.keys beside it.
# Tests/CLITests/HeadSettingsTests.swift requires today's binary to print exactly these: a stored
# sweep resumes only if its trial keys and canonical JSON are unchanged. The .keys files were
# recorded with the code before the head settings table (issue #17); re-record only on purpose.
set -eu
cd "$(dirname "$0")/../.."
bin=${TRAIN_HEAD:-.build/release/train-head}
for f in tools/goldens/sweeps/*.yaml; do
    "$bin" trial-keys "$f" > "${f%.yaml}.keys"
done
