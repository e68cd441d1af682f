"""Discriminability: how well a per-image score separates candidate models (paired bootstrap, Holm)."""

from __future__ import annotations

import warnings
from typing import Any, Literal, Mapping

import numpy as np
import xarray as xr
from torch import nn

from brainprobe.analysis._common import as_images, boot_means, boot_weights, ci, forward, holm
from brainprobe.errors import ConfigError


def _as_matrix(name: str, score: Any) -> xr.DataArray:
    if isinstance(score, xr.DataArray):
        da = score
    else:
        try:
            import pandas as pd

            if isinstance(score, pd.DataFrame):
                da = xr.DataArray(score.to_numpy(float), dims=("model", "image"),
                                  coords={"model": [str(i) for i in score.index], "image": list(score.columns)})
            else:
                raise TypeError
        except TypeError:
            raise ConfigError(
                f"score {name!r} is a {type(score).__name__}; pass an xarray DataArray with dims (model, image) "
                "or a DataFrame with models as rows and images as columns"
            ) from None
    if set(da.dims) != {"model", "image"}:
        raise ConfigError(f"score {name!r} has dims {da.dims}; it must have exactly (model, image)")
    return da.transpose("model", "image").astype(float)


def discriminability(
    scores: Mapping[str, Any],
    *,
    alpha: float = 0.05,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
) -> xr.Dataset:
    """Fraction of model pairs each per-image score separates, on the same images.

    Every score is a model x image matrix over the SAME models and the SAME images (e.g.
    per-image predictivity and per-image sensitivity of each model); all scores are bootstrapped
    with the same resampled images, so the comparison between scores is not decided by sample
    size. Images where any score is not finite (e.g. a minimal budget never reached) are left out
    of all scores, with a warning.

    For each pair of models (a, b) the mean over images of the paired difference D = s_a - s_b is
    tested with a studentised paired bootstrap over images (bootstrap-t): t = mean(D) / se(D),
    t* = (mean*(D) - mean(D)) / se*(D) over resamples, p = (1 + #{|t*| >= |t|}) / (B + 1); it is
    better calibrated than the percentile test at small N.
    p-values are Holm-corrected over the M(M-1)/2 pairs of each score and compared with ``alpha``.
    At least 2 M(M-1)/2 / alpha resamples are drawn (more than ``n_boot`` if needed; attr
    ``n_boot``), so that the smallest attainable p-value, 1 / (B + 1), can pass Holm's first step.

    Parameters
    ----------
    scores : dict name -> DataArray (model, image) or DataFrame (models x images)
    alpha : float
        Family-wise error rate per score.
    n_boot, level, seed : bootstrap.

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``mean``, ``ci_low``, ``ci_high`` (score, model); ``diff``, ``p_value``, ``p_holm``,
        ``significant`` (score, model_a, model_b), symmetric, diagonal NaN / False;
        ``fraction_significant`` (score): share of the pairs significant after Holm;
        ``variance_ratio`` (score): between-model variance of the model means (ddof 1) over the
        mean within-model bootstrap variance of the model's mean relative to the mean of all
        models (about M / (M - 1) when models differ only by noise; large when scores separate);
        ``score_image`` (score, model, image): the scores used (images left out are dropped).
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ConfigError(
            "discriminability needs at least one score (dict name -> model x image matrix), got "
            f"{'an empty dict' if isinstance(scores, Mapping) else type(scores).__name__}"
        )
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    mats = {k: _as_matrix(k, v) for k, v in scores.items()}
    first_name, first = next(iter(mats.items()))
    for k, da in mats.items():
        if list(da["model"].values) != list(first["model"].values):
            raise ConfigError(f"score {k!r} has models {list(da['model'].values)}, {first_name!r} has "
                              f"{list(first['model'].values)}; give every score for the same models")
        if da.sizes["image"] != first.sizes["image"] or not np.array_equal(
            np.asarray(da["image"].values).astype(str), np.asarray(first["image"].values).astype(str)
        ):
            raise ConfigError(f"score {k!r} is not on the same images as {first_name!r}; discriminability compares "
                              "scores on the same images (compute them on one image set)")
    names = list(mats)
    models = [str(m) for m in first["model"].values]
    m = len(models)
    if m < 2:
        raise ConfigError("discriminability needs >= 2 models")
    s = np.stack([mats[k].to_numpy() for k in names])  # K x M x N
    keep = np.isfinite(s).all(axis=(0, 1))
    if not keep.all():
        warnings.warn(f"discriminability: left out {int((~keep).sum())} of {len(keep)} images with non-finite scores")
        s = s[..., keep]
    n = s.shape[-1]
    if n < 3:
        raise ConfigError(f"discriminability needs >= 3 images with finite scores, got {n}")
    n_pairs = m * (m - 1) // 2
    # the smallest bootstrap p-value is 1 / (B + 1); Holm's first step needs p < alpha / n_pairs
    b_eff = max(int(n_boot), int(np.ceil(2 * n_pairs / alpha)))
    w = boot_weights(n, b_eff, seed, groups=None if groups is None else np.asarray(groups, dtype=object)[keep])
    mean = s.mean(-1)  # K x M
    boot = boot_means(s, w)  # K x M x B
    lo, hi = ci(boot, level)
    diff = mean[:, :, None] - mean[:, None, :]  # K x M x M
    iu = np.triu_indices(m, 1)
    p = np.full((len(names), m, m), np.nan)
    p[:, iu[0], iu[1]] = _bootstrap_t_pvalues(s[:, iu[0]] - s[:, iu[1]], w)
    p[:, iu[1], iu[0]] = p[:, iu[0], iu[1]]
    p_holm_pairs = holm(p[:, iu[0], iu[1]])
    p_holm = np.full_like(p, np.nan)
    p_holm[:, iu[0], iu[1]] = p_holm_pairs
    p_holm[:, iu[1], iu[0]] = p_holm_pairs
    diag = np.eye(m, dtype=bool)
    sig = np.where(diag, False, p_holm < alpha)
    frac = (p_holm_pairs < alpha).mean(-1)
    between = mean.var(axis=1, ddof=1)
    centred = boot - boot.mean(axis=1, keepdims=True)
    within = centred.var(axis=-1, ddof=1).mean(axis=1) * n / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = between / within
    pair_dims = ("score", "model_a", "model_b")
    return xr.Dataset(
        {
            "mean": (("score", "model"), mean),
            "ci_low": (("score", "model"), lo),
            "ci_high": (("score", "model"), hi),
            "diff": (pair_dims, np.where(diag, np.nan, diff)),
            "p_value": (pair_dims, p),
            "p_holm": (pair_dims, p_holm),
            "significant": (pair_dims, sig),
            "fraction_significant": (("score",), frac),
            "n_significant": (("score",), (p_holm_pairs < alpha).sum(-1)),
            "variance_ratio": (("score",), ratio),
            "score_image": (("score", "model", "image"), s),
        },
        coords={"score": names, "model": models, "model_a": models, "model_b": models,
                "image": np.asarray(first["image"].values)[keep]},
        attrs={
            "analysis": "discriminability",
            "alpha": float(alpha),
            "correction": "holm",
            "test": "paired studentised bootstrap (bootstrap-t) over images, two-sided",
            "n_pairs": int(len(iu[0])),
            "n_images": int(n),
            "n_boot": int(b_eff),
            "n_boot_requested": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


def _bootstrap_t_pvalues(d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap-t p-values of mean(d) = 0: d (... x N), weights B x N -> (...)."""
    n = d.shape[-1]
    mean = d.mean(-1)
    se = d.std(-1, ddof=1) / np.sqrt(n)
    m_b = d @ w.T  # ... x B
    var_b = np.clip((d * d) @ w.T - m_b**2, 0, None) * n / (n - 1)
    se_b = np.sqrt(var_b / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_obs = np.abs(mean) / se
        t_b = np.abs(m_b - mean[..., None]) / se_b
    t_obs = np.where(se > 0, t_obs, np.where(mean == 0, 0.0, np.inf))
    t_b = np.where(se_b > 0, t_b, np.where(m_b == mean[..., None], 0.0, np.inf))
    exceed = (t_b >= t_obs[..., None]).sum(-1)
    return (1.0 + exceed) / (w.shape[0] + 1.0)


def predictivity_scores(
    predictions: Mapping[str, Any],
    responses: Any,
    *,
    images: Any = None,
    kind: Literal["corr", "neg_mse"] = "corr",
    batch_size: int = 64,
) -> xr.DataArray:
    """Per-model per-image predictivity (model x image) on the probed images.

    Every target is z-scored with the measured responses' across-image mean and SD; then per
    image ``corr`` is the Pearson correlation across targets between predicted and measured
    z-patterns, and ``neg_mse`` minus their mean squared difference (higher is better for both).

    Parameters
    ----------
    predictions : dict name -> array N x T, or nn.Module (then ``images`` is required)
    responses : array N x T
        Measured (trial-mean) responses to the same images.
    """
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ConfigError(f"responses must be N x T with N >= 2, got shape {r.shape}")
    mu, sd = r.mean(0), r.std(0, ddof=1)
    if np.any(sd <= 0):
        raise ConfigError("some measured targets have zero across-image SD; drop them before scoring")
    zr = (r - mu) / sd
    x = as_images(images) if images is not None else None
    rows = {}
    for name, pred in predictions.items():
        if isinstance(pred, nn.Module):
            if x is None:
                raise ConfigError(f"predictions[{name!r}] is a model; pass images= to compute its predictions")
            pred = forward(pred, x, batch_size).double().numpy()
        p = np.asarray(pred, dtype=np.float64)
        if p.shape != r.shape:
            raise ConfigError(f"predictions[{name!r}] has shape {p.shape}, responses {r.shape}; they must match")
        zp = (p - mu) / sd
        if kind == "corr":
            from brainprobe.analysis._common import pearson

            rows[name] = pearson(zp, zr, axis=1)
        elif kind == "neg_mse":
            rows[name] = -((zp - zr) ** 2).mean(1)
        else:
            raise ConfigError(f"predictivity kind must be 'corr' or 'neg_mse', got {kind!r}")
    return xr.DataArray(
        np.stack(list(rows.values())),
        dims=("model", "image"),
        coords={"model": list(rows), "image": np.arange(r.shape[0])},
        name="predictivity",
        attrs={"kind": kind},
    )
