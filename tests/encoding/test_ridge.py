"""Ridge readouts against scikit-learn: same alpha -> same predictions; LOO -> same per-target alphas."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold

from brainprobe.encoding.ridge import fit_ridge, make_cv, standardization
from brainprobe.errors import DataError


def _data(n: int, f: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features with uneven scales and offsets; targets with very different noise levels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) * rng.uniform(0.3, 4.0, f) + rng.normal(size=f) * 3
    W = rng.normal(size=(f, t))
    signal = X @ W
    noise = rng.normal(size=(n, t)) * signal.std(0) * np.geomspace(0.1, 10, t)
    return X, signal + noise + rng.normal(size=t) * 5


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("n,f", [(150, 40), (40, 120)], ids=["primal", "kernel"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype,alpha,tol", [("float64", 0.1, 1e-6), ("float64", 30.0, 1e-6), ("float32", 1.0, 1e-3), ("float32", 300.0, 1e-3)])
def test_predictions_equal_sklearn_ridge(n, f, fit_intercept, dtype, alpha, tol):
    X, Y = _data(n, f, 6)
    Xtest, _ = _data(30, f, 6, seed=1)
    ours = fit_ridge(X, Y, alphas=[alpha], cv=3, standardize=False, fit_intercept=fit_intercept, dtype=dtype, device="cpu")
    assert ours.solver == ("ridge" if n >= f else "kernel_ridge")
    ref = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd").fit(X, Y)
    assert _rel(ours.predict(Xtest), ref.predict(Xtest)) < tol
    assert np.allclose(ours.alphas, alpha)


@pytest.mark.parametrize("n,f", [(150, 40), (40, 120)], ids=["primal", "kernel"])
def test_standardisation_equals_sklearn_on_scaled_features(n, f):
    from sklearn.preprocessing import StandardScaler

    X, Y = _data(n, f, 4)
    X[:, 3] = 2.5  # a constant feature: kept at zero, not divided by zero
    ours = fit_ridge(X, Y, alphas=[10.0], cv=3, standardize=True, dtype="float64", device="cpu")
    scaler = StandardScaler().fit(X)
    ref = Ridge(alpha=10.0).fit(scaler.transform(X), Y)
    assert _rel(ours.predict(X), ref.predict(scaler.transform(X))) < 1e-6
    W, b = ours.folded()
    assert _rel(X @ W + b, ours.predict(X)) < 1e-10


@pytest.mark.parametrize("n,f", [(60, 15), (25, 60)], ids=["primal", "kernel"])
def test_per_target_alphas_equal_sklearn_loo(n, f):
    X, Y = _data(n, f, 12, seed=3)
    alphas = np.logspace(-3, 5, 17)
    ours = fit_ridge(X, Y, alphas=alphas, cv=KFold(n), standardize=False, dtype="float64", device="cpu")
    ref = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True).fit(X, Y)
    assert len(np.unique(ref.alpha_)) >= 3, "test data must make targets choose different alphas"
    np.testing.assert_allclose(ours.alphas, ref.alpha_, rtol=1e-12)
    assert _rel(ours.predict(X), ref.predict(X)) < 1e-6


def test_kfold_alphas_and_predictions_equal_sklearn_loop():
    """K-fold selection equals a scikit-learn Ridge loop over the same folds, alphas and score."""
    X, Y = _data(120, 30, 10, seed=5)
    alphas = np.logspace(-2, 4, 9)
    folds = KFold(5, shuffle=True, random_state=7)
    ours = fit_ridge(X, Y, alphas=alphas, cv=folds, standardize=False, dtype="float64", device="cpu")
    scores = np.zeros((5, len(alphas), Y.shape[1]))
    for i, (tr, va) in enumerate(folds.split(X)):
        for j, a in enumerate(alphas):
            pred = Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[va])
            scores[i, j] = -((Y[va] - pred) ** 2).mean(0)
    best = alphas[scores.mean(0).argmax(0)]
    np.testing.assert_allclose(ours.alphas, best, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_scores, scores.mean(0).max(0), rtol=1e-8)
    ref = np.column_stack([Ridge(alpha=a).fit(X, Y[:, t]).predict(X) for t, a in enumerate(best)])
    assert _rel(ours.predict(X), ref) < 1e-6


def test_int_cv_is_seeded_kfold():
    X, Y = _data(80, 10, 5)
    a = fit_ridge(X, Y, cv=4, seed=1, device="cpu", dtype="float64")
    b = fit_ridge(X, Y, cv=KFold(4, shuffle=True, random_state=1), seed=99, device="cpu", dtype="float64")
    np.testing.assert_array_equal(a.alphas, b.alphas)
    np.testing.assert_allclose(a.coef, b.coef)


def test_default_grid_and_settings_recorded():
    X, Y = _data(80, 10, 3)
    out = fit_ridge(X, Y, device="cpu")
    assert len(out.settings["alphas"]) == 21 and out.settings["backend"] == "torch"
    assert out.coef.shape == (10, 3) and out.intercept.shape == (3,) and out.cv_scores.shape == (3,)


def test_bad_inputs():
    X, Y = _data(4, 3, 2)
    with pytest.raises(DataError, match="only 4 training images for 5-fold"):
        fit_ridge(X, Y, cv=5)
    with pytest.raises(DataError, match="at least 2 folds"):
        make_cv(1, 10)
    with pytest.raises(DataError, match="positive"):
        fit_ridge(X, Y, alphas=[-1.0, 1.0], cv=2)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fit_ridge(Xn, Y, cv=2)
    with pytest.raises(DataError, match="same N"):
        fit_ridge(X, Y[:3], cv=2)
    with pytest.raises(DataError, match="score"):
        fit_ridge(X, Y, cv=2, score="auc")  # type: ignore[arg-type]


def test_standardization_constant_columns():
    X = np.column_stack([np.arange(5.0), np.full(5, 7.0)])
    mean, scale = standardization(X)
    np.testing.assert_allclose(mean, [2.0, 7.0])
    np.testing.assert_allclose(scale, [np.sqrt(2.0), 1.0])
