"""Controversial probes: images on which two models disagree, and which model the brain then follows."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    as_images,
    boot_means,
    boot_weights,
    ci,
    eps_array,
    forward,
    holm,
    norm_name,
    resolve,
    response_change,
    model_mean_sd,
    model_sd,
)
from brainprobe.errors import ConfigError


def controversial(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[tuple[str, str], Any],
    *,
    targets: Any = None,
    brain: nn.Module | None = None,
    predictivity: xr.DataArray | None = None,
    sharpness: float = 10.0,
    noise_ceiling: Any = None,
    noise_z: float = 1.96,
    alpha: float = 0.05,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    batch_size: int = 64,
) -> xr.Dataset:
    """Controversiality of Contrast probes per model pair and budget, and model recovery by the brain.

    ``probes[(a, b)]`` holds probes made with ``Contrast(models[a], models[b], targets)``: raise
    the target-set mean under a while lowering it under b. For each image, z_a = a's change of
    the target-set mean / its across-image SD (clean images), z_b likewise for b, and the
    controversiality is the smooth minimum of (z_a, -z_b) with ``sharpness`` k (the Contrast
    objective's value; within log(2)/k of the hard minimum, in SD units); > 0 means the models
    disagree in the intended directions.

    With an image-computable ``brain`` (see :func:`count_recovery`): each image counts once per
    unordered pair, in the orientation ((a, b) or (b, a) probe) with the larger margin, if that
    margin is > 0. There the brain follows the model whose direction its target-set mean moved,
    but only when the change exceeds ``noise_z`` x the noise SD of an R-trial mean; otherwise the
    image is undecided. The noise SD comes from the dataset's noise ceiling: NC_t is the fraction
    of the R-trial mean's variance that is signal, so with signal SD s_t (the noise-free brain's
    response SD) the noise SD of the trial mean is s_t sqrt((1 - NC_t) / NC_t) (R is already in
    NC_t: NC = ncsnr^2 / (ncsnr^2 + 1/R)); the target-set mean's noise SD is
    sqrt(sum_t s_t^2 (1 - NC_t) / NC_t) / K (independent noise over its K targets), in the same
    SD units as ``brain_z``. ``recovery[a, b]`` = share of decided images on which the brain
    sided with a (recovery[a, b] + recovery[b, a] = 1); ``decided`` marks pairs where a two-sided
    binomial test against 0.5 is significant after Holm correction over pairs (per norm, eps).
    Without ``noise_ceiling`` the threshold is 0 (any change counts; attribute ``noise_threshold``).

    Parameters
    ----------
    probes : dict (model_a, model_b) -> ProbeResult or list (one per norm)
    noise_ceiling : float or array T, optional
        The dataset's noise ceiling per target (fraction in (0, 1], of the R-trial mean).
    noise_z : float
        How many noise SDs the brain's change must exceed to count as following a model.
    predictivity : DataArray (model, image), optional
        Per-image predictivity on the same images; its discriminability (fraction of pairs
        separated, :func:`discriminability`) is stored alongside for comparison.

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``z_a``, ``z_b``, ``margin`` (model_a, model_b, norm, eps, image); ``controversiality``
        (+ CI) (model_a, model_b, norm, eps): mean margin; ``fraction_controversial``. With a brain:
        ``brain_z`` (model_a, model_b, norm, eps, image), ``recovery``, ``n_controversial``,
        ``n_follow_a``, ``n_follow_b``, ``n_undecided``, ``p_value``, ``p_holm``, ``decided``
        (model_a, model_b, norm, eps; symmetric entries mirror), ``fraction_decided`` (norm, eps). With predictivity: ``predictivity_significant`` (model_a, model_b),
        ``predictivity_fraction_significant``.
    """
    x = as_images(images)
    n = x.shape[0]
    if not probes:
        raise ConfigError("controversial needs probes: a dict (model_a, model_b) -> Contrast ProbeResult")
    names = list(models)
    clean = {k: forward(m, x, batch_size) for k, m in models.items()}
    if brain is not None:
        clean["__brain__"] = forward(brain, x, batch_size)
    idx = resolve(models[names[0]], targets, clean[names[0]].shape[1])
    unit = {k: model_mean_sd(brain if k == "__brain__" else models[k], c.double().numpy(), idx,  # the Contrast's scale
                             f"target-set mean of {k}")
            for k, c in clean.items()}
    per_pair: dict[tuple[str, str, str], Any] = {}
    for key, value in probes.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(k in models for k in key)):
            raise ConfigError(f"controversial probes key {key!r} must be a pair of model names among {names}")
        for pr in value if isinstance(value, (list, tuple)) else [value]:
            per_pair[(key[0], key[1], norm_name(pr.norm))] = pr
    norms = sorted({k[2] for k in per_pair})
    all_eps = np.unique(np.concatenate([eps_array(pr) for pr in per_pair.values()]))
    m = len(names)
    shape = (m, m, len(norms), len(all_eps), n)
    z_a, z_b, brain_z = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for (a, b, nm), pr in progress(list(per_pair.items()), desc="controversial"):
        i, j, k = names.index(a), names.index(b), norms.index(nm)
        pos = np.searchsorted(all_eps, eps_array(pr))
        z_a[i, j, k, pos] = response_change(models[a], x, pr.delta, clean[a], batch_size)[..., idx].mean(-1) / unit[a]
        z_b[i, j, k, pos] = response_change(models[b], x, pr.delta, clean[b], batch_size)[..., idx].mean(-1) / unit[b]
        if brain is not None:
            brain_z[i, j, k, pos] = (
                response_change(brain, x, pr.delta, clean["__brain__"], batch_size)[..., idx].mean(-1) / unit["__brain__"]
            )
    pair = np.stack([z_a, -z_b], -1)
    with np.errstate(invalid="ignore"):
        margin = -np.logaddexp(-sharpness * pair[..., 0], -sharpness * pair[..., 1]) / sharpness
    w = boot_weights(n, n_boot, seed, groups=groups)
    lo, hi = ci(boot_means(margin, w), level)
    d5 = ("model_a", "model_b", "norm", "eps", "image")
    d4 = d5[:-1]
    with np.errstate(invalid="ignore"):
        contro = np.where(np.isnan(margin), np.nan, (margin > 0).astype(float))
    data: dict[str, Any] = {
        "z_a": (d5, z_a),
        "z_b": (d5, z_b),
        "margin": (d5, margin),
        "controversiality": (d4, margin.mean(-1)),
        "controversiality_ci_low": (d4, lo),
        "controversiality_ci_high": (d4, hi),
        "fraction_controversial": (d4, contro.mean(-1)),
    }
    noise_z_units = np.nan
    if brain is not None:
        noise_z_units = _noise_of_mean(brain, clean["__brain__"].double().numpy(), idx, noise_ceiling, unit["__brain__"])
        thr = noise_z * noise_z_units if np.isfinite(noise_z_units) else 0.0
        counts = count_recovery(margin, brain_z, thr, alpha)
        data.update(brain_z=(d5, brain_z), **{k: (d4, v) for k, v in counts.items() if k != "fraction_decided"})
        data["fraction_decided"] = (("norm", "eps"), counts["fraction_decided"])
    if predictivity is not None:
        from brainprobe.analysis._discriminability import discriminability

        disc = discriminability({"predictivity": predictivity.sel(model=names)}, alpha=alpha, n_boot=n_boot, seed=seed)
        data["predictivity_significant"] = (("model_a", "model_b"), disc["significant"].values[0])
        data["predictivity_fraction_significant"] = ((), float(disc["fraction_significant"].values[0]))
    return xr.Dataset(
        data,
        coords={"model_a": names, "model_b": names, "norm": norms, "eps": all_eps, "image": np.arange(n)},
        attrs={
            "analysis": "controversial",
            "sharpness": float(sharpness),
            "units": "across-image SD of the clean target-set mean",
            "alpha": float(alpha),
            "has_brain": int(brain is not None),
            "noise_threshold": (f"{noise_z:g} x noise SD of the R-trial target-set mean = {noise_z * noise_z_units:.4g} "
                                "(brain_z units)" if np.isfinite(noise_z_units) else "none: any change counts"),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


def _noise_of_mean(brain: nn.Module, clean: np.ndarray, idx: np.ndarray, noise_ceiling: Any, unit: float) -> float:
    """Noise SD of the R-trial target-set mean in ``brain_z`` units (NaN without a noise ceiling)."""
    if noise_ceiling is None:
        return np.nan
    nc = np.broadcast_to(np.asarray(noise_ceiling, dtype=np.float64).reshape(-1), (clean.shape[1],))[idx] \
        if np.ndim(noise_ceiling) == 0 or np.size(noise_ceiling) == clean.shape[1] else None
    if nc is None:
        raise ConfigError(f"controversial: noise_ceiling has {np.size(noise_ceiling)} values; give one, or one per "
                          f"target ({clean.shape[1]})")
    if not (np.all(np.isfinite(nc)) and np.all(nc > 0) and np.all(nc <= 1)):
        raise ConfigError("controversial: noise_ceiling must be a fraction in (0, 1] for every target read out; "
                          "a dataset without repeats has none (pass noise_ceiling=None)")
    signal = model_sd(brain, clean, "clean responses of the brain")[idx]
    noise = signal * np.sqrt((1 - nc) / nc)
    return float(np.sqrt((noise**2).sum()) / len(idx) / unit)


def count_recovery(margin: np.ndarray, brain_z: np.ndarray, threshold: float, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Which model the brain follows on controversial images, each image once per unordered pair.

    Parameters
    ----------
    margin : array M x M x norm x eps x N
        Controversiality of the (a, b) probe (> 0: a up and b down as intended).
    brain_z : array M x M x norm x eps x N
        The brain's target-set mean change under the (a, b) probe, in SD units.
    threshold : float
        |brain_z| must exceed it to count (noise of the trial mean); else the image is undecided.
    alpha : float

    Returns
    -------
    dict of arrays M x M x norm x eps
        ``n_controversial`` (images with a controversial orientation), ``n_follow_a``,
        ``n_follow_b``, ``n_undecided``, ``recovery`` = n_follow_a / (n_follow_a + n_follow_b),
        ``p_value`` (two-sided binomial vs 0.5 on the decided images), ``p_holm`` (Holm over the
        unordered pairs tested, i.e. with >= 1 decided image, per norm and eps), ``decided``; and ``fraction_decided`` (norm x eps).
        Entry [a, b] is from a's side, [b, a] mirrors it.
    """
    from scipy.stats import binomtest

    m = margin.shape[0]
    shape = margin.shape[:-1]
    out = {k: np.zeros(shape, dtype=np.int64) for k in ("n_controversial", "n_follow_a", "n_follow_b", "n_undecided")}
    pvals = np.full(shape, np.nan)
    iu = np.triu_indices(m, 1)
    for i, j in zip(*iu):
        m1, m2 = np.nan_to_num(margin[i, j], nan=-np.inf), np.nan_to_num(margin[j, i], nan=-np.inf)
        use1 = m1 >= m2  # the orientation with the larger margin
        best = np.where(use1, m1, m2)
        contro = best > 0
        z = np.where(use1, brain_z[i, j], -brain_z[j, i])  # > 0: towards i (on (j, i) probes, falling = towards i)
        z = np.nan_to_num(z, nan=0.0)
        to_i = contro & (z > threshold)
        to_j = contro & (z < -threshold)
        n_c, n_i, n_j = contro.sum(-1), to_i.sum(-1), to_j.sum(-1)
        for key, a_side, b_side in (("n_controversial", n_c, n_c), ("n_follow_a", n_i, n_j), ("n_follow_b", n_j, n_i),
                                    ("n_undecided", n_c - n_i - n_j, n_c - n_i - n_j)):
            out[key][i, j], out[key][j, i] = a_side, b_side
        for idx in np.ndindex(n_c.shape):
            t = int(n_i[idx] + n_j[idx])
            if t > 0:
                pvals[(i, j) + idx] = pvals[(j, i) + idx] = binomtest(int(n_i[idx]), t, 0.5).pvalue
    dec = out["n_follow_a"] + out["n_follow_b"]
    with np.errstate(invalid="ignore", divide="ignore"):
        recovery = np.where(dec > 0, out["n_follow_a"] / np.maximum(dec, 1), np.nan)
    upper = pvals[iu[0], iu[1]]  # pairs x norm x eps
    adj = np.full_like(upper, np.nan)
    for cell in np.ndindex(upper.shape[1:]):  # Holm over the pairs actually tested (>= 1 decided image)
        col = upper[(slice(None),) + cell]
        ok = np.isfinite(col)
        if ok.any():
            adj[(np.flatnonzero(ok),) + cell] = holm(col[ok])
    p_holm = np.full(shape, np.nan)
    p_holm[iu[0], iu[1]] = adj
    p_holm[iu[1], iu[0]] = adj
    tested = ~np.isnan(upper)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (np.nan_to_num(adj, nan=1.0) < alpha).sum(0) / np.maximum(tested.sum(0), 1)
    return {**out, "recovery": recovery, "p_value": pvals, "p_holm": p_holm,
            "decided": np.nan_to_num(p_holm, nan=1.0) < alpha,
            "fraction_decided": np.where(tested.sum(0) > 0, frac, np.nan)}
