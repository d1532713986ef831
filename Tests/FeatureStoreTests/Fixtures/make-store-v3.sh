#!/bin/sh
# Writes store-v3.sqlite: a small feature store written by the tools as they were before the store
# moved to GRDB (schema version 3, commit 1ef804b), so StoreCompatibilityTests can check that a
# store written then still opens, resumes with nothing recomputed, and merges.
#
# usage: make-store-v3.sh EXTRACT TRAIN_HEAD   (the `extract` and `train-head` binaries of 1ef804b)
#
# The dataset is /tmp/fsfixture/data (its root path is recorded in the store): two classes of
# scenes6 (2 train + 1 test images each) and one file that is not an image (a recorded failure).
# Two extractions of efficientnet_lite0 (f32 with one augmented copy; f16 center-crop) and one head.
# expected.json holds the old tools' view of it: `store info` and the sha256 of each exported file.
set -eu
EXTRACT=$1 TRAIN_HEAD=$2
HERE=$(cd "$(dirname "$0")" && pwd)
SCENES=${SCENES:-$HERE/../../../../shared/datasets/scenes6}
rm -rf /tmp/fsfixture && mkdir -p /tmp/fsfixture/data
for split in train test; do
    n=2; [ "$split" = test ] && n=1
    for c in forest sea; do
        mkdir -p "/tmp/fsfixture/data/$split/$c"
        ls "$SCENES/$split/$c" | sort | head -n "$n" | while read -r f; do cp "$SCENES/$split/$c/$f" "/tmp/fsfixture/data/$split/$c/"; done
    done
done
printf 'not a jpeg' > /tmp/fsfixture/data/train/sea/broken.jpg
S=/tmp/fsfixture/store.sqlite
"$EXTRACT" --backbone efficientnet_lite0 --data /tmp/fsfixture/data --store $S --augment 1 --quiet --json > /dev/null
"$EXTRACT" --backbone efficientnet_lite0 --data /tmp/fsfixture/data --store $S --dtype f16 --fit center-crop --quiet --json > /dev/null
"$TRAIN_HEAD" --store $S --extraction 1 --hidden 4 --epochs 2 --json > /dev/null
"$EXTRACT" store vacuum $S
cp $S "$HERE/store-v3.sqlite"
{
    printf '{"info": '
    "$EXTRACT" store info $S --json
    for e in 1 2; do
        "$EXTRACT" store export --store $S --extraction $e --out /tmp/fsfixture/export$e > /dev/null
        printf ', "export%s": {' $e
        sep=''
        for f in features.npy labels.npy images.csv classes.json; do
            printf '%s"%s": "%s"' "$sep" $f "$(sha256sum /tmp/fsfixture/export$e/$f | cut -d' ' -f1)"
            sep=', '
        done
        printf '}'
    done
    printf '}\n'
} > "$HERE/expected.json"
