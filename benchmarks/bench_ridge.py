"""Ridge readout speed: brainprobe (himalaya, torch backend) against scikit-learn references.

Same data for all three: 1000 training images x 2000 features x 5000 targets (plus 200 test
images), 10 alphas, 5 folds.

* ``ours_s``: ``brainprobe.encoding.ridge.fit_ridge`` (standardise, K-fold per-target alpha,
  refit), float32, himalaya's torch backend.
* ``sklearn_loop_s``: the like-for-like reference: a scikit-learn ``Ridge`` loop over the same
  folds and alphas with the same score (mean over folds of the validation MSE), the best alpha
  per target, and a refit per selected alpha on all training images.
* ``sklearn_gcv_s``: scikit-learn's leave-one-out ``RidgeCV(alpha_per_target=True)`` for context
  (a different CV scheme, so its predictions are not compared).

``speedup`` = sklearn_loop_s / ours_s; ``max_rel_diff`` = over targets, the largest absolute
difference of test predictions divided by the largest absolute reference prediction of that
target (ours against the loop). Prints one JSON line.

Usage: ``python benchmarks/bench_ridge.py [--threads 2] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def make_data(n_train: int, n_test: int, n_features: int, n_targets: int, seed: int = 0):
    """Correlated features (low rank + noise) and responses with varied signal-to-noise ratios."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    latent = rng.normal(size=(n, 50))
    X = latent @ rng.normal(size=(50, n_features)) + 0.5 * rng.normal(size=(n, n_features))
    X = X * rng.uniform(0.2, 5.0, n_features) + rng.normal(size=n_features)
    weights = rng.normal(size=(n_features, n_targets)) * (rng.random((n_features, n_targets)) < 0.05)
    signal = X @ weights
    signal /= signal.std(0)
    noise_sd = rng.uniform(0.3, 5.0, n_targets)
    Y = signal + noise_sd * rng.normal(size=(n, n_targets)) + rng.normal(size=n_targets)
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def sklearn_loop(Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, alphas: np.ndarray, splitter) -> np.ndarray:
    """Ridge loop over folds x alphas, per-target best alpha by mean fold MSE, refit, predict."""
    from sklearn.linear_model import Ridge

    folds = list(splitter.split(Xtr))
    scores = np.zeros((len(folds), len(alphas), Ytr.shape[1]))
    for i, (train, val) in enumerate(folds):
        for j, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=True).fit(Xtr[train], Ytr[train])
            scores[i, j] = -((Ytr[val] - model.predict(Xtr[val])) ** 2).mean(0)
    best = scores.mean(0).argmax(0)
    pred = np.zeros((Xte.shape[0], Ytr.shape[1]))
    for j in np.unique(best):
        cols = np.flatnonzero(best == j)
        pred[:, cols] = Ridge(alpha=alphas[j], fit_intercept=True).fit(Xtr, Ytr[:, cols]).predict(Xte)
    return pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10x fewer targets (smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from threadpoolctl import threadpool_limits

    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    from brainprobe.encoding.ridge import fit_ridge

    n_train, n_test, n_features = 1000, 200, 2000
    n_targets = 500 if args.quick else 5000
    alphas = np.logspace(-1, 5, 10)
    Xtr, Ytr, Xte, _ = make_data(n_train, n_test, n_features, n_targets)
    splitter = KFold(5, shuffle=True, random_state=0)

    limiter = threadpool_limits(args.threads)  # BLAS threads of numpy/scikit-learn
    t0 = time.perf_counter()
    readout = fit_ridge(Xtr, Ytr, alphas=alphas, cv=splitter, dtype="float32", device="cpu")
    ours = readout.predict(Xte)
    ours_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(Xtr)
    Ztr, Zte = scaler.transform(Xtr), scaler.transform(Xte)
    loop = sklearn_loop(Ztr, Ytr, Zte, alphas, splitter)
    sklearn_loop_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True).fit(Ztr, Ytr).predict(Zte)
    sklearn_gcv_s = time.perf_counter() - t0
    limiter.restore_original_limits()

    rel = np.abs(ours - loop).max(0) / np.abs(loop).max(0)
    print(
        json.dumps(
            {
                "benchmark": "ridge",
                "ours_s": round(ours_s, 3),
                "sklearn_loop_s": round(sklearn_loop_s, 3),
                "sklearn_gcv_s": round(sklearn_gcv_s, 3),
                "speedup": round(sklearn_loop_s / ours_s, 2),
                "max_rel_diff": float(rel.max()),
                "n_train": n_train,
                "n_features": n_features,
                "n_targets": n_targets,
                "n_alphas": len(alphas),
                "n_folds": 5,
                "solver": readout.solver,
                "dtype": "float32",
                "threads": args.threads,
                "load_avg_1min": os.getloadavg()[0],
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
