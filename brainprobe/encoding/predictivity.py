"""Predictivity: held-out Pearson r per target, noise-ceiling normalised, summarised per ROI.

For each target t with noise ceiling NC_t (fraction of response variance that is explainable,
0..1, for the trial-averaged responses that are predicted):

* ``r``: Pearson correlation of predicted and measured responses over the test images;
* ``r_normalised`` = r / sqrt(NC_t)  (1 = as good as the noise allows);
* ``explained_variance`` = max(r, 0)^2 / NC_t, the fraction of explainable variance explained.

Per ROI: the median over its targets of each, with a percentile bootstrap confidence interval
over test images (images resampled with replacement, the whole median recomputed each time).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from brainprobe.errors import DataError


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column (N x T each) -> (T,); NaN where a column is constant."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / denom
    r[denom == 0] = np.nan
    return r


def _bootstrap_r(y_true: np.ndarray, y_pred: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Pearson r per target for ``n_boot`` bootstrap resamples of the rows -> (n_boot, T).

    Each resample is a vector of multinomial counts over the N rows, so all sums are matrix
    products (counts @ data) instead of a Python loop over resamples.
    """
    n = y_true.shape[0]
    a = y_true - y_true.mean(0)  # centring first keeps the one-pass moments accurate
    b = y_pred - y_pred.mean(0)
    out = np.empty((n_boot, a.shape[1]))
    step = max(1, 2_000_000 // a.shape[1])  # resamples per batch: bounds memory to ~16 MB per array
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=m).astype(np.float64) / n
        ma, mb = w @ a, w @ b
        cov = w @ (a * b) - ma * mb
        va = w @ (a * a) - ma**2
        vb = w @ (b * b) - mb**2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + m] = cov / np.sqrt(va * vb)
    return out


def check_noise_ceiling(noise_ceiling: np.ndarray | None, n_targets: int) -> np.ndarray:
    """Validate a noise ceiling (T,) as a fraction of variance; None -> all NaN (with a warning)."""
    if noise_ceiling is None:
        nc = np.full(n_targets, np.nan)
    else:
        nc = np.asarray(noise_ceiling, dtype=np.float64).reshape(-1)
    if nc.shape[0] != n_targets:
        raise DataError(f"noise ceiling has {nc.shape[0]} values for {n_targets} targets")
    if not np.isfinite(nc).any():
        warnings.warn(
            "predictivity: no noise ceiling (none given, or all NaN: the data have no repeated trials); "
            "r_normalised and explained_variance are NaN",
            stacklevel=3,
        )
    elif np.nanmax(nc) > 1.0 + 1e-6:
        raise DataError(
            f"noise ceiling has values up to {np.nanmax(nc):.3g} > 1; it must be a fraction of "
            "variance in [0, 1] (divide percentages by 100)"
        )
    return nc


def normalise(r: np.ndarray, noise_ceiling: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r / sqrt(NC), max(r, 0)^2 / NC) with NaN where NC <= 0 or NaN; broadcasts over leading dims."""
    nc = np.where(noise_ceiling > 0, noise_ceiling, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return r / np.sqrt(nc), np.clip(r, 0, None) ** 2 / nc


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        return np.nanmedian(x, axis=axis)


def compute_predictivity(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    targets: pd.DataFrame,
    noise_ceiling: np.ndarray | None,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    attrs: dict[str, Any] | None = None,
):
    """Predictivity of predictions on held-out images, per target and per ROI.

    Parameters
    ----------
    y_true, y_pred : (N_test, T) measured and predicted responses.
    targets : DataFrame with columns ``target`` and ``roi``, one row per column.
    noise_ceiling : (T,) NC as a fraction of variance, or None (normalised values are NaN).
    n_boot : bootstrap resamples of the test images for the ROI confidence intervals.
    ci : confidence level of the percentile intervals.
    seed : seeds the bootstrap.
    attrs : provenance stored as the Dataset's attributes.

    Returns
    -------
    xarray.Dataset
        dims ``target`` (T), ``roi`` and ``bound`` (``low``, ``high``). Per target: ``r``,
        ``r_normalised``, ``explained_variance``, ``noise_ceiling`` (coordinate ``roi_of``
        names each target's ROI). Per ROI: ``roi_r``, ``roi_r_normalised``,
        ``roi_explained_variance`` (medians over the ROI's targets), each with a ``*_ci``
        companion (roi x bound), and ``roi_n_targets``.
    """
    import xarray as xr

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise DataError(f"measured {y_true.shape} and predicted {y_pred.shape} responses must both be N x T")
    if y_true.shape[0] < 3:
        raise DataError(f"predictivity needs at least 3 test images, got {y_true.shape[0]}")
    n_targets = y_true.shape[1]
    if len(targets) != n_targets:
        raise DataError(f"targets table has {len(targets)} rows for {n_targets} response columns")
    nc = check_noise_ceiling(noise_ceiling, n_targets)
    r = pearson_r(y_true, y_pred)
    r_norm, expl = normalise(r, nc)

    rng = np.random.default_rng(seed)
    boot_r = _bootstrap_r(y_true, y_pred, n_boot, rng)
    boot_norm, boot_expl = normalise(boot_r, nc)

    rois = list(pd.unique(targets["roi"].astype(str)))
    roi_codes = targets["roi"].astype(str).to_numpy()
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    summary: dict[str, np.ndarray] = {}
    for name, full, boot in (
        ("roi_r", r, boot_r),
        ("roi_r_normalised", r_norm, boot_norm),
        ("roi_explained_variance", expl, boot_expl),
    ):
        med = np.empty(len(rois))
        bounds = np.empty((len(rois), 2))
        for i, roi in enumerate(rois):
            cols = roi_codes == roi
            med[i] = _nanmedian(full[cols], axis=0) if cols.any() else np.nan
            boot_med = _nanmedian(boot[:, cols], axis=1)
            boot_med = boot_med[np.isfinite(boot_med)]
            bounds[i] = np.percentile(boot_med, q) if len(boot_med) else (np.nan, np.nan)
        summary[name] = med
        summary[name + "_ci"] = bounds

    target_ids = targets["target"].astype(str).to_numpy()
    ds = xr.Dataset(
        {
            "r": ("target", r),
            "r_normalised": ("target", r_norm),
            "explained_variance": ("target", expl),
            "noise_ceiling": ("target", nc),
            **{k: (("roi", "bound") if k.endswith("_ci") else ("roi",), v) for k, v in summary.items()},
            "roi_n_targets": ("roi", np.array([(roi_codes == roi).sum() for roi in rois])),
        },
        coords={"target": target_ids, "roi_of": ("target", roi_codes), "roi": rois, "bound": ["low", "high"]},
        attrs={"n_test": int(y_true.shape[0]), "n_boot": int(n_boot), "ci": float(ci), "seed": int(seed), **(attrs or {})},
    )
    return ds
