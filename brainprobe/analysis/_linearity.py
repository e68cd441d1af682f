"""Linearity: actual probe effect versus the box-constrained first-order optimum as the budget grows."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    apply_readout,
    as_images,
    boot_means,
    boot_weights,
    ci,
    eps_array,
    forward,
    log_crossing,
    model_device,
    model_info,
    organise,
    readout_of,
    resolve,
    response_change,
    model_sd,
)
from brainprobe.errors import ConfigError


def gradient(model: nn.Module, images: torch.Tensor, idx: np.ndarray, direction: int = 1, batch_size: int = 16) -> np.ndarray:
    """Gradient of direction * mean(responses[idx]) w.r.t. the pixels: float64 N x P."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(model_device(model)).clone().requires_grad_(True)
        y = model(x)[:, torch.as_tensor(idx, dtype=torch.long, device=x.device)]
        (g,) = torch.autograd.grad(direction * y.mean(dim=1).sum(), x)
        out.append(g.flatten(1).detach().double().cpu().numpy())
    return np.concatenate(out)


def first_order_linf(g: np.ndarray, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max of g . delta over |delta|_inf <= eps and 0 <= x + delta <= 1.

    = sum_i |g_i| min(eps, room_i), room_i = 1 - x_i where g_i > 0 and x_i where g_i < 0.

    Parameters
    ----------
    g, x : N x P
    eps : E

    Returns
    -------
    value : E x N (response units)
    binding : E x N, share of the pixels with g != 0 whose box room is below eps
    """
    room = np.where(g > 0, 1 - x, x)
    active = g != 0
    ag = np.abs(g)
    value = np.stack([(ag * np.minimum(e, room)).sum(-1) for e in eps])
    n_active = np.maximum(active.sum(-1), 1)
    binding = np.stack([((room < e) & active).sum(-1) / n_active for e in eps])
    return value, binding


def first_order_l2(g: np.ndarray, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max of g . delta over ||delta||_2 <= eps and 0 <= x + delta <= 1 (exact, per image).

    The maximiser is delta_i = clip(lam g_i, -x_i, 1 - x_i) with lam >= 0 the smallest value
    reaching ||delta|| = eps (all box faces in g's direction when the ball holds the whole box).
    ||delta(lam)||^2 is piecewise quadratic in lam with breakpoints room_i / |g_i|; sorting them
    gives lam in closed form.

    Returns
    -------
    value : E x N; binding : E x N (share of pixels with g != 0 held at the box)
    """
    n, p = g.shape
    value = np.zeros((len(eps), n))
    binding = np.zeros((len(eps), n))
    room = np.where(g > 0, 1 - x, x)
    for i in range(n):
        ag, r = np.abs(g[i]), room[i]
        act = ag > 0
        ag, r = ag[act], r[act]
        if ag.size == 0:
            continue
        brk = r / ag
        order = np.argsort(brk)
        ag, r, brk = ag[order], r[order], brk[order]
        c2 = np.concatenate([[0.0], np.cumsum(r**2)])  # saturated mass before j
        g2 = ag**2
        g2_rest = np.concatenate([np.cumsum(g2[::-1])[::-1], [0.0]])  # sum of g^2 from j on
        gain = np.concatenate([[0.0], np.cumsum(ag * r)])  # objective from saturated pixels before j
        phi_at_brk = c2[:-1] + brk**2 * g2_rest[:-1]  # ||delta||^2 when pixel j just saturates
        for k, e in enumerate(eps):
            j = int(np.searchsorted(phi_at_brk, e**2, side="right"))  # pixels 0..j-1 saturated
            if j >= ag.size:
                value[k, i] = gain[-1]
                binding[k, i] = 1.0
                continue
            lam = np.sqrt(max(e**2 - c2[j], 0.0) / g2_rest[j])
            value[k, i] = gain[j] + lam * g2_rest[j]
            binding[k, i] = j / ag.size
    return value, binding


class _Scaled(nn.Module):
    """Selected outputs divided by their SD (for the Shift objective's first-order bound)."""

    def __init__(self, model: nn.Module, idx: np.ndarray, sd: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("idx", torch.as_tensor(idx, dtype=torch.long))
        self.register_buffer("inv", torch.as_tensor(1.0 / sd, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y.index_select(1, self.idx.to(y.device)) * self.inv.to(y.device)


def linearity(
    models: Mapping[str, nn.Module],
    images: Any,
    probes: Mapping[str, Any],
    *,
    objective: Any = None,
    tolerance: float = 0.1,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    batch_size: int = 64,
) -> xr.Dataset:
    """Actual probe effect versus the box-constrained first-order optimum, per budget.

    With g the gradient of the objective at the clean image, the first-order optimum is

    - Drive, linf: sum_i |g_i| min(eps, room_i), room_i the distance to the box edge in g's
      direction (:func:`first_order_linf`);
    - Drive, l2: the maximum of g . delta over the l2 ball intersected with the box
      (:func:`first_order_l2`);
    - Shift, l2: eps * sigma_max(J) with J the Jacobian of the (SD-normalised) target responses
      (valid where the box does not bind); Shift, linf has no closed form (NaN).

    ``objective`` is the Drive / Shift objective (or string) the probes maximised; default: the
    name the probe results carry (``ProbeResult.objective``).

    A linear model meets its first-order optimum exactly (ratio 1) when the probe finds the
    optimum, including where the box binds; the budget where the mean ratio first leaves
    1 +- ``tolerance`` is ``eps_depart`` (log-interpolated, inf when it never does).

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``actual``, ``predicted``, ``box_binding`` (model, norm, eps, image); ``ratio``,
        ``ratio_ci_low/high`` (model, norm, eps): mean actual / mean predicted; ``eps_depart``
        (model, norm).
    """
    if not tolerance > 0:
        raise ConfigError(f"linearity tolerance must be > 0, got {tolerance}")
    x = as_images(images)
    n = x.shape[0]
    xf = x.flatten(1).double().numpy()
    by_model = organise(probes)
    readout = readout_of(objective, by_model)
    names = list(by_model)
    norms = sorted({nm for d in by_model.values() for nm in d})
    grids = {nm: eps_array(next(d[nm] for d in by_model.values() if nm in d)) for nm in norms}
    all_eps = np.unique(np.concatenate(list(grids.values())))
    shape = (len(names), len(norms), len(all_eps), n)
    actual, predicted, binding = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for mi, name in enumerate(progress(names, desc="linearity")):
        if name not in models:
            raise ConfigError(f"probes given for {name!r} but no such model; pass it in models=")
        model = models[name]
        clean = forward(model, x, batch_size)
        idx = resolve(model, readout.targets, clean.shape[1])
        sd = model_sd(model, clean.double().numpy(), f"clean responses of {name}") if readout.kind == "shift" else None
        g = gradient(model, x, idx, readout.direction) if readout.kind == "drive" else None
        for ni, nm in enumerate(norms):
            if nm not in by_model[name]:
                continue
            pr = by_model[name][nm]
            e = eps_array(pr)
            pos = np.searchsorted(all_eps, e)
            d = response_change(model, x, pr.delta, clean, batch_size)
            actual[mi, ni, pos] = apply_readout(readout, d, idx, sd)
            if readout.kind == "drive":
                fo = first_order_linf if nm == "linf" else first_order_l2
                predicted[mi, ni, pos], binding[mi, ni, pos] = fo(g, xf, e)
            elif nm == "l2":
                from brainprobe.analysis._axes import local_axes

                scale = sd if readout.normalize else np.ones_like(clean[0].double().numpy())
                scaled = _Scaled(model, idx, scale[idx])
                smax = np.concatenate([local_axes(scaled, x[s : s + 8], None, k=1)[1][:, 0].numpy() for s in range(0, n, 8)])
                predicted[mi, ni, pos] = e[:, None] * smax[None, :]
    w = boot_weights(n, n_boot, seed, groups=groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = actual.mean(-1) / predicted.mean(-1)
        lo, hi = ci(boot_means(actual, w) / boot_means(predicted, w), level)
    depart = np.full(shape[:2], np.inf)
    for ni in range(len(norms)):
        have = ~np.isnan(ratio[:, ni]).all(0)
        if have.sum() and np.isfinite(ratio[:, ni][:, have]).any():
            dev = np.abs(ratio[:, ni][:, have] - 1)
            depart[:, ni] = log_crossing(all_eps[have], np.nan_to_num(dev, nan=-np.inf), tolerance)
        if not have.any() or np.isnan(ratio[:, ni][:, have]).all():
            depart[:, ni] = np.nan
    table = model_info({k: models[k] for k in names}, info)
    d4, d3 = ("model", "norm", "eps", "image"), ("model", "norm", "eps")
    return xr.Dataset(
        {
            "actual": (d4, actual),
            "predicted": (d4, predicted),
            "box_binding": (d4, binding),
            "ratio": (d3, ratio),
            "ratio_ci_low": (d3, lo),
            "ratio_ci_high": (d3, hi),
            "eps_depart": (("model", "norm"), depart),
        },
        coords={
            "model": names,
            "norm": norms,
            "eps": all_eps,
            "image": np.arange(n),
            "training": ("model", table["training"].to_numpy(dtype=str)),
            "architecture": ("model", table["architecture"].to_numpy(dtype=str)),
        },
        attrs={
            "analysis": "linearity",
            "objective": readout.name,
            "tolerance": float(tolerance),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
