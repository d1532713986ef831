#!/usr/bin/env python3
"""Reference calibration and ranking-curve numbers for the head trainer's tests.

Writes Tests/HeadTrainerTests/Fixtures/calibration_sklearn.json with, for the probability cases of
metrics_sklearn.py (same generator and seed, so the same rows):
  - expected calibration error over 15 equal-width bins (lo, hi] of the max probability (NumPy), and
    the bins' counts, mean confidence and accuracy;
  - per class one-vs-rest: scikit-learn's average_precision_score, roc_auc_score and roc_curve
    (drop_intermediate=False) points;
  - the temperature T minimizing the mean NLL of softmax(log(p) / T) (scipy minimize_scalar on log T,
    cross-checked by Newton's method on 1/T), and the ECE of the rescaled probabilities;
and temperature fits on a few logit matrices (over- and under-confident). Swift must match ECE and
AP to 1e-6, T to 1e-4.

Run (needs scikit-learn, scipy):  /work/venv/bin/python tools/goldens/calibration_sklearn.py
"""
import json
import os
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_sklearn  # noqa: E402  (the probability cases)

BINS = 15
T_LOW, T_HIGH = 0.01, 100.0


def reliability(probs, labels):
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, BINS + 1)
    bins, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        n = int(m.sum())
        c = float(conf[m].mean()) if n else 0.0
        a = float(correct[m].mean()) if n else 0.0
        ece += abs(a - c) * n
        bins.append({"count": n, "confidence": c, "accuracy": a})
    return bins, ece / len(labels)


def nll(logits, labels, t):
    z = logits / t
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels):
    r = minimize_scalar(lambda u: nll(logits, labels, np.exp(u)), bounds=(np.log(T_LOW), np.log(T_HIGH)),
                        method="bounded", options={"xatol": 1e-12, "maxiter": 500})
    t = float(np.exp(r.x))
    # Newton on b = 1/T: d/db NLL = mean(E_p[z] - z_y), d2/db2 = mean(Var_p(z)) (convex).
    b = 1.0 / t
    for _ in range(50):
        p = softmax(logits * b, axis=1)
        ez = (p * logits).sum(axis=1)
        g = np.mean(ez - logits[np.arange(len(labels)), labels])
        h = np.mean((p * logits ** 2).sum(axis=1) - ez ** 2)
        b -= g / h
    if T_LOW < t < T_HIGH * 0.999:
        assert abs(1.0 / b - t) < 1e-7 * t, (t, 1.0 / b)
    return t


def probability_case(c):
    k = len(c["class_names"])
    labels = np.asarray(c["labels"], dtype=np.int64)
    probs = np.asarray(c["probability_numerators"], dtype=np.float64) / c["grid"]
    bins, ece = reliability(probs, labels)
    per_class = []
    for j in range(k):
        pos = labels == j
        entry = {"class": c["class_names"][j], "average_precision": None, "auc": None, "roc": None}
        if 0 < pos.sum() < len(labels):
            fpr, tpr, _ = roc_curve(pos, probs[:, j], drop_intermediate=False)
            entry.update(average_precision=float(average_precision_score(pos, probs[:, j])),
                         auc=float(roc_auc_score(pos, probs[:, j])),
                         roc={"fpr": fpr.tolist(), "tpr": tpr.tolist()})
        per_class.append(entry)
    out = {"name": c["name"], "class_names": c["class_names"], "labels": c["labels"],
           "probability_numerators": c["probability_numerators"], "grid": c["grid"],
           "ece": ece, "bins": bins, "per_class": per_class}
    # Logits as the trainer recovers them: log(p), a zero floored at float32's smallest normal.
    logits = np.log(np.maximum(probs, np.finfo(np.float32).tiny))
    t = fit_temperature(logits, labels)
    scaled = softmax(logits / t, axis=1).astype(np.float32).astype(np.float64)
    out["temperature"] = t
    out["ece_calibrated"] = reliability(scaled, labels)[1]
    return out


def logit_case(name, rng, n, k, scale, boost):
    labels = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), labels] += boost
    z = np.round(z * scale * 64) / 64          # exact in binary
    return {"name": name, "labels": labels.tolist(), "classes": k, "logits": z.tolist(),
            "temperature": fit_temperature(z, labels)}


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "Tests/HeadTrainerTests/Fixtures/calibration_sklearn.json")
    tmp = out + ".metrics.tmp"
    argv, sys.argv = sys.argv, [sys.argv[0], tmp]   # metrics_sklearn.main() writes to argv[1]
    metrics_sklearn.main()
    sys.argv = argv
    with open(tmp) as fh:
        cases = json.load(fh)["cases"]
    os.remove(tmp)
    rng = np.random.default_rng(20261129)
    logit_cases = [
        logit_case("overconfident", rng, 300, 6, 4.0, 1.5),      # T > 1
        logit_case("underconfident", rng, 300, 6, 0.3, 2.0),     # T < 1
        logit_case("three_classes", rng, 120, 3, 1.0, 1.0),
    ]
    with open(out, "w") as fh:
        json.dump({"generator": "tools/goldens/calibration_sklearn.py", "bins": BINS,
                   "sklearn_version": sklearn.__version__, "scipy_version": scipy.__version__, "numpy_version": np.__version__,
                   "probability_cases": [probability_case(c) for c in cases], "logit_cases": logit_cases}, fh)
        fh.write("\n")
    print(f"wrote {out} ({len(cases)} probability cases, {len(logit_cases)} logit cases)")


if __name__ == "__main__":
    main()
