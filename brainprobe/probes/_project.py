"""PGD steps and projections onto the eps-ball and the [0, 1] box.

The arithmetic mirrors torchattacks (PGD, PGDL2) operation for operation, so that an unpacked
run reproduces its iterates: the state is the perturbed image ``adv``, a step moves ``adv``, the
perturbation ``adv - x`` is projected onto the ball, and ``x + delta`` is clipped to the box.

For l-infinity the ball and the box are both boxes, so clipping to one and then the other is the
exact Euclidean projection onto their intersection. For l2 it is not (the exact projection onto
ball ∩ box needs a 1-d search), but clipping to the box only moves each coordinate toward x, so
the result stays inside the ball: every iterate is feasible, which is what PGD needs.
"""

from __future__ import annotations

import torch

_EPS_DIV = 1e-10  # torchattacks' eps_for_division in the l2 gradient normalisation


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def step(adv: torch.Tensor, grad: torch.Tensor, alpha: torch.Tensor, norm: str) -> torch.Tensor:
    """One ascent step: ``adv + alpha * sign(grad)`` (linf) or ``adv + alpha * grad / ||grad||_2`` (l2)."""
    if norm == "linf":
        return adv + _col(alpha, adv) * grad.sign()
    g_norm = torch.norm(grad.reshape(grad.shape[0], -1), p=2, dim=1) + _EPS_DIV
    return adv + _col(alpha, adv) * (grad / _col(g_norm, grad))


def _into_ball(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """``delta`` (B x C x H x W) clipped (linf) or scaled (l2) into the ball of radius ``eps`` (B,)."""
    e = _col(eps, delta)
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, e), -e)
    else:
        n = torch.norm(delta.reshape(delta.shape[0], -1), p=2, dim=1)
        factor = torch.where(n > eps, eps / n, torch.ones_like(n))
        delta = delta * _col(factor, delta)
    return delta


def project(adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Project ``adv - x`` onto the ball of radius ``eps`` (per sample), then clip ``adv`` to [0, 1]."""
    delta = _into_ball(adv - x, eps, norm)
    return torch.clamp(x + delta, min=0, max=1)


def final_delta(adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """The perturbation ``adv - x`` made exactly feasible: inside the ball, and x + delta inside the box.

    Clipping the perturbation itself (not ``x + delta``) keeps ``|delta| <= eps`` exact for linf;
    for l2 the ball holds to float rounding of one scaling (~1e-7 relative).
    """
    delta = _into_ball(adv - x, eps, norm)
    return torch.maximum(torch.minimum(delta, 1 - x), -x)


def random_start(
    shape: tuple[int, ...], eps: torch.Tensor, norm: str, seeds: list[int], scale: torch.Tensor
) -> torch.Tensor:
    """Seeded random start points, one generator per item so packing does not change them.

    l2: uniform direction, radius ``U(0, 1) * eps`` for a random start (``scale == 1``) and exactly
    ``eps * scale`` for a nudge off the origin (``scale < 1``: a random radius could be so small that
    x + noise rounds back to x in float32); linf: ``U(-1, 1) * eps * scale`` per pixel.

    Returns
    -------
    Tensor, B x C x H x W, float32, on the CPU.
    """
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        r = float(eps[i]) * float(scale[i])
        if norm == "linf":
            out[i] = (torch.rand(shape, generator=g) * 2 - 1) * r
        else:
            d = torch.randn(shape, generator=g)
            radius = torch.rand((), generator=g) if float(scale[i]) >= 1 else 1.0
            out[i] = d / d.norm().clamp_min(1e-12) * radius * r
    return out
