"""Convergence diagnostics of probes: the achieved objective against its first-order bound.

For a probe of budget eps at clean image x, the first-order (linearised) optimum is what the
best perturbation would achieve if the model were linear at x:

- scalar objectives f (Drive, Toward, Contrast): l2: ``eps * ||grad f(x)||_2`` (the dual norm;
  the [0, 1] box is ignored); linf: ``sum_i |g_i| min(eps, room_i)`` with ``room_i`` the distance
  to the box edge in g's direction, which is ``eps * ||g||_1`` wherever the box does not bind;
- vector objectives ``||F(x + delta) - F(x)||_2`` (Shift, F the SD-scaled target responses, J
  its Jacobian at x): l2: ``eps * sigma_max(J)``, the top singular value by Lanczos iteration
  on ``J^T J`` (JVPs and VJPs, started from the probe's own perturbation mixed with a seeded
  random direction; Ritz values never exceed sigma_max, so the bound is at most a little low);
  linf: ``max ||J d||_2`` over ``|d|_inf <= eps`` inside the box is NP-hard; we use the
  generalised power method ``d <- argmax_{d feasible} <J^T J d_k, d>`` (each step raises
  ||J d||) from the sign of the top singular vector and from the probe's own perturbation, and
  take the best value. That is a lower estimate of the true linearised optimum, so a linf
  Shift fraction above 1 is possible and means the probe beat that estimate.

Where the gradient vanishes at x and the objective has no vector form (e.g. an Ensemble of
Shifts) the bound is NaN. In the near-linear regime of small budgets a converged probe reaches
fraction ~1; the gain of the last 20% of steps says whether it was still climbing.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from brainprobe.probes.objectives import Compiled

LANCZOS_ITERS = 4
"""Lanczos iterations (one JVP + one VJP each) for sigma_max; started from the probe's perturbation,
4 agree with 16 to 7 digits on the demo's MobileNetV2 encoder (docs/probes.md)."""
POWER_ITERS = 2
"""Generalised power steps per start for the linf Shift bound."""
CONVERGED = 0.95
"""A probe run has converged when its median fraction of the first-order bound is at least this."""


def _responder(
    compiled: Compiled, clean: dict[int, torch.Tensor], image_index: torch.Tensor, x: torch.Tensor, vector: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``d -> objective(x + d)``: B values, or B x K vectors (``compiled.vector``)."""

    def fn(d: torch.Tensor) -> torch.Tensor:
        xin = x + d
        outs = {id(m): m(xin).float() for m in compiled.models}
        if vector:
            return compiled.vector(outs, clean, image_index)  # type: ignore[misc]
        return compiled.value(outs, clean, image_index)

    return fn


def _lmo(g: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """argmax of <g, d> over the ``norm`` ball of radius eps (and, for linf, the [0, 1] box around x)."""
    e = eps.view(-1, *([1] * (g.ndim - 1)))
    if norm == "linf":
        room = torch.where(g > 0, 1 - x, x)
        return torch.sign(g) * torch.minimum(e.expand_as(g), room)
    n = g.flatten(1).norm(dim=1).clamp_min(1e-30).view_as(eps).view(-1, *([1] * (g.ndim - 1)))
    return e * g / n


def _lanczos(
    jtj: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top eigenpair of the PSD operator ``jtj`` per row, by Lanczos with full reorthogonalisation.

    Parameters
    ----------
    jtj : callable, B x P -> B x P (float64)
    v0 : B x P start vectors (float64)

    Returns
    -------
    theta : B (top Ritz value, <= the top eigenvalue), vec : B x P (its Ritz vector, unit norm)
    """
    q = v0 / v0.norm(dim=1, keepdim=True).clamp_min(1e-300)
    basis, images = [q], []
    for _ in range(iters):
        w = jtj(basis[-1])
        images.append(w)
        if len(basis) == iters:
            break
        r = w.clone()
        for _ in range(2):  # twice is enough (Giraitis-Kahan)
            for b in basis:
                r = r - (r * b).sum(1, keepdim=True) * b
        nrm = r.norm(dim=1, keepdim=True)
        scale = w.norm(dim=1, keepdim=True).clamp_min(1e-300)
        ok = nrm > 1e-10 * scale
        basis.append(torch.where(ok, r / nrm.clamp_min(1e-300), torch.zeros_like(r)))
    qm = torch.stack(basis[: len(images)], dim=2)  # B x P x k
    wm = torch.stack(images, dim=2)
    h = qm.transpose(1, 2) @ wm
    h = 0.5 * (h + h.transpose(1, 2))
    vals, vecs = torch.linalg.eigh(h)
    theta = vals[:, -1].clamp_min(0)
    vec = (qm @ vecs[:, :, -1:]).squeeze(2)
    return theta, vec / vec.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _operators(fn: Callable[[torch.Tensor], torch.Tensor], zero: torch.Tensor) -> tuple[Any, Any, Any]:
    """``jv`` (B x P -> B x K, float64), ``jtj`` (B x P -> B x P, float64) and the VJP of ``fn`` at ``zero``."""
    _, vjp_fn = torch.func.vjp(fn, zero)

    def jv(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(fn, (zero,), (v.to(zero.device, torch.float32).view_as(zero),))[1].double()

    def jtj(v: torch.Tensor) -> torch.Tensor:
        return vjp_fn(jv(v).float())[0].flatten(1).double()

    return jv, jtj, vjp_fn


def first_order_bound(
    compiled: Compiled,
    clean: dict[int, torch.Tensor],
    images: torch.Tensor,
    image_index: torch.Tensor,
    eps: torch.Tensor,
    norm: str,
    delta: torch.Tensor | None = None,
    *,
    seed: int = 0,
    batch_size: int = 8,
    iters: int = LANCZOS_ITERS,
) -> torch.Tensor:
    """First-order bound of each item's objective gain (see the module docstring).

    Parameters
    ----------
    compiled : Compiled
        The objective, compiled against its models (on the images' device, eval, frozen).
    clean : dict id(model) -> N x T
        Clean responses of the objective's models.
    images : Tensor, N x 3 x H x W float32 in [0, 1]
    image_index : Tensor, M (long)
        Clean image of each item.
    eps : Tensor, M
        Budget of each item ([0, 1] pixel units).
    norm : {"l2", "linf"}
    delta : Tensor, M x 3 x H x W, optional
        The probes' perturbations: a start of the Lanczos / power iterations (recommended).
    seed : int
        Seeds the random part of the start vectors.
    batch_size : int
        Items per batch.
    iters : int
        Lanczos iterations (vector objectives).

    Returns
    -------
    Tensor, M, float64
        The bound in objective units (NaN where it is not defined, see module docstring).
    """
    vector = compiled.vector is not None
    out = torch.full((len(image_index),), math.nan, dtype=torch.float64)
    if not vector and compiled.zero_grad_at_origin:
        return out
    dev = images.device
    for lo in range(0, len(image_index), batch_size):
        sl = slice(lo, lo + batch_size)
        idx = image_index[sl].to(dev)
        x = images.index_select(0, idx)
        e = eps[sl].to(dev).float()
        fn = _responder(compiled, clean, idx, x, vector)
        zero = torch.zeros_like(x)
        with torch.enable_grad():
            if not vector:
                d0 = zero.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(fn(d0).sum(), d0)
                if norm == "l2":
                    val = e.double() * g.flatten(1).double().norm(dim=1)
                else:
                    val = (g.double() * _lmo(g, x, e, norm).double()).flatten(1).sum(1)
                out[sl] = val.cpu()
                continue
            jv, jtj, vjp_fn = _operators(fn, zero)

            gen = torch.Generator().manual_seed(int(seed) * 7_919 + lo)
            rnd = torch.randn(x.flatten(1).shape, generator=gen, dtype=torch.float64).to(dev)
            rnd = rnd / rnd.norm(dim=1, keepdim=True)
            v0 = rnd
            if delta is not None:
                d = delta[sl].to(dev).flatten(1).double()
                d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-300)
                v0 = torch.where(d.norm(dim=1, keepdim=True) > 0, d + 0.1 * rnd, rnd)
            theta, vec = _lanczos(jtj, v0, iters)
            if norm == "l2":
                out[sl] = (e.double() * theta.sqrt()).cpu()
                continue
            starts = [_lmo(vec.view_as(x).float(), x, e, norm)]
            if delta is not None:
                starts.append(delta[sl].to(dev).float())
            best = torch.zeros(len(x), dtype=torch.float64, device=dev)
            for d in starts:
                for _ in range(POWER_ITERS + 1):
                    jd = jv(d)
                    best = torch.maximum(best, jd.norm(dim=1))
                    d = _lmo(vjp_fn(jd.float())[0], x, e, norm)
            out[sl] = best.cpu()
    return out


START_LANCZOS_ITERS = 4
"""Lanczos iterations for the Jacobian start of vector objectives (:func:`top_directions`)."""


def top_directions(
    compiled: Compiled,
    clean: dict[int, torch.Tensor],
    images: torch.Tensor,
    image_index: torch.Tensor,
    *,
    seed: int = 0,
    batch_size: int = 8,
    iters: int = START_LANCZOS_ITERS,
) -> torch.Tensor | None:
    """Top right singular vector of the objective's Jacobian at each clean image (PGD's Jacobian start).

    For a vector objective ``||F(x + d) - F(x)||`` (Shift) the gradient at d = 0 is zero and PGD
    from a random nudge performs a damped power iteration on J^T J, which converges slowly when
    the top singular values are close (5 steps reached 0.75-0.94 of the first-order bound on the
    demo's models). Starting at ``eps * v_1`` (l2) or its linf LMO puts the first iterate at the
    first-order optimum; PGD then only has to follow the curvature. ``v_1`` comes from
    ``iters`` Lanczos iterations on J^T J (one JVP + one VJP each) from a seeded random vector.

    Parameters
    ----------
    compiled, clean, images
        As for :func:`first_order_bound`.
    image_index : Tensor, M (long)
        Clean image of each item; each distinct image is computed once.

    Returns
    -------
    Tensor M x 3 x H x W (float32, unit l2 norm per item) on the images' device, or None when the
    objective has no vector form (scalar objectives: PGD's first step is already the first-order optimum
    for l2, and their nudge start stays).
    """
    if compiled.vector is None:
        return None
    dev = images.device
    uniq, inverse = torch.unique(image_index, return_inverse=True)
    dirs = torch.empty((len(uniq),) + tuple(images.shape[1:]), dtype=torch.float32, device=dev)
    for lo in range(0, len(uniq), batch_size):
        idx = uniq[lo : lo + batch_size].to(dev)
        x = images.index_select(0, idx)
        fn = _responder(compiled, clean, idx, x, True)
        zero = torch.zeros_like(x)
        with torch.enable_grad():
            _, jtj, _ = _operators(fn, zero)
            gen = torch.Generator().manual_seed(int(seed) * 104_729 + lo)
            v0 = torch.randn(x.flatten(1).shape, generator=gen, dtype=torch.float64).to(dev)
            _, vec = _lanczos(jtj, v0, iters)
        dirs[lo : lo + len(idx)] = vec.float().view_as(x)
    return dirs[inverse.to(dev)]


def late_gain(trace: torch.Tensor, steps: int, restarts: int) -> torch.Tensor:
    """Gain of the best objective over the last 20% of the last restart's steps, relative to it.

    Parameters
    ----------
    trace : Tensor, I x ... (I = restarts * (steps + 1))
        Objective at every iterate.

    Returns
    -------
    Tensor, ... : (best at the end - best before the last ceil(0.2 * steps) steps) / |best at the end|
        (0 when the last steps added nothing; NaN when the best is 0).
    """
    best = torch.cummax(trace.double(), dim=0).values
    cut = (restarts - 1) * (steps + 1) + steps - max(1, math.ceil(0.2 * steps))
    final = best[-1]
    gain = final - best[cut]
    return torch.where(final.abs() > 0, gain / final.abs(), torch.full_like(final, math.nan))

