"""Noise ceilings from trial repeats: NSD's NCSNR ceiling and split-half reliability.

Both return the *noise ceiling NC* as a fraction of variance in [0, 1]: the share of the
variance of the n-trial-averaged response (across images) that is stimulus-driven signal. A
model's squared correlation with the averaged data cannot exceed NC in expectation, so
normalised predictivity is ``r / sqrt(NC)``. Formulas: docs/noise_ceiling.md.

Trials are arrays ``N x R x T`` (images x repeats x targets); a missing repeat is NaN (images
may have different repeat counts, as in NSD).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np


def _check_trials(trials: np.ndarray) -> np.ndarray:
    arr = np.asarray(trials, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"trials must be N x R x T (images x repeats x targets), got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise ValueError(f"noise ceilings need at least 2 repeats per image, got R={arr.shape[1]}")
    return arr


def nc_from_ncsnr(ncsnr: np.ndarray, n_avg: float | np.ndarray) -> np.ndarray:
    """NC = ncsnr^2 / (ncsnr^2 + 1/n): fraction of variance of the n-trial mean that is signal.

    ``n_avg`` may be the harmonic-type effective count ``1 / mean(1/n_i)`` for unequal repeats.
    """
    s2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    return s2 / (s2 + 1.0 / np.asarray(n_avg, dtype=np.float64))


def ncsnr(trials: np.ndarray) -> np.ndarray:
    """Noise-ceiling SNR per target (Allen et al. 2022): sd_signal / sd_noise.

    Each target's trials are z-scored over all images and repeats; the noise variance is the
    mean over images of the across-repeat variance (ddof=1), the signal variance is
    ``max(0, 1 - noise variance)``.

    Parameters
    ----------
    trials : array, N x R x T
        Single-trial responses (any unit); NaN marks a missing repeat.

    Returns
    -------
    ncsnr : array, T
        Dimensionless; 0 where there is no detectable signal.
    """
    x = _check_trials(trials)
    mean = np.nanmean(x, axis=(0, 1), keepdims=True)
    sd = np.nanstd(x, axis=(0, 1), keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mean) / sd
    counts = np.sum(np.isfinite(z), axis=1)  # N x T
    usable = counts >= 2
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # images with < 2 repeats: NaN, excluded below
        var_within = np.nanvar(z, axis=1, ddof=1)  # N x T
    var_within = np.where(usable, var_within, np.nan)
    noise_var = np.nanmean(var_within, axis=0)
    signal_var = np.clip(1.0 - noise_var, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(signal_var) / np.sqrt(noise_var)
    return np.where(noise_var > 0, out, np.inf)


def effective_repeats(trials: np.ndarray) -> np.ndarray:
    """Per-target effective repeat count ``1 / mean_i(1 / n_i)`` over images with >= 1 trial (T,).

    With equal repeat counts this is R; with NSD's mix of 1-3 repeats it is the count that makes
    ``NC = ncsnr^2 / (ncsnr^2 + 1/n)`` equal to NSD's ``(A/3 + B/2 + C/1) / (A + B + C)`` form.
    """
    x = _check_trials(trials)
    counts = np.sum(np.isfinite(x), axis=1).astype(np.float64)  # N x T
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), np.nan)
    return 1.0 / np.nanmean(inv, axis=0)


def noise_ceiling_ncsnr(trials: np.ndarray, n_avg: float | None = None) -> np.ndarray:
    """NSD's noise ceiling (fraction of variance, not percent) for responses averaged over n_avg trials.

    Parameters
    ----------
    trials : array, N x R x T
        Single-trial responses; NaN marks a missing repeat.
    n_avg : float, optional
        Number of trials averaged in the responses the ceiling applies to. Default: the
        effective repeat count of ``trials`` (R when every image has R repeats).

    Returns
    -------
    nc : array, T
        NC in [0, 1].
    """
    snr = ncsnr(trials)
    n = effective_repeats(trials) if n_avg is None else float(n_avg)
    nc = nc_from_ncsnr(np.where(np.isinf(snr), 1e12, snr), n)
    return np.clip(nc, 0.0, 1.0)


def _spearman_brown_unequal(r: np.ndarray, a: float, b: float, n: float) -> np.ndarray:
    """Reliability of an n-trial mean from the correlation r between means of a and b trials.

    With signal-to-noise variance ratio k, ``r = k / sqrt((k + 1/a)(k + 1/b))``; solving for k
    (positive root) and returning ``k / (k + 1/n)`` gives the classic ``2r / (1 + r)`` when
    a = b = n/2 and handles odd repeat counts (a != b) exactly.
    """
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0 - 1e-12)
    r2 = r**2
    p = 1.0 / a + 1.0 / b
    q = 1.0 / (a * b)
    disc = (r2 * p) ** 2 + 4.0 * (1.0 - r2) * r2 * q
    k = (r2 * p + np.sqrt(disc)) / (2.0 * (1.0 - r2))
    return k / (k + 1.0 / n)


def _columnwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / den, 0.0)


def split_half_reliability(
    trials: np.ndarray, n_avg: float | None = None, *, n_splits: int = 20, seed: int = 0
) -> np.ndarray:
    """Split-half reliability with (generalised) Spearman-Brown correction, as NC (fraction).

    The R repeats are split into halves of ``floor(R/2)`` and ``ceil(R/2)`` trials; the
    correlation across images of the two half-means is averaged over splits (all of them when
    there are at most ``n_splits``, else ``n_splits`` random ones) and corrected to the
    reliability of an ``n_avg``-trial mean. For odd R the halves differ in size and the
    correction uses the exact unequal-halves formula (see ``_spearman_brown_unequal``), not
    ``2r/(1+r)``. Images with a missing repeat are dropped.

    Parameters
    ----------
    trials : array, N x R x T
    n_avg : float, optional
        Trials averaged in the responses the ceiling applies to (default R).
    n_splits : int
        Most splits to average.
    seed : int
        Seed for choosing random splits when there are more than ``n_splits``.

    Returns
    -------
    reliability : array, T
        In [0, 1]; 0 where the half-means are uncorrelated or anticorrelated.
    """
    x = _check_trials(trials)
    n_img, n_rep, _ = x.shape
    complete = np.all(np.isfinite(x), axis=(1, 2))
    if complete.sum() < 3:
        raise ValueError("split-half reliability needs at least 3 images with every repeat present")
    x = x[complete]
    a = n_rep // 2
    b = n_rep - a
    all_splits = list(itertools.combinations(range(n_rep), a))
    if len(all_splits) > n_splits:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(all_splits), size=n_splits, replace=False)
        all_splits = [all_splits[i] for i in sorted(chosen)]
    rs = []
    for first in all_splits:
        second = [i for i in range(n_rep) if i not in first]
        rs.append(_columnwise_corr(x[:, list(first)].mean(axis=1), x[:, second].mean(axis=1)))
    r = np.mean(rs, axis=0)
    n = float(n_rep if n_avg is None else n_avg)
    return _spearman_brown_unequal(r, a, b, n)


def noise_sd_for_ceiling(signal_var: np.ndarray, nc: np.ndarray, n_avg: int) -> np.ndarray:
    """Trial-noise sd that gives an n_avg-trial mean the ceiling ``nc`` for a signal of variance signal_var.

    From ``NC = s / (s + sigma^2 / n)``: ``sigma = sqrt(n * s * (1 - NC) / NC)``.
    """
    nc = np.asarray(nc, dtype=np.float64)
    if np.any((nc <= 0) | (nc > 1)):
        raise ValueError("noise ceilings must lie in (0, 1]")
    return np.sqrt(n_avg * np.asarray(signal_var, dtype=np.float64) * (1.0 - nc) / nc)
