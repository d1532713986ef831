#!/usr/bin/env python3
"""Fixture for `train-head export --format safetensors` (Tests/HeadTrainerTests/ExportTests.swift).

Run (not in CI; needs torch and safetensors):
  train-head --store S --backbone efficientnet_lite0 --hidden 8          # a small head, id H
  train-head export --store S --head H --out /tmp/head.safetensors
  /work/venv/bin/python tools/goldens/export_head.py S H /tmp/head.safetensors

Writes into Tests/HeadTrainerTests/Fixtures/export/:
  head.bin              the head as the store keeps it (HEADWTS1 blob, heads.weights)
  head.safetensors      the exported file, and head.json its sidecar
  features.safetensors  copy 0 of 4 test images' stored features ("features", float32 [4, dim])
  expected.json         probabilities PyTorch computes from head.safetensors + head.json on those
                        features, with the README's snippet (the function `apply` below)
"""
import json
import os
import shutil
import sqlite3
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "HeadTrainerTests", "Fixtures", "export")


def apply(t, meta, x):
    """README's snippet: the exported head on pooled features x [n, dim] -> probabilities [n, classes]."""
    for layer in meta["layers"]:
        n, kind = layer["name"], layer["kind"]
        if kind == "batchnorm1d":
            x = torch.nn.functional.batch_norm(x, t[n + ".running_mean"], t[n + ".running_var"],
                                               t[n + ".weight"], t[n + ".bias"], False, 0.0, layer["eps"])
        elif kind == "linear":
            x = torch.nn.functional.linear(x, t[n + ".weight"], t[n + ".bias"])
        elif kind == "relu":
            x = torch.relu(x)
        elif kind == "softmax":
            x = torch.softmax(x / meta["temperature"], dim=1)
    return x


def main():
    store, head_id, exported = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(OUT, exist_ok=True)
    db = sqlite3.connect(store)
    blob, extraction = db.execute("SELECT weights, extraction_id FROM heads WHERE id = ?", (head_id,)).fetchone()
    open(os.path.join(OUT, "head.bin"), "wb").write(blob)
    shutil.copy(exported, os.path.join(OUT, "head.safetensors"))
    shutil.copy(os.path.splitext(exported)[0] + ".json", os.path.join(OUT, "head.json"))
    rows = db.execute("""SELECT f.vector FROM features f JOIN images i ON i.id = f.image_id
                         WHERE f.extraction_id = ? AND f.aug_index = 0 AND i.split = 'test' ORDER BY i.id LIMIT 4""",
                      (extraction,)).fetchall()
    x = torch.from_numpy(np.stack([np.frombuffer(r[0], dtype="<f4") for r in rows]).copy())
    save_file({"features": x}, os.path.join(OUT, "features.safetensors"))
    meta = json.load(open(os.path.join(OUT, "head.json")))
    probs = apply(load_file(os.path.join(OUT, "head.safetensors")), meta, x)
    json.dump({"torch": torch.__version__, "probabilities": probs.tolist()}, open(os.path.join(OUT, "expected.json"), "w"), indent=1)
    print(probs)


if __name__ == "__main__":
    main()
