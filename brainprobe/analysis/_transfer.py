"""Transfer: model A's probes shown to model B (and to an image-computable brain)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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
    model_sd,
    target_sd,
    weighted_pearson,
)
from brainprobe.analysis._baselines import KINDS, random_like
from brainprobe.errors import ConfigError


def transfer(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    objective: Any = None,
    brain: nn.Module | None = None,
    responses: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]] | None = None,
    baselines: Sequence[str] = KINDS,
    baseline_responses: Mapping[str, Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]] | None = None,
    groups: Any = None,
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

    Random baselines: for every source A, norm and image, random perturbations with the exact
    norm of A's probe (white and 1/f noise, :func:`brainprobe.analysis._baselines.random_like`)
    are shown to every model. ``random_change[k, A, B]`` is the *size* of B's change under them
    (|target-set mean| for drive, the pattern length for shift): an upper bound on their change
    along any direction, so a probe whose change along A's direction beats it carries direction,
    not just size. ``random_transfer`` divides it by B's own white-box change like ``transfer``;
    ``beats_random`` = transfer - random_transfer (paired bootstrap).

    Pairs: ``same_architecture[A, B]`` marks off-diagonal pairs of one architecture (e.g. a
    robustified copy and the network it was distilled from); ``cross_architecture_transfer`` and
    ``same_architecture_transfer`` average the ratio over each kind of pair.

    With ``brain`` (an image-computable brain, e.g. a SimulatedBrain): the brain's change under
    each model's probes in the direction that model targeted, in brain SD units (``brain_abs``:
    each target's change divided by the brain's response SD: on its training images when it has
    ``response_sd``, else across these images), the cosine between the brain's and the model's change patterns (``brain_cos``, each
    target scaled by its SD), and the same two under the equal-norm random perturbations
    (``brain_random_abs``: size of the brain's change; ``brain_random_cos``). Secondary: the
    ratio of means brain / model-predicted change (``brain_ratio``) and their correlation
    across images (``brain_r``).

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
    responses : dict source -> norm -> receiver -> array E x N x T, optional
        Response changes already computed (e.g. the pipeline's transfer shards): receiver
        ``"brain"`` is the brain. Missing ones are computed here.
    baselines : sequence of {"white", "pink"}
        Random baselines to compute (empty: none).
    baseline_responses : dict kind -> source -> norm -> receiver -> array E x N x T, optional
        Precomputed responses to the random baselines (same layout as ``responses``).
    groups : sequence of N labels, optional
        Bootstrap resamples whole groups (e.g. the photo each crop came from).

    Returns
    -------
    xarray.Dataset
        ``change`` (source_model, target_model, norm, eps, image): B's change in A's direction;
        ``transfer``, ``transfer_ci_low/high`` (source_model, target_model, norm, eps); the eps
        coordinate is the union of the norms' budgets (NaN where a norm was not probed).
        ``same_architecture`` (source_model, target_model); ``cross_architecture_transfer``,
        ``same_architecture_transfer`` (+ CI) (norm, eps). With baselines: ``random_change``
        (noise, source_model, target_model, norm, eps, image), ``random_transfer`` and
        ``beats_random`` (+ CI) (noise, source_model, target_model, norm, eps).
        With a brain: ``predicted``, ``brain_change``, ``brain_abs``, ``brain_cos`` (source_model,
        norm, eps, image); ``brain_random_abs``, ``brain_random_cos`` (noise, source_model, norm,
        eps, image); ``brain_ratio`` (+ CI) and ``brain_r`` (+ CI) (source_model, norm, eps).
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
    baselines = list(baselines)
    bad = [k for k in baselines if k not in KINDS]
    if bad:
        raise ConfigError(f"transfer: unknown random baselines {bad}; use some of {list(KINDS)}")
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
        receivers[BRAIN] = brain
    clean = {k: forward(m, x, batch_size) for k, m in receivers.items()}
    n_targets = {c.shape[1] for c in clean.values()}
    if len(n_targets) != 1:
        raise ConfigError(f"models (and brain) give different numbers of targets {sorted(n_targets)}; transfer needs shared targets")
    idx = resolve(receivers[names[0]], readout.targets, clean[names[0]].shape[1])
    sd = {k: model_sd(receivers[k], c.double().numpy(), f"clean responses of {k}") if readout.kind == "shift" and readout.normalize else None
          for k, c in clean.items()}
    sd_abs = {k: _sd_on(receivers[k], c.double().numpy(), idx, k) for k, c in clean.items()}  # absolute units, cosines

    def given(table: Any, a: str, nm: str, b: str, shape: tuple[int, ...]) -> np.ndarray | None:
        arr = ((table or {}).get(a, {}) or {}).get(nm, {}).get(b) if table else None
        if arr is None:
            return None
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != shape:
            raise ConfigError(f"transfer: precomputed response change {a}->{b} ({nm}) has shape {arr.shape}, "
                              f"expected {shape} (E x N x T)")
        return arr

    raw: dict[tuple[str, str, str], np.ndarray] = {}  # (source, receiver, norm) -> E x N x T
    rnd: dict[tuple[str, str, str, str], np.ndarray] = {}  # (kind, source, receiver, norm) -> E x N x T
    jobs = [(a, nm) for a in names for nm in norms]
    t_all = next(iter(n_targets))
    for a, nm in progress(jobs, desc="transfer"):
        delta = by_model[a][nm].delta
        shape = (len(grid[nm]), n, t_all)
        for b, m in receivers.items():
            got = given(responses, a, nm, "brain" if b == BRAIN else b, shape)
            raw[(a, b, nm)] = got if got is not None else response_change(m, x, delta, clean[b], batch_size)
        for kind in baselines:
            noise = None
            for b, m in receivers.items():
                got = given((baseline_responses or {}).get(kind), a, nm, "brain" if b == BRAIN else b, shape)
                if got is None:
                    if noise is None:
                        noise = random_like(delta, nm, kind, baseline_seed(seed, a, nm, kind))
                    got = response_change(m, x, noise, clean[b], batch_size)
                rnd[(kind, a, b, nm)] = got

    shape = (len(names), len(names), len(norms), n_eps, n)
    change = np.full(shape, np.nan)  # NaN at budgets a norm was not probed with
    rand = np.full((len(baselines),) + shape, np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            for k, nm in enumerate(norms):
                pattern = raw[(a, a, nm)] if readout.kind == "shift" else None
                change[i, j, k, pos[nm]] = _read(readout, raw[(a, b, nm)], idx, sd[b], pattern, pattern_sd=sd[a])
                for q, kind in enumerate(baselines):
                    rand[q, i, j, k, pos[nm]] = _size(readout, rnd[(kind, a, b, nm)], idx, sd[b])
    own = np.stack([change[j, j] for j in range(len(names))])  # target x norm x eps x image
    _warn_undefined(change, names, norms, pos)
    w = boot_weights(n, n_boot, seed, groups=groups)
    num_b = boot_means(change, w)
    den_b = boot_means(own, w)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = nanmean_last(change) / nanmean_last(own)[None]
        ratio_b = num_b / den_b
        ratio_lo, ratio_hi = ci(ratio_b, level)
    table = model_info({k: models[k] for k in names}, info)
    s_arch = table["architecture"].to_numpy(dtype=str)
    same = (s_arch[:, None] == s_arch[None, :]) & ~np.eye(len(names), dtype=bool) & (s_arch[:, None] != "unknown")
    cross = (s_arch[:, None] != s_arch[None, :]) | ((s_arch[:, None] == "unknown") & ~np.eye(len(names), dtype=bool))
    dims5 = ("source_model", "target_model", "norm", "eps", "image")
    dims4 = dims5[:-1]
    data: dict[str, Any] = {
        "change": (dims5, change),
        "transfer": (dims4, ratio),
        "transfer_ci_low": (dims4, ratio_lo),
        "transfer_ci_high": (dims4, ratio_hi),
        "same_architecture": (("source_model", "target_model"), same),
    }
    for label, mask in (("cross", cross), ("same", same)):
        v, b_ = _pair_mean(ratio, mask), _pair_mean(ratio_b, mask)
        lo, hi = ci(b_, level)
        data[f"{label}_architecture_transfer"] = (("norm", "eps"), v)
        data[f"{label}_architecture_transfer_ci_low"] = (("norm", "eps"), lo)
        data[f"{label}_architecture_transfer_ci_high"] = (("norm", "eps"), hi)
    if baselines:
        with np.errstate(divide="ignore", invalid="ignore"):
            r_ratio = nanmean_last(rand) / nanmean_last(own)[None, None]
            r_b = boot_means(rand, w) / den_b[None]
            beat_b = ratio_b[None] - r_b
        r_lo, r_hi = ci(r_b, level)
        b_lo, b_hi = ci(beat_b, level)
        d6 = ("noise",) + dims5
        data.update(
            random_change=(d6, rand),
            random_transfer=(d6[:-1], r_ratio),
            random_transfer_ci_low=(d6[:-1], r_lo),
            random_transfer_ci_high=(d6[:-1], r_hi),
            beats_random=(d6[:-1], ratio[None] - r_ratio),
            beats_random_ci_low=(d6[:-1], b_lo),
            beats_random_ci_high=(d6[:-1], b_hi),
        )
    if brain is not None:
        d3 = ("source_model", "norm", "eps")
        predicted = np.stack([own[i] for i in range(len(names))])  # source x norm x eps x image
        brain_change = np.full_like(predicted, np.nan)
        brain_abs = np.full_like(predicted, np.nan)
        brain_cos = np.full_like(predicted, np.nan)
        b_rand_abs = np.full((len(baselines),) + predicted.shape, np.nan)
        b_rand_cos = np.full_like(b_rand_abs, np.nan)
        for i, a in enumerate(names):
            for k, nm in enumerate(norms):
                mine, theirs = raw[(a, a, nm)], raw[(a, BRAIN, nm)]
                pattern = mine if readout.kind == "shift" else None
                # the brain's SD (not the model's) scales its own pattern
                brain_change[i, k, pos[nm]] = _read(readout, theirs, idx, sd[BRAIN], pattern, pattern_sd=sd[a])
                brain_abs[i, k, pos[nm]] = _along(readout, theirs, mine, idx, sd_abs[BRAIN], sd_abs[a])
                brain_cos[i, k, pos[nm]] = _cosine(theirs, mine, idx, sd_abs[BRAIN], sd_abs[a])
                for q, kind in enumerate(baselines):
                    rb, rm = rnd[(kind, a, BRAIN, nm)], rnd[(kind, a, a, nm)]
                    b_rand_abs[q, i, k, pos[nm]] = _size(readout, rb, idx, sd_abs[BRAIN], force_sd=True)
                    b_rand_cos[q, i, k, pos[nm]] = _cosine(rb, rm, idx, sd_abs[BRAIN], sd_abs[a])
        pb, bb = boot_means(predicted, w), boot_means(brain_change, w)
        with np.errstate(divide="ignore", invalid="ignore"):
            b_ratio = nanmean_last(brain_change) / nanmean_last(predicted)
            b_lo, b_hi = ci(bb / pb, level)
        valid = np.isfinite(brain_change) & np.isfinite(predicted)
        bz, pz = np.where(valid, brain_change, 0.0), np.where(valid, predicted, 0.0)
        r = np.where(valid.all(-1), pearson(bz, pz), np.nan)
        r_lo, r_hi = ci(weighted_pearson(bz, pz, w), level)
        r_lo, r_hi = np.where(valid.all(-1), r_lo, np.nan), np.where(valid.all(-1), r_hi, np.nan)
        data.update(
            predicted=(d3 + ("image",), predicted),
            brain_change=(d3 + ("image",), brain_change),
            brain_abs=(d3 + ("image",), brain_abs),
            brain_cos=(d3 + ("image",), brain_cos),
            brain_ratio=(d3, b_ratio),
            brain_ratio_ci_low=(d3, b_lo),
            brain_ratio_ci_high=(d3, b_hi),
            brain_r=(d3, r),
            brain_r_ci_low=(d3, r_lo),
            brain_r_ci_high=(d3, r_hi),
        )
        for var, arr in (("brain_abs", brain_abs), ("brain_cos", brain_cos)):
            lo, hi = ci(boot_means(arr, w), level)
            data.update({f"{var}_mean": (d3, nanmean_last(arr)), f"{var}_mean_ci_low": (d3, lo),
                         f"{var}_mean_ci_high": (d3, hi)})
        if baselines:
            data.update(brain_random_abs=(("noise",) + d3 + ("image",), b_rand_abs),
                        brain_random_cos=(("noise",) + d3 + ("image",), b_rand_cos))
    coords: dict[str, Any] = {
        "source_model": names,
        "target_model": names,
        "norm": norms,
        "eps": all_eps,
        "image": np.arange(n),
        "source_training": ("source_model", table["training"].to_numpy(dtype=str)),
        "source_architecture": ("source_model", s_arch),
        "target_training": ("target_model", table["training"].to_numpy(dtype=str)),
        "target_architecture": ("target_model", s_arch),
    }
    if baselines:
        coords["noise"] = baselines
    if groups is not None:
        coords["group"] = ("image", np.asarray(groups).astype(str))
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "analysis": "transfer",
            "objective": readout.name,
            "has_brain": int(brain is not None),
            "brain": str(getattr(brain, "name", type(brain).__name__)) if brain is not None else "",
            "baselines": "equal-norm random perturbations per source, norm and image: white (l2: uniform on the "
                         "sphere; linf: random sign x norm) and pink (1/f field scaled to the l2 norm / the linf norm)",
            "brain_units": "brain SD units: change / the brain's response SD (on the training images when it has "
                           "response_sd, else across these images)",
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )


BRAIN = "__brain__"


def baseline_seed(seed: int, source: str, norm: str, kind: str) -> int:
    """Seed of the random baseline of one source and norm (stable across runs and processes)."""
    import hashlib

    text = "|".join(map(str, (seed, "baseline", source, norm, kind)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _sd_on(model: nn.Module, clean: np.ndarray, idx: np.ndarray, who: str) -> np.ndarray:
    """Scale per target (T,) on the selected targets (1 elsewhere): the model's ``response_sd``
    (SD of its responses on the training images) when it has one, else the SD across these images."""
    what = f"clean responses of {'the brain' if who == BRAIN else who}"
    if getattr(model, "response_sd", None) is not None:
        return model_sd(model, clean, what)
    out = np.ones(clean.shape[1])
    out[idx] = target_sd(clean[:, idx], what)
    return out


def _pair_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the (source, target) entries selected by ``mask``: S x T x ... -> ... (NaN if none)."""
    if not mask.any():
        return np.full(values.shape[2:], np.nan)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[mask], axis=0)


def _size(readout: Any, change: np.ndarray, idx: np.ndarray, sd: np.ndarray | None, force_sd: bool = False) -> np.ndarray:
    """Size of a change (E x N x T): |target-set mean| for drive, the pattern length for shift.

    The change per target is divided by ``sd`` when the readout normalises, or when ``force_sd``.
    """
    c = change[..., idx]
    if force_sd or (readout.kind == "shift" and readout.normalize):
        c = c / sd[idx]  # type: ignore[index]
    if readout.kind == "drive":
        return np.abs(c.mean(-1))
    return np.linalg.norm(c, axis=-1)


def _along(readout: Any, change: np.ndarray, pattern: np.ndarray, idx: np.ndarray, sd: np.ndarray,
           pattern_sd: np.ndarray) -> np.ndarray:
    """Change (E x N x T) along the targeted direction, in SD units of the receiver.

    Drive: direction x the mean over targets of change / SD. Shift: the SD-scaled change projected
    on the unit SD-scaled ``pattern`` (the source's own change).
    """
    c = change[..., idx] / sd[idx]
    if readout.kind == "drive":
        return readout.direction * c.mean(-1)
    p = pattern[..., idx] / pattern_sd[idx]
    size = np.linalg.norm(p, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, (c * p).sum(-1) / size, np.nan)


def _cosine(a: np.ndarray, b: np.ndarray, idx: np.ndarray, sd_a: np.ndarray, sd_b: np.ndarray) -> np.ndarray:
    """Cosine over targets between two SD-scaled change patterns (E x N x T) -> E x N (NaN if one is 0)."""
    x, y = a[..., idx] / sd_a[idx], b[..., idx] / sd_b[idx]
    den = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


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
