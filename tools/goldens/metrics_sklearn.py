#!/usr/bin/env python3
"""Reference classification metrics from scikit-learn for the head trainer's tests.

Writes Tests/HeadTrainerTests/Fixtures/metrics_sklearn.json: several fixed (labels, probabilities)
cases with scikit-learn's accuracy, per-class/macro precision, recall, F1 (zero_division=0,
labels=all classes), one-vs-rest ROC AUC, log loss and confusion matrix. The Swift metrics must
match to 1e-6.

Probabilities lie on a 1/1024 grid so they are exact in float32 and float64 and every row sums to
exactly 1 (no renormalisation differences between Swift's Float input and numpy's float64).

Run (needs scikit-learn):  /work/venv-ref/bin/python tools/goldens/metrics_sklearn.py
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.metrics import (accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support,
                             roc_auc_score)

GRID = 1024


def grid_probs(rng, n, k, sharp, truth=None, boost=0.0):
    """Random rows of k integers summing to GRID (Dirichlet-shaped), optionally favouring truth."""
    out = np.zeros((n, k), dtype=np.int64)
    for i in range(n):
        a = rng.dirichlet(np.full(k, sharp))
        if truth is not None and boost > 0:
            a = a * (1 - boost)
            a[truth[i]] += boost
        q = np.floor(a * GRID).astype(np.int64)
        q[np.argmax(a)] += GRID - q.sum()
        out[i] = q
    return out


def case(name, labels, counts, class_names, note=""):
    k = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    probs = counts.astype(np.float64) / GRID
    assert np.all(counts.sum(axis=1) == GRID)
    pred = probs.argmax(axis=1)
    all_labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=all_labels, zero_division=0, average=None)
    mp, mr, mf, _ = precision_recall_fscore_support(labels, pred, labels=all_labels, zero_division=0, average="macro")
    per_auc = []
    for c in range(k):
        pos = labels == c
        per_auc.append(float(roc_auc_score(pos, probs[:, c])) if 0 < pos.sum() < len(labels) else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if k == 2:   # sklearn's binary form: the positive class's column
                raw = roc_auc_score(labels, probs[:, 1])
            else:
                raw = roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=all_labels)
            raw = None if math.isnan(raw) else float(raw)
            raw_note = "ok" if raw is not None else "nan"
        except ValueError as e:
            raw, raw_note = None, f"ValueError: {e}"
    defined = [a for a in per_auc if a is not None]
    return {
        "name": name,
        "note": note,
        "class_names": class_names,
        "labels": labels.tolist(),
        # Integers on the 1/1024 grid; probability = value / 1024.
        "probability_numerators": counts.tolist(),
        "grid": GRID,
        "expected": {
            "accuracy": float(accuracy_score(labels, pred)),
            "macro_precision": float(mp),
            "macro_recall": float(mr),
            "macro_f1": float(mf),
            # The trainer's convention: mean of the per-class OvR AUCs that are defined.
            "macro_auc": (sum(defined) / len(defined)) if defined else None,
            # What roc_auc_score(multi_class="ovr", average="macro", labels=all) itself returns.
            "sklearn_macro_auc": raw,
            "sklearn_macro_auc_note": raw_note,
            "log_loss": float(log_loss(labels, probs, labels=all_labels)),
            "per_class": [
                {"class": class_names[c], "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]),
                 "support": int(s[c]), "auc": per_auc[c]}
                for c in range(k)
            ],
            "confusion": confusion_matrix(labels, pred, labels=all_labels).tolist(),
        },
    }


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "Tests/HeadTrainerTests/Fixtures/metrics_sklearn.json")
    rng = np.random.default_rng(20240601)
    names6 = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
    cases = []

    # 1. Ordinary six-class predictions, mostly right.
    y = rng.integers(0, 6, 80)
    cases.append(case("six_classes_typical", y, grid_probs(rng, 80, 6, 0.7, y, 0.3), names6))

    # 2. A class (2) that is never predicted: its precision is 0 by zero_division=0.
    y = rng.integers(0, 6, 60)
    c = grid_probs(rng, 60, 6, 1.0, y, 0.4)
    for i in range(60):
        if c[i].argmax() == 2:
            j = 3 if c[i, 3] <= c[i, 1] else 1   # move class 2's mass elsewhere
            c[i, 0 if j == 2 else j] += c[i, 2] - 1; c[i, 2] = 1
    assert not np.any(c.argmax(axis=1) == 2)
    cases.append(case("class_never_predicted", y, c, names6, "class 2 never predicted"))

    # 3. A class (4) absent from the split (still predicted sometimes) and a class (5) absent and never predicted.
    y = rng.choice([0, 1, 2, 3], 50)
    c = grid_probs(rng, 50, 6, 0.8, y, 0.3)
    for i in range(50):
        if c[i].argmax() == 5:
            c[i, 0] += c[i, 5] - 2; c[i, 5] = 2
    c[0] = [10, 10, 10, 10, 974, 10]          # force at least one prediction of the absent class 4
    cases.append(case("classes_absent", y, c, names6, "classes 4 and 5 absent; 5 never predicted; sklearn macro AUC is nan"))

    # 4. Coarse probabilities with many ties, including a zero probability on the true class (log-loss clipping).
    y = rng.integers(0, 3, 40)
    c = np.zeros((40, 3), dtype=np.int64)
    for i in range(40):
        a = rng.integers(0, 4, 3); a[rng.integers(0, 3)] += 1
        q = (a * (GRID // a.sum())).astype(np.int64); q[np.argmax(a)] += GRID - q.sum()
        c[i] = q
    c[1] = [GRID, 0, 0]; y[1] = 2                 # true class has probability 0
    cases.append(case("ties_and_zero_probability", y, c, ["a", "b", "c"], "ties everywhere; row 1 has p_true = 0"))

    # 5. Two classes.
    y = rng.integers(0, 2, 30)
    c = grid_probs(rng, 30, 2, 1.0, y, 0.2)
    cases.append(case("two_classes", y, c, ["neg", "pos"]))

    with open(out, "w") as fh:
        json.dump({"generator": "tools/goldens/metrics_sklearn.py", "sklearn_version": sklearn.__version__,
                   "numpy_version": np.__version__, "cases": cases}, fh, indent=1)
        fh.write("\n")
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
