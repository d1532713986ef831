#!/usr/bin/env python3
"""Peer timings for the head trainer: the same softmax head in Keras (TF-CPU) and PyTorch, and
scikit-learn LogisticRegression for the linear head. Prints one JSON object.

Head (the experiment's Keras head): BatchNormalization -> Dense(256, relu, l2(1e-4)) -> Dropout(0.2)
-> BatchNormalization -> Dense(classes, softmax); Adam(1e-4, eps 1e-7), batch 32, BN momentum 0.99 /
eps 1e-3 (PyTorch: momentum 0.01, eps 1e-3). Data: a rows x dim float32 matrix of ReLU6-like random
features (max(0, U(-0.6, 1.4))), labels i % classes -- the same distribution HeadBenchmark uses in
Swift. Timing = mean seconds per training epoch (no validation pass) after one warm-up epoch.

Each framework runs in its own interpreter (Keras and PyTorch live in different venvs):
  /work/venv-tf/bin/python  tools/bench/peer_heads.py keras   [--rows 11228 --dim 1280 --epochs 3 --threads 2]
  /work/venv-tf/bin/python  tools/bench/peer_heads.py keras-backbone [--images 256 --rows 8982 --epochs 1]
        (the experiment's way: frozen EfficientNetB0 inside the model, run on every image every epoch)
  /work/venv-ref/bin/python tools/bench/peer_heads.py torch   [...]
  /work/venv-ref/bin/python tools/bench/peer_heads.py sklearn --features train_x.npy --labels train_y.npy
        [--test-features test_x.npy --test-labels test_y.npy --val-rows val_rows.json --C 0.01]
  python3 tools/bench/peer_heads.py all   (runs keras and torch with the venvs above, prints both)

Setup: python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu keras;
       /work/venv-ref/bin/pip install torch scikit-learn
"""
import argparse
import json
import os
import subprocess
import sys
import time


def features(rows, dim, classes, seed=7):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = np.maximum(0.0, rng.random((rows, dim), dtype=np.float32) * 2 - 0.6).astype(np.float32)
    y = (np.arange(rows) % classes).astype(np.int64)
    return x, y


def keras_session(threads):
    """TensorFlow/Keras on `threads` threads with a fixed seed; returns (tf, keras)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(42)
    return tf, keras


def keras_head(keras, hidden, classes):
    """The experiment's head: BN -> Dense(hidden, relu, l2 1e-4) -> Dropout 0.2 -> BN -> softmax,
    or BN -> softmax (l2 1e-4) when hidden is 0."""
    if hidden > 0:
        return [keras.layers.BatchNormalization(),
                keras.layers.Dense(hidden, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4)),
                keras.layers.Dropout(0.2), keras.layers.BatchNormalization(),
                keras.layers.Dense(classes, activation="softmax")]
    return [keras.layers.BatchNormalization(),
            keras.layers.Dense(classes, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-4))]


def keras_timed_fit(keras, model, x, y, epochs):
    """Adam 1e-4, batch 32; fits one warm-up epoch plus `epochs` timed ones; returns every epoch's
    seconds (the first is the warm-up)."""
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
        def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=32, epochs=epochs + 1, shuffle=True, verbose=0, callbacks=[T()])
    return times


def bench_keras(a):
    tf, keras = keras_session(a.threads)
    x, y = features(a.rows, a.dim, a.classes)
    model = keras.Sequential([keras.Input((a.dim,))] + keras_head(keras, a.hidden, a.classes))
    times = keras_timed_fit(keras, model, x, y, a.epochs)
    return {"framework": "keras", "version": keras.__version__, "backend": "tensorflow " + tf.__version__,
            "epoch_seconds": times, "seconds_per_epoch": sum(times[1:]) / len(times[1:])}


def bench_keras_backbone(a):
    """The experiment's own way: the frozen backbone inside the Keras model, so every epoch runs it
    over every image. Keras EfficientNetB0 (the fastest of the experiment's four in Keras here),
    weights=None (same compute as the ImageNet weights), trainable=False, the head on its pooled
    features; images are 224x224x3 random 0-255 pixels. Times --images images per epoch after a
    warm-up epoch and reports seconds per image, and the epoch time scaled to --rows images."""
    import numpy as np
    tf, keras = keras_session(a.threads)
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(a.images, 224, 224, 3)).astype(np.float32)
    y = (np.arange(a.images) % a.classes).astype(np.int64)
    base = keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    base.trainable = False
    model = keras.Sequential([keras.Input((224, 224, 3)), base] + keras_head(keras, a.hidden, a.classes))
    times = keras_timed_fit(keras, model, x, y, a.epochs)
    per_image = sum(times[1:]) / len(times[1:]) / a.images
    return {"framework": "keras", "version": keras.__version__, "backend": "tensorflow " + tf.__version__,
            "backbone": "EfficientNetB0 (frozen, inside the model)", "images": a.images, "epoch_seconds": times,
            "seconds_per_image": per_image, "seconds_per_epoch_scaled": per_image * a.rows}


def bench_torch(a):
    import torch
    from torch import nn
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    x, y = features(a.rows, a.dim, a.classes)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    if a.hidden > 0:
        first = nn.Linear(a.dim, a.hidden)
        model = nn.Sequential(nn.BatchNorm1d(a.dim, eps=1e-3, momentum=0.01), first, nn.ReLU(), nn.Dropout(0.2),
                              nn.BatchNorm1d(a.hidden, eps=1e-3, momentum=0.01), nn.Linear(a.hidden, a.classes))
    else:
        first = nn.Linear(a.dim, a.classes)
        model = nn.Sequential(nn.BatchNorm1d(a.dim, eps=1e-3, momentum=0.01), first)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    lossf = nn.CrossEntropyLoss()
    times = []
    model.train()
    for _ in range(a.epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(a.rows)
        for i in range(0, a.rows, 32):
            idx = perm[i:i + 32]
            if len(idx) < 2:
                continue   # BatchNorm1d cannot train on one row
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x[idx]), y[idx]) + 1e-4 * first.weight.pow(2).sum()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return {"framework": "pytorch", "version": torch.__version__, "epoch_seconds": times,
            "seconds_per_epoch": sum(times[1:]) / len(times[1:])}


def bench_sklearn(a):
    """LogisticRegression(lbfgs) on standardized features: fit time and accuracies."""
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits
    if a.features:
        x = np.load(a.features).astype(np.float32); y = np.load(a.labels).astype(np.int64)
    else:
        x, y = features(a.rows, a.dim, a.classes)
    val = np.zeros(len(y), bool)
    if a.val_rows:
        val[json.load(open(a.val_rows))] = True
    out = {"framework": "sklearn", "version": sklearn.__version__, "C": a.C, "rows": int((~val).sum())}
    with threadpool_limits(a.threads):
        t = time.perf_counter()
        scaler = StandardScaler().fit(x[~val])
        clf = LogisticRegression(C=a.C, solver="lbfgs", max_iter=a.max_iter).fit(scaler.transform(x[~val]), y[~val])
        out["fit_seconds"] = time.perf_counter() - t
    out["n_iter"] = int(np.max(clf.n_iter_))
    out["train_accuracy"] = float(clf.score(scaler.transform(x[~val]), y[~val]))
    if val.any():
        out["val_accuracy"] = float(clf.score(scaler.transform(x[val]), y[val]))
    if a.test_features:
        xt = np.load(a.test_features).astype(np.float32); yt = np.load(a.test_labels).astype(np.int64)
        out["test_accuracy"] = float(clf.score(scaler.transform(xt), yt))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["keras", "keras-backbone", "torch", "sklearn", "all"])
    p.add_argument("--rows", type=int, default=11228)
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=256, help="keras-backbone: images per timed epoch")
    p.add_argument("--features"); p.add_argument("--labels")
    p.add_argument("--test-features"); p.add_argument("--test-labels")
    p.add_argument("--val-rows", help="JSON list of row indices held out for validation")
    p.add_argument("--C", type=float, default=0.01)
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--keras-python", default="/work/venv-tf/bin/python")
    p.add_argument("--torch-python", default="/work/venv-ref/bin/python")
    a = p.parse_args()
    common = dict(rows=a.rows, dim=a.dim, classes=a.classes, hidden=a.hidden, epochs=a.epochs, threads=a.threads)
    if a.which == "all":
        res = {}
        for name, py in [("keras", a.keras_python), ("torch", a.torch_python)]:
            args = [py, os.path.abspath(__file__), name] + sum([[f"--{k}", str(v)] for k, v in common.items()], [])
            res[name] = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(json.dumps({"config": common, "results": res}))
        return
    fn = {"keras": bench_keras, "keras-backbone": bench_keras_backbone, "torch": bench_torch, "sklearn": bench_sklearn}[a.which]
    r = fn(a)
    r["config"] = common
    print(json.dumps(r))


if __name__ == "__main__":
    main()
