"""The attack-artefact control: does standard probes' poor transfer survive stronger transfer attacks?

Poor transfer of a standard model's probes could be an artefact of plain PGD overfitting the
source model. The control re-makes each standard source's probes with two standard transfer
boosters and measures their transfer like the plain ones (:func:`brainprobe.analysis.transfer`):

- input diversity (Xie et al. 2019): random resize-and-pad of the input at each PGD step;
- ensembles (Liu et al. 2017): the objective averaged over the source and the other standard
  models, leaving out every model of the receiver's architecture (a receiver is never attacked
  white-box, not even through a same-architecture sibling).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    ProbeSubset,
    as_images,
    boot_means,
    boot_weights,
    ci,
    eps_array,
    model_info,
    organise,
)
from brainprobe.errors import ConfigError

VARIANTS = ("plain", "input_diversity", "ensemble")
"""Attack variants: plain PGD (the probes given), input diversity, leave-receiver-architecture-out ensembles."""


def attack_control(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    objective: Any,
    brain: nn.Module | None = None,
    brain_architecture: str = "brain",
    norms: Sequence[str] | None = None,
    n_images: int | None = 8,
    steps: int = 5,
    step_size: Any = None,
    input_diversity: float = 0.5,
    ensemble: bool = True,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    batch_size: int | None = None,
    budgets: Sequence[float] | None = None,
) -> xr.Dataset:
    """Transfer of standard models' probes made with input diversity and with ensembles, against plain PGD.

    For every standard source S (``training == "standard"``) and norm: the plain probes (given in
    ``probes``), probes of S with input diversity (probability ``input_diversity`` per step), and
    for every receiver architecture A != S's, probes of the ensemble of standard models not of
    architecture A (skipped when that ensemble is S alone: with two architectures there is none;
    the brain's ensemble is every standard candidate). Receivers are the candidates of another
    architecture than S (for ensembles: than every member) and the brain.

    Parameters
    ----------
    models : dict name -> nn.Module (shared targets); ``info`` / the models give training and architecture
    images : tensor N x 3 x H x W; the first ``n_images`` are used (None: all)
    probes : dict name -> ProbeResult or list per norm: every model's own plain probes of ``images``
    objective : the objective the probes maximised (Objective or string)
    brain : image-computable brain, optional; ``brain_architecture`` its family (kept out of ensembles' receivers
        only when a candidate shares it)
    norms : norms to run (default: the first norm of the probes)
    steps, step_size : PGD settings of the control probes (use the plain probes' settings)
    input_diversity : float in (0, 1]; 0 skips the variant
    ensemble : bool
    budgets : budgets (of the probes' grid) to run, e.g. ``[0.5]``; default every budget of the probes

    Returns
    -------
    xarray.Dataset
        ``change`` (variant, source_model, target_model, norm, eps, image): the receiver's change
        along S's direction (as in ``transfer``), NaN where the pair is not tested; ``own``
        (target_model, norm, eps, image): the receiver's change under its own plain probe;
        ``transfer`` (+ CI) (variant, source_model, target_model, norm, eps); ``cross_transfer``
        (+ CI) (variant): mean ratio over tested pairs, norms and budgets, and ``plain_same_pairs``
        (+ CI) (variant): plain PGD on exactly those pairs; with a brain ``brain_abs``
        (variant, source_model, norm, eps, image) in brain SD units and its means ``brain_change``
        (+ CI) (variant). Attrs: the ensembles used.
    """
    from brainprobe.analysis._transfer import transfer
    from brainprobe.probes import Ensemble, probe

    x_all = as_images(images)
    k = x_all.shape[0] if n_images is None else min(int(n_images), x_all.shape[0])
    if k < 2:
        raise ConfigError(f"attack_control needs >= 2 images, got {k}")
    if not 0 <= input_diversity <= 1:
        raise ConfigError(f"attack_control: input_diversity must be a probability in [0, 1], got {input_diversity}")
    x = x_all[:k]
    by_model = organise(probes)
    missing = [m for m in models if m not in by_model]
    if missing:
        raise ConfigError(f"attack_control needs every model's own plain probes; none for {missing}")
    names = list(models)
    table = model_info(models, info)
    training = table.loc[names, "training"].to_numpy(dtype=str)
    arch = dict(zip(names, table.loc[names, "architecture"].to_numpy(dtype=str)))
    sources = [m for m, t in zip(names, training) if t == "standard"]
    if not sources:
        raise ConfigError("attack_control: no standard models among the candidates (training coordinate); nothing to control")
    all_norms = sorted({nm for d in by_model.values() for nm in d})
    use_norms = list(norms) if norms else [all_norms[0]]
    bad = [nm for nm in use_norms if nm not in all_norms]
    if bad:
        raise ConfigError(f"attack_control: norms {bad} were not probed; probed: {all_norms}")
    eps = {nm: eps_array(by_model[names[0]][nm]) for nm in use_norms}
    keep = {nm: np.arange(len(eps[nm])) for nm in use_norms}
    if budgets is not None:
        want = np.asarray([float(b) for b in budgets], dtype=float)
        for nm in use_norms:
            keep[nm] = np.flatnonzero(np.isclose(eps[nm][:, None], want[None], rtol=1e-6, atol=0).any(1))
            if not len(keep[nm]):
                raise ConfigError(f"attack_control: none of the budgets {list(want)} was probed for {nm}; "
                                  f"probed: {eps[nm].tolist()}")
            eps[nm] = eps[nm][keep[nm]]
    all_eps = np.unique(np.concatenate(list(eps.values())))
    variants = ["plain"] + (["input_diversity"] if input_diversity > 0 else []) + (["ensemble"] if ensemble else [])

    plain = {m: {nm: ProbeSubset(by_model[m][nm], k, keep[nm]) for nm in use_norms} for m in names}
    shape = (len(variants), len(sources), len(names), len(use_norms), len(all_eps), k)
    change = np.full(shape, np.nan)
    own = np.full((len(names), len(use_norms), len(all_eps), k), np.nan)
    brain_abs = np.full((len(variants), len(sources), len(use_norms), len(all_eps), k), np.nan)
    ensembles_used: dict[str, list[str]] = {}
    settings = dict(steps=steps, step_size=step_size, batch_size=batch_size, progress=False)

    def measure(vi: int, si: int, ni: int, nm: str, made: Any, receivers: list[str], with_brain: bool) -> None:
        s = sources[si]
        members = {s: models[s], **{r: models[r] for r in receivers}}
        prs = {s: made, **{r: plain[r][nm] for r in receivers}}
        ds = transfer(members, x, prs, objective=objective, brain=brain if with_brain else None, baselines=(),
                      n_boot=2, seed=seed)
        pos = np.searchsorted(all_eps, eps[nm])
        for r in receivers:
            ri = names.index(r)
            change[vi, si, ri, ni, pos] = ds["change"].sel(source_model=s, target_model=r, norm=nm).values[pos]
            own[ri, ni, pos] = ds["change"].sel(source_model=r, target_model=r, norm=nm).values[pos]
        if with_brain:
            brain_abs[vi, si, ni, pos] = ds["brain_abs"].sel(source_model=s, norm=nm).values[pos]

    jobs = [(si, ni, nm) for si in range(len(sources)) for ni, nm in enumerate(use_norms)]
    for si, ni, nm in progress(jobs, desc="attack control"):
        s = sources[si]
        cross = [r for r in names if arch[r] != arch[s]]
        for vi, v in enumerate(variants):
            p_seed = seed * 1009 + 17 * si + 3 * ni + vi
            if v == "plain":
                measure(vi, si, ni, nm, plain[s][nm], cross, brain is not None)
            elif v == "input_diversity":
                made = probe(models[s], x, norm=nm, eps=eps[nm].tolist(), objective=objective, seed=p_seed,
                             input_diversity=float(input_diversity), **settings)
                measure(vi, si, ni, nm, made, cross, brain is not None)
            else:
                groups_by_members: dict[tuple[str, ...], tuple[list[str], bool]] = {}
                for a in sorted({arch[r] for r in cross}):
                    mem = tuple(m for m in sources if arch[m] != a)
                    groups_by_members.setdefault(mem, ([], False))[0].extend(r for r in cross if arch[r] == a)
                if brain is not None:
                    mem = tuple(m for m in sources if arch[m] != brain_architecture)
                    recv, _ = groups_by_members.get(mem, ([], False))
                    groups_by_members[mem] = (recv, True)
                for mem, (recv, with_brain) in groups_by_members.items():
                    if len(mem) < 2 or s not in mem:
                        continue  # the ensemble would be S alone: plain PGD again
                    ensembles_used[f"{s} -> {', '.join(recv + (['brain'] if with_brain else []))}"] = list(mem)
                    obj = Ensemble(models=[models[m] for m in mem], objective=objective)
                    made = probe(models[s], x, norm=nm, eps=eps[nm].tolist(), objective=obj, seed=p_seed, **settings)
                    if recv or with_brain:
                        measure(vi, si, ni, nm, made, recv, with_brain)

    grp = None if groups is None else np.asarray(groups)[:k]
    w = boot_weights(k, n_boot, seed, groups=grp)
    import warnings

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # untested pairs are all-NaN
        ratio = np.nanmean(change, -1) / np.nanmean(own, -1)[None, None]
        b_ratio = boot_means(change, w) / boot_means(own, w)[None, None]
    lo, hi = ci(b_ratio, level)
    cross_v, cross_b, plain_v, plain_b = [], [], [], []
    for vi in range(len(variants)):
        mask = np.isfinite(ratio[vi])
        cross_v.append(_masked_mean(ratio[vi], mask))
        cross_b.append(_masked_mean(b_ratio[vi], mask))
        plain_v.append(_masked_mean(ratio[0], mask))
        plain_b.append(_masked_mean(b_ratio[0], mask))
    c_lo, c_hi = ci(np.array(cross_b), level)
    p_lo, p_hi = ci(np.array(plain_b), level)
    dims = ("variant", "source_model", "target_model", "norm", "eps")
    data: dict[str, Any] = {
        "change": (dims + ("image",), change),
        "own": (("target_model", "norm", "eps", "image"), own),
        "transfer": (dims, ratio),
        "transfer_ci_low": (dims, lo),
        "transfer_ci_high": (dims, hi),
        "cross_transfer": (("variant",), np.array(cross_v)),
        "cross_transfer_ci_low": (("variant",), c_lo),
        "cross_transfer_ci_high": (("variant",), c_hi),
        "plain_same_pairs": (("variant",), np.array(plain_v)),
        "plain_same_pairs_ci_low": (("variant",), p_lo),
        "plain_same_pairs_ci_high": (("variant",), p_hi),
    }
    if brain is not None:
        flat = brain_abs.reshape(len(variants), -1, k)
        with np.errstate(invalid="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                b_mean = np.nanmean(flat, axis=(1, 2))
                b_boot = np.nanmean(boot_means(flat, w), axis=1)
        b_lo, b_hi = ci(b_boot, level)
        data["brain_abs"] = (("variant", "source_model", "norm", "eps", "image"), brain_abs)
        data["brain_change"] = (("variant",), b_mean)
        data["brain_change_ci_low"] = (("variant",), b_lo)
        data["brain_change_ci_high"] = (("variant",), b_hi)
    coords: dict[str, Any] = {
        "variant": variants, "source_model": sources, "target_model": names, "norm": use_norms, "eps": all_eps,
        "image": np.arange(k),
        "source_architecture": ("source_model", [arch[s] for s in sources]),
        "target_architecture": ("target_model", [arch[m] for m in names]),
        "target_training": ("target_model", training),
    }
    if grp is not None:
        coords["group"] = ("image", grp.astype(str))
    return xr.Dataset(data, coords=coords, attrs={
        "analysis": "attack_control",
        "input_diversity": float(input_diversity),
        "steps": int(steps),
        "ensembles": "; ".join(f"{k_}: [{', '.join(v)}]" for k_, v in ensembles_used.items()) or "none (needs >= 2 "
                     "standard models of architectures other than the receiver's)",
        "n_images": int(k),
        "n_boot": int(n_boot),
        "ci_level": float(level),
        "seed": int(seed),
    })


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the entries where ``mask`` (source x target x norm x eps) holds; keeps a trailing axis if any."""
    import warnings

    if not mask.any():
        return np.full(values.shape[mask.ndim:], np.nan) if values.ndim > mask.ndim else np.array(np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[mask], axis=0)
