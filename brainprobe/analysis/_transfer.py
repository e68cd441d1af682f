"""Transfer: model A's probes shown to model B (and to an image-computable brain)."""

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
    nanmean_last,
    model_info,
    organise,
    pearson,
    readout_of,
    resolve,
    response_change,
    target_sd,
    weighted_pearson,
)
from brainprobe.errors import ConfigError


def transfer(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    objective: Any = None,
    brain: nn.Module | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    info: Any = None,
    batch_size: int = 64,
) -> xr.Dataset:
    """Transfer matrix: A's probes applied to B, relative to B's own white-box probes.

    transfer[A, B] = mean over images of B's change in the direction A targeted under A's probe
    / mean over images of B's change under B's own probe (same norm, budget and objective).
    The diagonal is 1 by construction. For a ``drive`` objective the change "in the direction
    targeted" is direction x the target-set mean change; for ``shift`` it is B's change pattern
    projected on the unit pattern of A's own change (targets divided by their across-image SD
    when the objective normalises), and B's own change is the length of B's pattern.

    For linear models y = w . x (one target, box not binding), l2 probes give
    transfer = cos(w_A, w_B) and linf probes give w_B . sign(w_A) / ||w_B||_1.

    With ``brain`` (an image-computable brain, e.g. a SimulatedBrain): the brain's actual change
    under each model's probes in the direction that model targeted, vs the model's own predicted
    change: their ratio of means (``brain_ratio``, 1 = the brain moves as much as predicted) and
    their correlation across images (``brain_r``, closed-loop validation of the probes).

    Parameters
    ----------
    models : dict name -> nn.Module
        All share the same targets (columns).
    images : tensor N x 3 x H x W
    probes : dict name -> ProbeResult or list (one per norm)
        Each model's own probes of ``images`` with ``objective``; same budgets per norm.
    objective : Drive / Shift objective or string (``"drive:V1"``, ``"shift"``), optional
        The objective the probes maximised; default: the name the probe results carry
        (``ProbeResult.objective``).
    brain : nn.Module, optional

    Returns
    -------
    xarray.Dataset
        ``change`` (source_model, target_model, norm, eps, image): B's change in A's direction;
        ``transfer``, ``transfer_ci_low/high`` (source_model, target_model, norm, eps); the eps
        coordinate is the union of the norms' budgets (NaN where a norm was not probed).
        With a brain: ``predicted``, ``brain_change`` (source_model, norm, eps, image),
        ``brain_ratio`` (+ CI) and ``brain_r`` (+ CI) (source_model, norm, eps).
        Coordinates ``source_training``, ``source_architecture``, ``target_training``,
        ``target_architecture``.
    """
    x = as_images(images)
    n = x.shape[0]
    by_model = organise(probes)
    readout = readout_of(objective, by_model)
    names = list(by_model)
    unknown = [k for k in names if k not in models]
    if unknown:
        raise ConfigError(f"probes given for {unknown} but no such models; pass them in models=")
    norms = sorted({nm for d in by_model.values() for nm in d})
    grid: dict[str, np.ndarray] = {}
    for nm in norms:
        for name in names:
            if nm not in by_model[name]:
                raise ConfigError(f"model {name!r} has no {nm} probes; transfer needs every model's own probes per norm")
            e = eps_array(by_model[name][nm])
            if nm in grid and not np.allclose(grid[nm], e):
                raise ConfigError(f"{nm} probes use different budgets across models; transfer compares at equal eps")
            grid[nm] = e
    all_eps = np.unique(np.concatenate(list(grid.values())))
    pos = {nm: np.searchsorted(all_eps, grid[nm]) for nm in norms}
    n_eps = len(all_eps)
    receivers: dict[str, nn.Module] = {k: models[k] for k in names}
    if brain is not None:
        receivers["__brain__"] = brain
    clean = {k: forward(m, x, batch_size) for k, m in receivers.items()}
    n_targets = {c.shape[1] for c in clean.values()}
    if len(n_targets) != 1:
        raise ConfigError(f"models (and brain) give different numbers of targets {sorted(n_targets)}; transfer needs shared targets")
    idx = resolve(receivers[names[0]], readout.targets, clean[names[0]].shape[1])
    sd = {k: target_sd(c.double().numpy(), f"clean responses of {k}") if readout.kind == "shift" and readout.normalize else None
          for k, c in clean.items()}

    raw: dict[tuple[str, str, str], np.ndarray] = {}  # (source, receiver, norm) -> E x N x T
    jobs = [(a, nm) for a in names for nm in norms]
    for a, nm in progress(jobs, desc="transfer"):
        delta = by_model[a][nm].delta
        for b, m in receivers.items():
            raw[(a, b, nm)] = response_change(m, x, delta, clean[b], batch_size)

    shape = (len(names), len(names), len(norms), n_eps, n)
    change = np.full(shape, np.nan)  # NaN at budgets a norm was not probed with
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            for k, nm in enumerate(norms):
                pattern = raw[(a, a, nm)] if readout.kind == "shift" else None
                change[i, j, k, pos[nm]] = _read(readout, raw[(a, b, nm)], idx, sd[b], pattern, pattern_sd=sd[a])
    own = np.stack([change[j, j] for j in range(len(names))])  # target x norm x eps x image
    _warn_undefined(change, names, norms, pos)
    w = boot_weights(n, n_boot, seed)
    num_b = boot_means(change, w)
    den_b = boot_means(own, w)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = nanmean_last(change) / nanmean_last(own)[None]
        ratio_lo, ratio_hi = ci(num_b / den_b, level)
    table = model_info({k: models[k] for k in names}, info)
    dims5 = ("source_model", "target_model", "norm", "eps", "image")
    dims4 = dims5[:-1]
    data: dict[str, Any] = {
        "change": (dims5, change),
        "transfer": (dims4, ratio),
        "transfer_ci_low": (dims4, ratio_lo),
        "transfer_ci_high": (dims4, ratio_hi),
    }
    if brain is not None:
        predicted = np.stack([own[i] for i in range(len(names))])  # source x norm x eps x image
        brain_change = np.full_like(predicted, np.nan)
        for i, a in enumerate(names):
            for k, nm in enumerate(norms):
                pattern = raw[(a, a, nm)] if readout.kind == "shift" else None
                # the brain's SD (not the model's) scales its own pattern
                brain_change[i, k, pos[nm]] = _read(readout, raw[(a, "__brain__", nm)], idx, sd["__brain__"], pattern,
                                           pattern_sd=sd[a])
        pb, bb = boot_means(predicted, w), boot_means(brain_change, w)
        with np.errstate(divide="ignore", invalid="ignore"):
            b_ratio = nanmean_last(brain_change) / nanmean_last(predicted)
            b_lo, b_hi = ci(bb / pb, level)
        valid = np.isfinite(brain_change) & np.isfinite(predicted)
        bz, pz = np.where(valid, brain_change, 0.0), np.where(valid, predicted, 0.0)
        r = np.where(valid.all(-1), pearson(bz, pz), np.nan)
        r_lo, r_hi = ci(weighted_pearson(bz, pz, w), level)
        r_lo, r_hi = np.where(valid.all(-1), r_lo, np.nan), np.where(valid.all(-1), r_hi, np.nan)
        d3 = ("source_model", "norm", "eps")
        data.update(
            predicted=(d3 + ("image",), predicted),
            brain_change=(d3 + ("image",), brain_change),
            brain_ratio=(d3, b_ratio),
            brain_ratio_ci_low=(d3, b_lo),
            brain_ratio_ci_high=(d3, b_hi),
            brain_r=(d3, r),
            brain_r_ci_low=(d3, r_lo),
            brain_r_ci_high=(d3, r_hi),
        )
    return xr.Dataset(
        data,
        coords={
            "source_model": names,
            "target_model": names,
            "norm": norms,
            "eps": all_eps,
            "image": np.arange(n),
            "source_training": ("source_model", table["training"].to_numpy(dtype=str)),
            "source_architecture": ("source_model", table["architecture"].to_numpy(dtype=str)),
            "target_training": ("target_model", table["training"].to_numpy(dtype=str)),
            "target_architecture": ("target_model", table["architecture"].to_numpy(dtype=str)),
        },
        attrs={
            "analysis": "transfer",
            "objective": readout.name,
            "has_brain": int(brain is not None),
            "brain": str(getattr(brain, "name", type(brain).__name__)) if brain is not None else "",
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


def _warn_undefined(change: np.ndarray, names: list[str], norms: list[str], pos: dict[str, np.ndarray]) -> None:
    """Warn when a source's own probe made no change, so the direction it targeted is undefined."""
    import warnings

    for i, a in enumerate(names):
        for k, nm in enumerate(norms):
            bad = int(np.isnan(change[i, i, k, pos[nm]]).sum())
            if bad:
                warnings.warn(
                    f"transfer check: {bad} {nm} probe(s) of {a!r} changed nothing (zero response pattern), so the "
                    "direction they targeted is undefined; those images are left out of the means"
                )


def _read(readout: Any, change: np.ndarray, idx: np.ndarray, sd: np.ndarray | None, pattern: np.ndarray | None,
          pattern_sd: np.ndarray | None = None) -> np.ndarray:
    """Readout of ``change`` (E x N x T); for shift, projected on ``pattern`` (scaled by ``pattern_sd``)."""
    from brainprobe.analysis._common import apply_readout

    if readout.kind == "drive" or pattern is None:
        return apply_readout(readout, change, idx, sd)
    c, p = change[..., idx], pattern[..., idx]
    if readout.normalize:
        c = c / sd[idx]  # type: ignore[index]
        p = p / (pattern_sd if pattern_sd is not None else sd)[idx]  # type: ignore[index]
    size = np.linalg.norm(p, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, (c * p).sum(-1) / size, np.nan)
