"""Target-wise (voxel-wise) sensitivity under l2 versus l-infinity Shift probes, correlated across targets."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    as_images,
    boot_weights,
    ci,
    eps_array,
    forward,
    model_info,
    organise,
    pearson,
    response_change,
    target_sd,
)
from brainprobe.errors import ConfigError


def l2_linf(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    info: Any = None,
    batch_size: int = 64,
) -> xr.Dataset:
    """Agreement of l2 and l-infinity target-wise sensitivity (the paper's voxel-wise R = .97).

    Each model is probed once per norm with a Shift objective over all targets (one probe moves
    the whole pattern, instead of one Drive probe per target, which costs T times more). A
    target's sensitivity = mean over images of |change_t| / SD_t, with SD_t its across-image SD
    of the model's clean responses. ``r`` is the Pearson correlation across targets of the l2
    and the linf sensitivities, for every pair of budgets (bootstrap CI over images).

    Parameters
    ----------
    probes : dict name -> [ProbeResult l2, ProbeResult linf]
        Shift probes of ``images`` (any budgets per norm).

    Returns
    -------
    xarray.Dataset
        ``target_sensitivity_l2`` (model, l2_eps, target), ``target_sensitivity_linf`` (model,
        linf_eps, target); ``r``, ``r_ci_low/high``, ``spearman`` (model, l2_eps, linf_eps);
        ``r_model`` (+ CI) (model): r averaged over the budget pairs by Fisher z;
        ``r_model_boot`` (model, boot): its bootstrap replicates (same resampled images for every
        model, so :func:`findings` can bootstrap the mean over models).
    """
    x = as_images(images)
    n = x.shape[0]
    by_model = organise(probes)
    names = list(by_model)
    for name in names:
        if set(by_model[name]) != {"l2", "linf"}:
            raise ConfigError(f"l2_linf needs an l2 and a linf probe of model {name!r}; got {sorted(by_model[name])}")
        if name not in models:
            raise ConfigError(f"probes given for {name!r} but no such model; pass it in models=")
    e2 = eps_array(by_model[names[0]]["l2"])
    ei = eps_array(by_model[names[0]]["linf"])
    for name in names:
        if not (np.allclose(eps_array(by_model[name]["l2"]), e2) and np.allclose(eps_array(by_model[name]["linf"]), ei)):
            raise ConfigError("l2_linf: probe every model with the same budgets per norm")
    w = boot_weights(n, n_boot, seed)
    sens2, sensi, r, r_lo, r_hi, rho, rz, rz_lo, rz_hi, rz_boot = [], [], [], [], [], [], [], [], [], []
    t_ids = None
    for name in progress(names, desc="l2 vs linf"):
        model = models[name]
        clean = forward(model, x, batch_size)
        sd = target_sd(clean.double().numpy(), f"clean responses of {name}")
        if t_ids is None:
            from brainprobe.analysis._common import targets_table

            t_ids = targets_table(model, clean.shape[1])["target"].to_numpy(dtype=str)
        per = {}
        for nm in ("l2", "linf"):
            d = response_change(model, x, by_model[name][nm].delta, clean, batch_size)  # E x N x T
            per[nm] = np.abs(d) / sd  # E x N x T
        s2 = per["l2"].mean(1)  # E2 x T
        si = per["linf"].mean(1)
        if s2.shape[-1] < 3:
            raise ConfigError("l2_linf needs >= 3 targets to correlate across targets")
        sens2.append(s2)
        sensi.append(si)
        r_obs = pearson(s2[:, None, :], si[None, :, :])  # E2 x Ei
        r.append(r_obs)
        rho.append(pearson(_ranks(s2)[:, None, :], _ranks(si)[None, :, :]))
        r_boot = _boot_r(per["l2"], per["linf"], w)  # E2 x Ei x B
        lo, hi = ci(r_boot, level)
        r_lo.append(lo)
        r_hi.append(hi)
        zb = np.tanh(np.arctanh(np.clip(r_boot, -0.999999, 0.999999)).mean(axis=(0, 1)))
        rz.append(np.tanh(np.arctanh(np.clip(r_obs, -0.999999, 0.999999)).mean()))
        lo_z, hi_z = ci(zb, level)
        rz_lo.append(lo_z)
        rz_hi.append(hi_z)
        rz_boot.append(zb)
    table = model_info({k: models[k] for k in names}, info)
    pair = ("model", "l2_eps", "linf_eps")
    return xr.Dataset(
        {
            "target_sensitivity_l2": (("model", "l2_eps", "target"), np.stack(sens2)),
            "target_sensitivity_linf": (("model", "linf_eps", "target"), np.stack(sensi)),
            "r": (pair, np.stack(r)),
            "r_ci_low": (pair, np.stack(r_lo)),
            "r_ci_high": (pair, np.stack(r_hi)),
            "spearman": (pair, np.stack(rho)),
            "r_model": (("model",), np.array(rz)),
            "r_model_ci_low": (("model",), np.array(rz_lo)),
            "r_model_ci_high": (("model",), np.array(rz_hi)),
            "r_model_boot": (("model", "boot"), np.stack(rz_boot)),
        },
        coords={
            "model": names,
            "l2_eps": e2,
            "linf_eps": ei,
            "target": t_ids,
            "training": ("model", table["training"].to_numpy(dtype=str)),
            "architecture": ("model", table["architecture"].to_numpy(dtype=str)),
        },
        attrs={
            "analysis": "l2_linf",
            "units": "mean |change| / across-image SD per target",
            "n_images": int(n),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


def _boot_r(a: np.ndarray, b: np.ndarray, w: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Bootstrap correlations across targets of image-mean a (E2 x N x T) and b (Ei x N x T): E2 x Ei x B.

    Chunked over resamples so memory stays ~ chunk x E2 x Ei x T whatever the number of targets.
    """
    out = []
    for start in range(0, len(w), chunk):
        wc = w[start : start + chunk]
        ma = np.einsum("ent,bn->bet", a, wc)
        mb = np.einsum("ent,bn->bet", b, wc)
        out.append(pearson(ma[:, :, None, :], mb[:, None, :, :]))
    return np.moveaxis(np.concatenate(out), 0, -1)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (ties broken by order; fine for continuous sensitivities)."""
    return np.argsort(np.argsort(a, axis=-1), axis=-1).astype(float)
