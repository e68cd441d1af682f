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
    model_sd,
)
from brainprobe.analysis._bca import bca_interval, jackknife_weights
from brainprobe.errors import ConfigError


def l2_linf(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    groups: Any = None,
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
    and the linf sensitivities, for every pair of budgets (percentile CI over images).

    The headline statistic ``r_model`` compares like with like and corrects for noise:

    - budgets are paired by equal first-order effect: each l2 budget is paired with the linf
      budget whose mean sensitivity (over images and targets) is closest in log ratio
      (``matched_linf_eps``, ``effect_l2`` / ``effect_linf``);
    - each profile is corrected for attenuation by its split-half reliability: the probed images
      are split in two halves (alternating images, or alternating groups), the profiles of the
      halves correlated and stepped up by Spearman-Brown, rel = 2 r_h / (1 + r_h);
      r_corrected = cross-half r / sqrt(half reliabilities) (profiles of disjoint image halves, so the
      image noise the two norms share does not inflate it; NaN when a reliability is <= 0);
    - ``r_model`` = mean of r_corrected over the matched pairs, with a BCa interval (bootstrap over
      images or groups, acceleration from the leave-one-out jackknife).

    Parameters
    ----------
    probes : dict name -> [ProbeResult l2, ProbeResult linf]
        Shift probes of ``images`` (any budgets per norm).
    groups : sequence of N labels, optional
        Resample (and split halves by) whole groups, e.g. the photo each crop came from.

    Returns
    -------
    xarray.Dataset
        ``target_sensitivity_l2`` (model, l2_eps, target), ``target_sensitivity_linf`` (model,
        linf_eps, target); ``r``, ``r_ci_low/high``, ``spearman``, ``r_corrected`` (model, l2_eps,
        linf_eps); ``reliability_l2`` (model, l2_eps), ``reliability_linf`` (model, linf_eps);
        ``effect_l2``, ``matched_linf_eps`` (model, l2_eps), ``effect_linf`` (model, linf_eps);
        ``r_model`` (+ BCa CI), ``r_model_uncorrected`` (model); ``r_model_boot`` (model, boot) and
        ``r_model_jack`` (model, jack): replicates on the same resampled images for every model, so
        :func:`findings` can form a BCa interval of the mean over models.
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
    if n < 4:
        raise ConfigError(f"l2_linf needs >= 4 probed images (split halves, bootstrap); got {n}")
    w = boot_weights(n, n_boot, seed, groups=groups)
    jack = jackknife_weights(n, groups)
    half = split_halves(n, groups)
    out: dict[str, list[Any]] = {k: [] for k in (
        "s2", "si", "r", "r_lo", "r_hi", "rho", "rc", "rel2", "reli", "eff2", "effi", "match", "rm", "rm_lo", "rm_hi",
        "rm_raw", "rm_boot", "rm_jack")}
    t_ids = None
    for name in progress(names, desc="l2 vs linf"):
        model = models[name]
        clean = forward(model, x, batch_size)
        sd = model_sd(model, clean.double().numpy(), f"clean responses of {name}")
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
        r_obs = pearson(s2[:, None, :], si[None, :, :])  # E2 x Ei
        r_boot = _boot_r(per["l2"], per["linf"], w)  # E2 x Ei x B
        lo, hi = ci(r_boot, level)
        eff2, effi = s2.mean(-1), si.mean(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs(np.log(eff2[:, None]) - np.log(effi[None, :]))
        match = np.argmin(np.nan_to_num(gap, nan=np.inf), axis=1)  # E2 -> Ei
        uniform = np.full((1, n), 1.0 / n)
        rc0, rel2, reli = corrected_r(per["l2"], per["linf"], uniform, half)
        pairs = (np.arange(len(e2)), match)
        stat = lambda ww: np.nanmean(corrected_r(per["l2"], per["linf"], ww, half)[0][:, pairs[0], pairs[1]], -1)  # noqa: E731
        value, boot, jk = stat(uniform)[0], stat(w), stat(jack)
        b_lo, b_hi = bca_interval(value, boot, jk, level)
        for k, v in (("s2", s2), ("si", si), ("r", r_obs), ("r_lo", lo), ("r_hi", hi),
                     ("rho", pearson(_ranks(s2)[:, None, :], _ranks(si)[None, :, :])), ("rc", rc0[0]),
                     ("rel2", rel2[0]), ("reli", reli[0]), ("eff2", eff2), ("effi", effi), ("match", ei[match]),
                     ("rm", value), ("rm_lo", b_lo), ("rm_hi", b_hi), ("rm_raw", np.nanmean(r_obs[pairs])),
                     ("rm_boot", boot), ("rm_jack", jk)):
            out[k].append(v)
    table = model_info({k: models[k] for k in names}, info)
    pair = ("model", "l2_eps", "linf_eps")
    st = lambda k: np.stack(out[k])  # noqa: E731
    coords: dict[str, Any] = {
        "model": names,
        "l2_eps": e2,
        "linf_eps": ei,
        "target": t_ids,
        "training": ("model", table["training"].to_numpy(dtype=str)),
        "architecture": ("model", table["architecture"].to_numpy(dtype=str)),
    }
    if groups is not None:
        coords["group"] = ("image", np.asarray(groups).astype(str))
    return xr.Dataset(
        {
            "target_sensitivity_l2": (("model", "l2_eps", "target"), st("s2")),
            "target_sensitivity_linf": (("model", "linf_eps", "target"), st("si")),
            "r": (pair, st("r")),
            "r_ci_low": (pair, st("r_lo")),
            "r_ci_high": (pair, st("r_hi")),
            "spearman": (pair, st("rho")),
            "r_corrected": (pair, st("rc")),
            "reliability_l2": (("model", "l2_eps"), st("rel2")),
            "reliability_linf": (("model", "linf_eps"), st("reli")),
            "effect_l2": (("model", "l2_eps"), st("eff2")),
            "effect_linf": (("model", "linf_eps"), st("effi")),
            "matched_linf_eps": (("model", "l2_eps"), st("match")),
            "r_model": (("model",), np.array(out["rm"])),
            "r_model_ci_low": (("model",), np.array(out["rm_lo"])),
            "r_model_ci_high": (("model",), np.array(out["rm_hi"])),
            "r_model_uncorrected": (("model",), np.array(out["rm_raw"])),
            "r_model_boot": (("model", "boot"), st("rm_boot")),
            "r_model_jack": (("model", "jack"), st("rm_jack")),
        },
        coords=coords,
        attrs={
            "analysis": "l2_linf",
            "units": "mean |change| / across-image SD per target",
            "r_model": "mean over budget pairs matched by first-order effect of r corrected for attenuation by "
                       "split-half reliabilities (Spearman-Brown); BCa interval",
            "n_images": int(n),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


def split_halves(n_images: int, groups: Any = None) -> np.ndarray:
    """Boolean N mask of the first half: alternating images, or alternating groups (in order of appearance)."""
    if groups is None:
        return np.arange(n_images) % 2 == 0
    labels = np.asarray(groups).astype(str)
    order = list(dict.fromkeys(labels))
    if len(order) < 2:
        raise ConfigError("l2_linf: split halves need >= 2 groups of images")
    first = {g for k, g in enumerate(order) if k % 2 == 0}
    return np.array([g in first for g in labels])


def corrected_r(a: np.ndarray, b: np.ndarray, weights: np.ndarray,
                half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attenuation-corrected correlation across targets of weighted image-mean profiles.

    Parameters
    ----------
    a : array Ea x N x T
        Per-image sensitivities under one norm (per budget).
    b : array Eb x N x T
        The same under the other norm.
    weights : array K x N
        Image weights per replicate (rows sum to 1): uniform, bootstrap or jackknife.
    half : bool array N
        Images of the first half (the rest is the second).

    Returns
    -------
    r_corrected : K x Ea x Eb
        Cross-half correlation over the geometric mean of the half reliabilities,
        ``(r(a1, b2) + r(a2, b1)) / 2 / sqrt(r(a1, a2) r(b1, b2))`` (a1: image-mean profile of
        half 1, ...). Both norms are measured on the same images, so ``r(mean a, mean b)`` shares
        the image-sampling noise of the two profiles and dividing it by their reliabilities
        over-corrects (values above 1); pairing profiles of disjoint halves removes that shared
        noise. NaN where a half reliability is <= 0 or undefined.
    rel_a : K x Ea, rel_b : K x Eb
        Spearman-Brown split-half reliabilities 2 r_h / (1 + r_h) (reported; the correction uses r_h).
    """
    rels, halves, raw = [], [], []
    for arr in (a, b):
        parts = []
        for side in (half, ~half):
            wh = weights * side
            tot = wh.sum(1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                wh = np.where(tot > 0, wh / np.where(tot > 0, tot, 1.0), np.nan)
            parts.append(np.einsum("ent,kn->ket", arr, wh))
        rh = pearson(parts[0], parts[1])
        halves.append(parts)
        raw.append(rh)
        with np.errstate(invalid="ignore", divide="ignore"):
            rels.append(np.where(rh > -1, 2 * rh / (1 + rh), np.nan))
    rel_a, rel_b = rels
    (a1, a2), (b1, b2) = halves
    cross = (pearson(a1[:, :, None, :], b2[:, None, :, :]) + pearson(a2[:, :, None, :], b1[:, None, :, :])) / 2
    ha, hb = raw[0][:, :, None], raw[1][:, None, :]
    prod = ha * hb
    with np.errstate(invalid="ignore", divide="ignore"):
        rc = np.where((ha > 0) & (hb > 0), cross / np.sqrt(np.where(prod > 0, prod, 1.0)), np.nan)
    return rc, rel_a, rel_b


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
