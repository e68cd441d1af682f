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

    With an image-computable ``brain``: on each controversial image (margin > 0) the brain
    follows a when its own target-set mean rises, b when it falls. ``recovery[a, b]`` = share of
    controversial images (both orientations pooled: probes (a, b) and (b, a)) on which the brain
    sided with a, so recovery[a, b] + recovery[b, a] = 1; ``decided`` marks pairs where a
    two-sided binomial test against 0.5 is significant after Holm correction over pairs.

    Parameters
    ----------
    probes : dict (model_a, model_b) -> ProbeResult or list (one per norm)
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
        ``p_value``, ``p_holm``, ``decided`` (model_a, model_b, norm, eps), ``fraction_decided``
        (norm, eps). With predictivity: ``predictivity_significant`` (model_a, model_b),
        ``predictivity_fraction_significant``.
    """
    from scipy.stats import binomtest

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
    if brain is not None:
        with np.errstate(invalid="ignore"):
            ok = margin > 0
            follows_a = ok & (brain_z > 0)
            follows_b = ok & (brain_z < 0)
        # pool both orientations: on (b, a) probes, following "a" of that pair means siding with b
        wins = follows_a.sum(-1) + np.swapaxes(follows_b.sum(-1), 0, 1)
        total = (follows_a | follows_b).sum(-1) + np.swapaxes((follows_a | follows_b).sum(-1), 0, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recovery = np.where(total > 0, wins / np.maximum(total, 1), np.nan)
        pvals = np.full(recovery.shape, np.nan)
        iu = np.triu_indices(m, 1)
        for kk in range(len(norms)):
            for ee in range(len(all_eps)):
                for i, j in zip(*iu):
                    t = int(total[i, j, kk, ee])
                    if t > 0:
                        pv = binomtest(int(wins[i, j, kk, ee]), t, 0.5).pvalue
                        pvals[i, j, kk, ee] = pvals[j, i, kk, ee] = pv
        upper = pvals[iu[0], iu[1]]  # pairs x norm x eps
        filled = np.where(np.isnan(upper), 1.0, upper)
        adj = np.moveaxis(holm(np.moveaxis(filled, 0, -1)), -1, 0)
        adj = np.where(np.isnan(upper), np.nan, adj)
        p_holm = np.full(recovery.shape, np.nan)
        p_holm[iu[0], iu[1]] = adj
        p_holm[iu[1], iu[0]] = adj
        decided = np.nan_to_num(p_holm, nan=1.0) < alpha
        tested = ~np.isnan(upper)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (np.nan_to_num(adj, nan=1.0) < alpha).sum(0) / np.maximum(tested.sum(0), 1)
        data.update(
            brain_z=(d5, brain_z),
            recovery=(d4, recovery),
            n_controversial=(d4, total.astype(np.int64)),
            p_value=(d4, pvals),
            p_holm=(d4, p_holm),
            decided=(d4, decided),
            fraction_decided=(("norm", "eps"), np.where(tested.sum(0) > 0, frac, np.nan)),
        )
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
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
