"""Bias-corrected and accelerated (BCa) bootstrap intervals for statistics of image weights.

Every statistic of the analyses is a function of per-image weights (rows summing to 1): the
plain estimate uses uniform weights, a bootstrap replicate the resampling weights of
:func:`brainprobe.analysis._common.boot_weights`, and a jackknife replicate weights that leave
one image (or one group of images) out. So one function of a weight matrix gives all three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri


def jackknife_weights(n_images: int, groups: Any = None) -> np.ndarray:
    """Leave-one-out weights J x N (rows sum to 1): one row per image, or per group of images.

    Parameters
    ----------
    n_images : int
    groups : sequence of N labels, optional
        Leave out whole groups (e.g. all crops of one photo) instead of single images.
    """
    if groups is None:
        codes = np.arange(n_images)
    else:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    keep = (codes[None, :] != np.unique(codes)[:, None]).astype(float)
    return keep / keep.sum(1, keepdims=True)


def bca_interval(value: np.ndarray | float, boot: np.ndarray, jack: np.ndarray,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval (Efron 1987) from bootstrap and jackknife replicates.

    z0 = Phi^-1(share of replicates below the estimate, ties counted half);
    a = sum(d^3) / (6 (sum d^2)^1.5) with d = mean(jack) - jack;
    the bounds are the replicates' quantiles at Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for
    z = Phi^-1((1 -+ level) / 2).

    Parameters
    ----------
    value : array (...)
        The estimate.
    boot : array (..., B)
        Bootstrap replicates (NaN ones are left out).
    jack : array (..., J)
        Jackknife replicates.
    level : float

    Returns
    -------
    (low, high) : arrays (...); NaN where the estimate or all replicates are NaN.
    """
    value = np.asarray(value, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    jack = np.asarray(jack, dtype=np.float64)
    ok = np.isfinite(boot)
    n_ok = ok.sum(-1)
    import warnings

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        below = (np.where(ok, boot < value[..., None], False).sum(-1)
                 + 0.5 * np.where(ok, boot == value[..., None], False).sum(-1)) / np.maximum(n_ok, 1)
        z0 = ndtri(np.clip(below, 1.0 / (n_ok + 1), 1 - 1.0 / (n_ok + 1)))
        d = np.nanmean(jack, axis=-1, keepdims=True) - jack
        num = np.nansum(d**3, axis=-1)
        den = 6 * np.nansum(d**2, axis=-1) ** 1.5
        a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        out = []
        for q in ((1 - level) / 2, 1 - (1 - level) / 2):
            z = ndtri(q)
            p = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
            out.append(_quantile(boot, np.clip(np.nan_to_num(p, nan=q), 0, 1)))
    lo, hi = out
    bad = ~np.isfinite(value) | (n_ok == 0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def _quantile(boot: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-cell quantile ``p`` (...) of ``boot`` (..., B) leaving NaN out (inverted-CDF rule)."""
    s = np.sort(np.where(np.isfinite(boot), boot, np.inf), axis=-1)
    n = np.isfinite(boot).sum(-1)
    k = np.clip(np.ceil(p * n).astype(int) - 1, 0, np.maximum(n - 1, 0))
    return np.take_along_axis(s, k[..., None], axis=-1)[..., 0]
