"""Fragility of brain similarity: how far small per-image perturbations move a model's RSA score.

One joint objective over the whole image set: the mean over subjects of the Pearson correlation
between the model's RDM (correlation distance of its features to the N perturbed images) and each
subject's RDM. It couples all N images, so it is not a per-image objective of the probe engine;
instead all N images form one PGD problem whose per-image perturbations are stepped and projected
by the engine's own primitives (``brainprobe.probes._project``: l2-normalised or sign steps,
projection onto each image's eps-ball and the [0, 1] box). The brain RDMs are held fixed: below a
perceptual threshold, human IT's RDM is assumed unchanged (docs/real_data.md).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from brainprobe.errors import ConfigError

DIRECTIONS = {"lower": -1, "raise": 1}


def rdm_vector(features: torch.Tensor) -> torch.Tensor:
    """Differentiable correlation-distance RDM: N x F features -> N(N-1)/2 vector (1 - Pearson r).

    Entries in squareform order (row by row above the diagonal), as rsatoolbox stores them.
    """
    f = features.reshape(features.shape[0], -1).double()
    f = f - f.mean(dim=1, keepdim=True)
    f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = f @ f.T
    i, j = torch.triu_indices(f.shape[0], f.shape[0], offset=1, device=f.device)
    return 1.0 - c[i, j]


def pearson_rows(v: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pearson r of a vector (D,) with each row of ``targets`` (S x D) -> (S,)."""
    a = v - v.mean()
    b = targets - targets.mean(dim=1, keepdim=True)
    return (b @ a) / (b.norm(dim=1) * a.norm()).clamp_min(1e-12)


def rsa_score_fn(target_rdms: np.ndarray | torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """features (N x F) -> mean over subjects of Pearson r(model RDM, subject RDM) (a 0-d tensor).

    ``target_rdms``: S x N(N-1)/2 squareform vectors (e.g. ``RDMs.dissimilarities``).
    """
    t = torch.as_tensor(np.asarray(target_rdms), dtype=torch.float64)

    def score(features: torch.Tensor) -> torch.Tensor:
        return pearson_rows(rdm_vector(features), t.to(features.device)).mean()

    return score


def set_pgd(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    norm: str,
    eps: float,
    direction: int = 1,
    steps: int = 5,
    step_size: float | None = None,
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """PGD on one objective of the whole image set, with a separate eps-ball per image.

    Parameters
    ----------
    feature_fn : N x 3 x H x W float in [0, 1] -> N x F (differentiable).
    images : N x 3 x H x W, float32 in [0, 1].
    score_fn : N x F features -> 0-d tensor; PGD maximises ``direction * score``.
    norm : ``"l2"`` or ``"linf"``; eps: per-image budget in [0, 1] pixel units.
    steps, step_size : PGD iterations and step (default 2.5 * eps / steps, Madry et al.).

    Returns
    -------
    delta : N x 3 x H x W, the best iterate's perturbation (feasible: in every ball and the box).
    trace : (steps + 1,) float, ``score`` at the start and after each step.
    features : N x F, ``feature_fn`` at the best iterate (detached; saves a forward pass).
    """
    from brainprobe.probes._project import final_delta, project, step

    if norm not in ("l2", "linf"):
        raise ConfigError(f"norm {norm!r} is unknown; use 'l2' or 'linf'")
    if direction not in (1, -1):
        raise ConfigError(f"direction must be +1 or -1, got {direction!r}")
    n = images.shape[0]
    x = images.detach()
    eps_t = torch.full((n,), float(eps), dtype=x.dtype, device=x.device)
    alpha = torch.full((n,), float(step_size if step_size is not None else 2.5 * eps / steps), dtype=x.dtype,
                       device=x.device)
    adv = x.clone()
    trace = []
    best_val, best_adv, best_feat = -np.inf, x, None
    for t in range(steps + 1):
        last = t == steps
        adv.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            feats = feature_fn(adv)
            value = score_fn(feats)
        v = float(value.detach())
        trace.append(v)
        if direction * v > best_val:
            best_val, best_adv, best_feat = direction * v, adv.detach(), feats.detach()
        if last:
            break
        (grad,) = torch.autograd.grad(direction * value, adv)
        with torch.no_grad():
            adv = project(step(adv.detach(), grad, alpha, norm), x, eps_t, norm)
    return final_delta(best_adv, x, eps_t, norm).detach(), np.asarray(trace), best_feat


class LayerFeatures(nn.Module):
    """A zoo backbone cut at one layer, pooled: pixels [0, 1] (N x 3 x H x W) -> N x F."""

    def __init__(self, backbone: Any, layer: str, pooling: str = "flatten") -> None:
        super().__init__()
        from brainprobe.zoo import truncate

        self.cut = truncate(backbone, layer)
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from brainprobe.encoding.features import pool

        return pool(self.cut(x), self.pooling)


def _first_crossing(eps: np.ndarray, ok: np.ndarray) -> float:
    hit = np.flatnonzero(ok)
    return float(eps[hit[0]]) if hit.size else float("nan")


def rsa_fragility(
    models: Sequence[str] | Mapping[str, Any],
    benchmark: Any = "kriegeskorte92",
    *,
    rsa: Any = None,
    layers: Mapping[str, str] | None = None,
    norms: Sequence[str] = ("l2", "linf"),
    eps: Mapping[str, Sequence[float]] | None = None,
    directions: Sequence[str] = ("lower", "raise"),
    steps: int = 5,
    resolution: int = 128,
    pooling: str = "flatten",
    device: str = "cpu",
) -> Any:
    """Score against budget: PGD lowers / raises each model's RSA with human IT under per-image budgets.

    Parameters
    ----------
    models
        Zoo names, or a mapping name -> loaded ``Backbone``.
    benchmark
        An ``RDMBenchmark`` or a name (``"kriegeskorte92"``).
    rsa
        The :func:`rsa_benchmark` Dataset of these models (same method ``corr``, resolution and
        pooling): gives each model's layer (``best_layer``), its clean CI and the noise ceiling.
        None: layers from ``layers`` (default: the middle curated layer) and the ceiling computed here.
    norms, eps
        Norms and budgets per norm (l2 in [0, 1]-pixel units per image of resolution x resolution;
        linf as a fraction, e.g. 1/255). Default ``{"l2": [0.1, 0.5, 1.0], "linf": [0.5/255, 1/255, 2/255]}``.
    directions
        ``"lower"`` and / or ``"raise"`` the score.
    steps
        PGD steps per budget (step 2.5 eps / steps; the best iterate is kept).

    Returns
    -------
    xarray.Dataset
        dims ``model``, ``norm``, ``eps_index``, ``direction``, ``subject``. ``eps`` (norm,
        eps_index); ``score`` (model, norm, eps_index, direction): mean over subjects of Pearson
        r(model RDM of the perturbed images, subject RDM); ``score_subject`` (+ subject);
        ``clean_score`` (model); ``delta_norm`` (model, norm, eps_index, direction: the largest
        per-image perturbation norm reached); ``delta_max_abs`` (the largest single-pixel change,
        [0, 1] units; for l2 probes it says how concentrated the change is); ``eps_cross_next`` (model, norm, direction: the
        smallest budget at which the score passes the clean score of the next model below
        (lower) or above (raise); NaN if none); ``eps_enter_ceiling`` (model, norm: smallest
        budget at which the raised score reaches the lower noise ceiling); ``eps_leave_ci``
        (model, norm, direction: the score leaves the model's clean 95% bootstrap CI, when
        ``rsa`` is given); scalars ``noise_ceiling_lower/upper``. Coordinates ``layer``,
        ``training``, ``architecture`` (model). ``attrs['real'] = 1``.
    """
    import xarray as xr

    from brainprobe.analysis._rsa import _spec_info, benchmark_images, noise_ceiling
    from brainprobe.zoo import get_spec, load_backbone

    if isinstance(benchmark, str):
        from brainprobe.data.rdm_benchmark import load_rdm_benchmark

        benchmark = load_rdm_benchmark(benchmark)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions:
        raise ConfigError(f"fragility direction {bad[0] if bad else None!r} is unknown; use 'lower' and/or 'raise'")
    grid = {k: sorted(float(e) for e in v) for k, v in (eps or {"l2": [0.1, 0.5, 1.0],
                                                                  "linf": [0.5 / 255, 1 / 255, 2 / 255]}).items()}
    missing = [n for n in norms if n not in grid]
    if missing:
        raise ConfigError(f"no eps grid for norm {missing[0]}; add it to eps")
    names = list(models)
    subjects = benchmark.subject_rdms("human")
    targets = subjects.dissimilarities
    sub_ids = [str(s) for s in subjects.rdm_descriptors["subject"]]
    if rsa is not None:
        lo, hi = float(rsa["noise_ceiling_lower"]), float(rsa["noise_ceiling_upper"])
    else:
        lo, hi = noise_ceiling(subjects, "corr")
    x = benchmark_images(benchmark, resolution).to(device)
    t_all = torch.as_tensor(targets, dtype=torch.float64)
    n_eps = max(len(grid[n]) for n in norms)
    shape = (len(names), len(norms), n_eps, len(directions))
    score = np.full(shape, np.nan)
    score_sub = np.full((*shape, len(sub_ids)), np.nan)
    dnorm = np.full(shape, np.nan)
    dmax = np.full(shape, np.nan)
    clean = np.zeros(len(names))
    clean_sub = np.zeros((len(names), len(sub_ids)))
    layer_used = []
    score_fn = rsa_score_fn(targets)
    for i, name in enumerate(names):
        if rsa is not None and name in list(rsa["model"].values):
            layer = str(rsa["best_layer"].sel(model=name).values)
        elif layers and name in layers:
            layer = layers[name]
        else:
            d = get_spec(name).default_layers
            layer = d[len(d) // 2]
        layer_used.append(layer)
        bb = models[name] if isinstance(models, Mapping) else load_backbone(name, device=device)
        fm = LayerFeatures(bb, layer, pooling)
        with torch.no_grad():
            v = rdm_vector(fm(x))
            clean_sub[i] = pearson_rows(v, t_all.to(v.device)).cpu().numpy()
            clean[i] = clean_sub[i].mean()
        for a, norm in enumerate(norms):
            for k, e in enumerate(grid[norm]):
                for d, direction in enumerate(directions):
                    delta, _, feats = set_pgd(fm, x, score_fn, norm=norm, eps=e, direction=DIRECTIONS[direction],
                                              steps=steps)
                    with torch.no_grad():  # features of the kept iterate (x + delta up to float rounding)
                        v = rdm_vector(feats)
                        per = pearson_rows(v, t_all.to(v.device)).cpu().numpy()
                    score_sub[i, a, k, d] = per
                    score[i, a, k, d] = per.mean()
                    flat = delta.reshape(delta.shape[0], -1)
                    dnorm[i, a, k, d] = float((flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)).max())
                    dmax[i, a, k, d] = float(flat.abs().max())
    eps_arr = np.full((len(norms), n_eps), np.nan)
    for a, norm in enumerate(norms):
        eps_arr[a, : len(grid[norm])] = grid[norm]
    cross = np.full((len(names), len(norms), len(directions)), np.nan)
    leave = np.full_like(cross, np.nan)
    enter = np.full((len(names), len(norms)), np.nan)
    for i in range(len(names)):
        others = np.delete(clean, i)
        for a in range(len(norms)):
            e = eps_arr[a]
            for d, direction in enumerate(directions):
                s = score[i, a, :, d]
                if direction == "lower":
                    below = others[others < clean[i]]
                    if below.size:
                        cross[i, a, d] = _first_crossing(e, s < below.max())
                else:
                    above = others[others > clean[i]]
                    if above.size:
                        cross[i, a, d] = _first_crossing(e, s > above.min())
                    enter[i, a] = _first_crossing(e, s >= lo)
                if rsa is not None and names[i] in list(rsa["model"].values):
                    c_lo = float(rsa["rsa_human_best_ci_low"].sel(model=names[i]))
                    c_hi = float(rsa["rsa_human_best_ci_high"].sel(model=names[i]))
                    leave[i, a, d] = _first_crossing(e, (s < c_lo) | (s > c_hi))
    training, arch = zip(*(_spec_info(n) for n in names))
    return xr.Dataset(
        {
            "eps": (("norm", "eps_index"), eps_arr),
            "score": (("model", "norm", "eps_index", "direction"), score),
            "score_subject": (("model", "norm", "eps_index", "direction", "subject"), score_sub),
            "delta_norm": (("model", "norm", "eps_index", "direction"), dnorm),
            "delta_max_abs": (("model", "norm", "eps_index", "direction"), dmax),
            "clean_score": ("model", clean),
            "clean_score_subject": (("model", "subject"), clean_sub),
            "eps_cross_next": (("model", "norm", "direction"), cross),
            "eps_leave_ci": (("model", "norm", "direction"), leave),
            "eps_enter_ceiling": (("model", "norm"), enter),
            "noise_ceiling_lower": ((), lo),
            "noise_ceiling_upper": ((), hi),
        },
        coords={"model": names, "norm": list(norms), "eps_index": np.arange(n_eps), "direction": list(directions),
                "subject": sub_ids, "layer": ("model", layer_used), "training": ("model", list(training)),
                "architecture": ("model", list(arch))},
        attrs={"analysis": "rsa_fragility", "benchmark": benchmark.name, "method": "corr", "steps": steps,
               "resolution": resolution, "pooling": pooling, "real": 1,
               "assumption": "human IT RDM unchanged by perturbations below the perceptual threshold"},
    )
