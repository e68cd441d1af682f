"""Ridge readouts with per-target regularisation chosen by cross-validation (himalaya).

The readout maps features ``X`` (N x F) to responses ``Y`` (N x T)::

    Y_hat = ((X - mean) / scale) @ coef + intercept

where ``mean`` and ``scale`` are training statistics of the features (standardisation) and
``coef`` (F x T), ``intercept`` (T,) solve, for each target t, the ridge problem

    min_w ||y_t - X_std w - b_t||^2 + alpha_t ||w||^2

with ``alpha_t`` picked from a grid by K-fold cross-validation on the training data (each fold
fits its own intercept, i.e. centres with its own training-fold means). himalaya solves all
targets and alphas at once from one SVD (primal, N >= F) or one kernel eigendecomposition
(dual, N < F) per fold, on the torch backend (CUDA when available).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from brainprobe.encoding._backend import backend_name, himalaya_backend
from brainprobe.errors import DataError

DEFAULT_ALPHAS: np.ndarray = np.logspace(-2, 8, 21)
"""Default alpha grid: 21 values, log-spaced from 1e-2 to 1e8 (features are standardised)."""

Score = Literal["mse", "r2", "r"]


def _score_func(score: Score) -> Any:
    from himalaya.scoring import correlation_score, l2_neg_loss, r2_score

    funcs = {"mse": l2_neg_loss, "r2": r2_score, "r": correlation_score}
    if score not in funcs:
        raise DataError(f"ridge score {score!r} is unknown; use one of {sorted(funcs)}")
    return funcs[score]


def make_cv(cv: int | Any, n_samples: int, seed: int = 0) -> Any:
    """A scikit-learn splitter: ``KFold(cv, shuffle=True, random_state=seed)`` for an int.

    Raises
    ------
    DataError
        ``cv`` < 2, or fewer training samples than folds.
    """
    from sklearn.model_selection import KFold

    if isinstance(cv, (int, np.integer)):
        if cv < 2:
            raise DataError(f"cv={cv}: cross-validation needs at least 2 folds; pass cv >= 2")
        if n_samples < cv:
            raise DataError(
                f"only {n_samples} training images for {cv}-fold cross-validation; "
                f"use fewer folds (cv <= {n_samples}) or more training images"
            )
        return KFold(n_splits=int(cv), shuffle=True, random_state=seed)
    n_splits = cv.get_n_splits()
    if n_samples < n_splits:
        raise DataError(
            f"only {n_samples} training images for {n_splits} cross-validation folds; "
            "use fewer folds or more training images"
        )
    return cv


@dataclass
class RidgeReadout:
    """A fitted ridge readout (all arrays float64 numpy).

    Attributes
    ----------
    coef : (F, T) ridge weights on standardised features.
    intercept : (T,) intercepts.
    x_mean, x_scale : (F,) training mean and standard deviation of the features (scale 1 for
        constant features, which stay zero after centring; without standardisation, scale 1 and
        mean the training mean when an intercept is fitted, else 0).
    alphas : (T,) regularisation chosen for each target.
    cv_scores : (T,) cross-validated score at the chosen alpha, mean over folds (``score``).
    score : the CV score that chose the alphas: ``"mse"`` (negative mean squared error),
        ``"r2"`` or ``"r"`` (Pearson correlation).
    solver : ``"ridge"`` (primal SVD) or ``"kernel_ridge"`` (linear kernel, dual).
    settings : dict of how it was fitted (alpha grid, folds, backend, dtype, seed).
    """

    coef: np.ndarray
    intercept: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    alphas: np.ndarray
    cv_scores: np.ndarray
    score: str
    solver: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.coef.shape[0]

    @property
    def n_targets(self) -> int:
        return self.coef.shape[1]

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights and bias on raw features: ``Y_hat = X @ W + b``; W (F, T), b (T,)."""
        weight = self.coef / self.x_scale[:, None]
        bias = self.intercept - (self.x_mean / self.x_scale) @ self.coef
        return weight, bias

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted responses (N x T, float64) for raw features X (N x F)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(f"features must be N x {self.n_features}, got shape {X.shape}")
        return ((X - self.x_mean) / self.x_scale) @ self.coef + self.intercept


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) of each column of X (N x F); zero std -> 1."""
    X64 = np.asarray(X, dtype=np.float64)
    mean = X64.mean(0)
    scale = X64.std(0)
    scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
    return mean, scale


def fit_ridge(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    alphas: np.ndarray | list[float] | None = None,
    cv: int | Any = 5,
    standardize: bool = True,
    fit_intercept: bool = True,
    score: Score = "mse",
    solver: Literal["auto", "ridge", "kernel_ridge"] = "auto",
    dtype: Literal["float32", "float64"] = "float32",
    device: str | torch.device | None = None,
    n_targets_batch: int | None = None,
    seed: int = 0,
) -> RidgeReadout:
    """Fit a ridge readout with a per-target alpha chosen by K-fold cross-validation.

    Parameters
    ----------
    X : (N, F) training features.
    Y : (N, T) training responses.
    alphas : alpha grid (positive); default :data:`DEFAULT_ALPHAS`.
    cv : number of folds (``KFold(shuffle=True, random_state=seed)``) or a scikit-learn
        splitter, e.g. ``KFold(N)`` for leave-one-out.
    standardize : z-score features with their training mean and std before the ridge.
    fit_intercept : fit an unpenalised intercept (per fold during CV, and in the refit).
    score : CV score that picks the alphas: ``"mse"`` (as scikit-learn's RidgeCV), ``"r2"``, ``"r"``.
    solver : ``"auto"`` uses kernel ridge (linear kernel) when N < F, else primal ridge.
    dtype : precision of the solve.
    device : torch device of the solve; default CUDA when available, else CPU.
    n_targets_batch : targets per batch (memory); default all at once.
    seed : seeds the fold shuffling when ``cv`` is an int.

    Returns
    -------
    RidgeReadout
    """
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise DataError(f"ridge needs X (N x F) and Y (N x T) with the same N; got {X.shape} and {Y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise DataError("features or responses contain NaN or inf; remove or impute them before fitting")
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or len(alphas) == 0 or not (alphas > 0).all():
        raise DataError(f"alphas must be a non-empty 1-D grid of positive values, got {alphas!r}")
    alphas = np.sort(alphas)
    n, f = X.shape
    splitter = make_cv(cv, n, seed)
    if standardize:
        x_mean, x_scale = standardization(X)
    else:
        x_scale = np.ones(f)
        # with an intercept, centring changes nothing mathematically but keeps float32 kernels accurate
        x_mean = np.asarray(X, dtype=np.float64).mean(0) if fit_intercept else np.zeros(f)
    Xs = ((np.asarray(X, dtype=np.float64) - x_mean) / x_scale).astype(dtype)
    Ys = Y.astype(dtype)
    use_kernel = solver == "kernel_ridge" or (solver == "auto" and n < f)
    params: dict[str, Any] = {"score_func": _score_func(score), "n_targets_batch": n_targets_batch}
    name = backend_name(device)
    with himalaya_backend(name) as backend:
        if use_kernel:
            model = KernelRidgeCV(
                alphas=alphas, kernel="linear", fit_intercept=fit_intercept, cv=splitter,
                solver_params=params, warn=False,
            )
        else:
            model = RidgeCV(alphas=alphas, fit_intercept=fit_intercept, cv=splitter, solver_params=params)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*slower than solving.*", category=UserWarning)
            model.fit(Xs, Ys)
        if use_kernel:
            coef = _to_numpy(backend.to_cpu(model.X_fit_)).T @ _to_numpy(model.dual_coef_)
        else:
            coef = _to_numpy(model.coef_)
        intercept = _to_numpy(model.intercept_) if fit_intercept else np.zeros(Y.shape[1])
        best_alphas = _to_numpy(model.best_alphas_)
        cv_scores = _to_numpy(model.cv_scores_)
    return RidgeReadout(
        coef=coef.reshape(f, -1),
        intercept=intercept.reshape(-1),
        x_mean=x_mean,
        x_scale=x_scale,
        alphas=best_alphas.reshape(-1),
        cv_scores=cv_scores.reshape(-1),
        score=score,
        solver="kernel_ridge" if use_kernel else "ridge",
        settings={
            "alphas": alphas.tolist(),
            "cv": repr(splitter),
            "standardize": standardize,
            "fit_intercept": fit_intercept,
            "backend": name,
            "dtype": dtype,
            "seed": seed,
        },
    )
