"""Sensitivity: how far probes move each model's predicted ROI responses, per budget."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    TargetSpec,
    as_images,
    boot_counts,
    boot_means,
    boot_weights,
    ci,
    eps_array,
    forward,
    log_crossing,
    model_info,
    organise,
    response_change,
    roi_sets,
    model_mean_sd,
    model_sd,
)
from brainprobe.errors import ConfigError


def sensitivity(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    rois: TargetSpec = None,
    measure: Literal["mean", "rms"] | None = None,
    criterion: float = 1.0,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    batch_size: int = 64,
) -> xr.Dataset:
    """Response change versus budget per model x norm x ROI, in across-image SD units.

    Parameters
    ----------
    models : dict name -> nn.Module
        Response models (N x 3 x H x W in [0, 1] -> N x T, with ``.targets``).
    images : tensor N x 3 x H x W in [0, 1] (or uint8 N x H x W x 3)
        The probed clean images.
    probes : dict name -> ProbeResult or list of ProbeResult (one per norm)
        Each model's own probes of ``images`` (``delta`` E x N x 3 x H x W); all models probed at
        the same budgets for a given norm.
    rois : target spec, optional
        ROIs to report (default: every ROI of the targets table).
    measure : {"mean", "rms"}, optional
        ``"mean"``: |change of the ROI-mean response| / across-image SD of the clean ROI-mean
        response (for Drive probes). ``"rms"``: root mean square over the ROI's targets of
        change_t / SD_t (for Shift probes). Default: ``"rms"`` when every probe result's
        ``objective`` name starts with ``shift``, else ``"mean"``.
    criterion : float
        Change (SD units) that defines the minimal budget ``min_eps``.
    n_boot, level, seed : bootstrap over images (same resampled images for every model).
    info : DataFrame or dict, optional
        Per-model ``training`` / ``architecture`` (see :func:`model_info`).

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``change`` (model, norm, eps, roi, image); ``curve``, ``curve_ci_low/high``
        (model, norm, eps, roi): mean over images; ``auc_image`` (model, norm, roi, image): area
        under change vs log10(eps) (SD x decades, trapezoid); ``auc``, ``auc_ci_low/high``;
        ``min_eps_image`` (model, norm, roi, image): smallest budget reaching ``criterion``
        (log-interpolated, ``inf`` if never); ``min_eps``, ``min_eps_ci_low/high``: median over
        images. Coordinates ``training`` and ``architecture`` on ``model``.
    """
    x = as_images(images)
    n = x.shape[0]
    by_model = organise(probes)
    if measure is None:
        names_ = {str(getattr(pr, "objective", "")) for d in by_model.values() for pr in d.values()}
        measure = "rms" if all(o.startswith("shift") for o in names_) else "mean"
    if measure not in ("mean", "rms"):
        raise ConfigError(f"sensitivity measure must be 'mean' or 'rms', got {measure!r}")
    missing = [m for m in by_model if m not in models]
    if missing:
        raise ConfigError(f"probes given for {missing} but no such models; pass them in models=")
    norms = sorted({nm for d in by_model.values() for nm in d})
    names = list(by_model)
    grids: dict[str, np.ndarray] = {}
    for nm in norms:
        for name in names:
            if nm not in by_model[name]:
                raise ConfigError(f"model {name!r} has no {nm} probes while others do; probe every model with each norm")
            e = eps_array(by_model[name][nm])
            if nm in grids and not np.allclose(grids[nm], e):
                raise ConfigError(f"{nm} probes use different budgets across models; use one eps grid per norm")
            grids[nm] = e
    all_eps = np.unique(np.concatenate(list(grids.values())))
    roi_names: list[str] | None = None
    change = None
    for mi, name in enumerate(progress(names, desc="sensitivity")):
        model = models[name]
        clean = forward(model, x, batch_size)
        sets = roi_sets(model, clean.shape[1], rois)
        if roi_names is None:
            roi_names = list(sets)
            change = np.full((len(names), len(norms), len(all_eps), len(roi_names), n), np.nan)
        elif list(sets) != roi_names:
            raise ConfigError(f"model {name!r} has ROIs {list(sets)}, others {roi_names}; models must share targets")
        c = clean.double().numpy()
        for ni, nm in enumerate(norms):
            d = response_change(model, x, by_model[name][nm].delta, clean, batch_size)  # E x N x T
            pos = np.searchsorted(all_eps, grids[nm])
            for ri, idx in enumerate(sets.values()):
                if measure == "mean":
                    sd = model_mean_sd(model, c, idx, f"ROI {roi_names[ri]} of {name}")
                    val = np.abs(d[..., idx].mean(axis=-1)) / sd
                else:
                    sd = model_sd(model, c, f"ROI {roi_names[ri]} of {name}")[idx]
                    val = np.sqrt(((d[..., idx] / sd) ** 2).mean(axis=-1))
                change[mi, ni, pos, ri] = val  # type: ignore[index]
    assert change is not None and roi_names is not None
    return _summarise(change, names, norms, all_eps, roi_names, n, criterion, n_boot, level, seed, models, info, measure,
                      groups)


def _summarise(
    change: np.ndarray,
    names: list[str],
    norms: list[str],
    all_eps: np.ndarray,
    roi_names: list[str],
    n: int,
    criterion: float,
    n_boot: int,
    level: float,
    seed: int,
    models: Mapping[str, Any],
    info: Any,
    measure: str,
    groups: Any = None,
) -> xr.Dataset:
    w = boot_weights(n, n_boot, seed, groups=groups)
    curve = change.mean(axis=-1)  # NaN at budgets a norm was not probed with
    curve_lo, curve_hi = ci(boot_means(change, w), level)
    auc_img = np.full((len(names), len(norms), len(roi_names), n), np.nan)
    min_img = np.full_like(auc_img, np.nan)
    for ni in range(len(norms)):
        have = np.isfinite(change[0, ni, :, 0, 0])
        e = all_eps[have]
        v = np.moveaxis(change[:, ni][:, have], 1, -1)  # model x roi x image x E
        auc_img[:, ni] = np.trapezoid(v, np.log10(e), axis=-1) if len(e) > 1 else np.nan
        min_img[:, ni] = log_crossing(e, v, criterion)
    auc_lo, auc_hi = ci(boot_means(auc_img, w), level)
    # bootstrap medians of min eps: resample image indices consistently with the weights
    # (a photo bootstrap draws whole groups, so a resample need not hold exactly n images)
    counts = boot_counts(n, n_boot, seed, groups).astype(int)
    draws = [np.repeat(np.arange(n), row) for row in counts]
    boot_med = np.stack([np.stack([np.median(np.take(m, d, axis=-1), axis=-1) for d in draws], axis=-1)
                         for m in min_img])  # model x norm x roi x B
    med_lo, med_hi = ci(boot_med, level)
    table = model_info({k: models[k] for k in names}, info)
    coords = {
        "model": names,
        "norm": norms,
        "eps": all_eps,
        "roi": roi_names,
        "image": np.arange(n),
        "training": ("model", table["training"].to_numpy(dtype=str)),
        "architecture": ("model", table["architecture"].to_numpy(dtype=str)),
    }
    d5, d4, d3 = ("model", "norm", "eps", "roi", "image"), ("model", "norm", "eps", "roi"), ("model", "norm", "roi")
    ds = xr.Dataset(
        {
            "change": (d5, change),
            "curve": (d4, curve),
            "curve_ci_low": (d4, curve_lo),
            "curve_ci_high": (d4, curve_hi),
            "auc_image": (d3 + ("image",), auc_img),
            "auc": (d3, auc_img.mean(-1)),
            "auc_ci_low": (d3, auc_lo),
            "auc_ci_high": (d3, auc_hi),
            "min_eps_image": (d3 + ("image",), min_img),
            "min_eps": (d3, np.median(min_img, axis=-1)),
            "min_eps_ci_low": (d3, med_lo),
            "min_eps_ci_high": (d3, med_hi),
        },
        coords=coords,
        attrs={
            "analysis": "sensitivity",
            "measure": measure,
            "units": "across-image SD of the clean response",
            "criterion": float(criterion),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
    return ds


def sensitivity_scores(ds: xr.Dataset, *, norm: str | None = None, roi: str | None = None, stat: str = "auc") -> xr.DataArray:
    """Per-model per-image sensitivity score (model x image) for :func:`discriminability`.

    ``stat="auc"``: per-image AUC (mean over the selected norms and ROIs); ``"log_min_eps"``:
    log10 of the per-image minimal budget (mean over norms / ROIs; images that never reach the
    criterion are +inf and then left out by discriminability).
    """
    sel = ds
    if norm is not None:
        sel = sel.sel(norm=[norm])
    if roi is not None:
        sel = sel.sel(roi=[roi])
    if stat == "auc":
        out = sel["auc_image"].mean(("norm", "roi"))
    elif stat == "log_min_eps":
        out = np.log10(sel["min_eps_image"]).mean(("norm", "roi"))
    else:
        raise ConfigError(f"sensitivity score stat must be 'auc' or 'log_min_eps', got {stat!r}")
    return out.rename("sensitivity")


def curve_table(ds: xr.Dataset) -> pd.DataFrame:
    """Long table of the sensitivity curves (model, norm, eps, roi, curve, CI)."""
    return ds[["curve", "curve_ci_low", "curve_ci_high"]].to_dataframe().reset_index()
