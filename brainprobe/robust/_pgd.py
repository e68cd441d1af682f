"""Inner attack of robustify: PGD in pixel space that maximises a per-image loss.

The loss here is the student's feature distance to the teacher's clean features, which is not a
function of one model's output alone (it needs the teacher's features of the *clean* image), so
this small loop runs it directly; the probe engine (brainprobe.probes) does the evaluation. The
ascent step and the projection onto the ball and the [0, 1] box are the probe engine's
(:mod:`brainprobe.probes._project`); only the loop and the resumable random start live here.
"""

from __future__ import annotations

from typing import Callable

import torch

from brainprobe.probes import _project

NORMS = ("l2", "linf")


def _eps_column(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(eps), dtype=x.dtype, device=x.device)


def project(delta: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project ``delta`` (N x 3 x H x W) onto the ``norm`` ball of radius ``eps`` and the [0,1] box.

    Returns the feasible perturbation (N x 3 x H x W): inside the ball and with ``x + delta`` in [0, 1].
    """
    return _project.final_delta(x + delta, x, _eps_column(x, eps), norm)


def random_start(x: torch.Tensor, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A random point of the ball: uniform in the linf cube, or a Gaussian direction at radius eps*U (l2).

    One generator draws the whole batch (N x 3 x H x W), so a saved generator state resumes the run.
    """
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator)
        r = torch.rand(x.shape[0], 1, 1, 1, generator=generator) * eps
        delta = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1) * r
    return project(delta.to(x.device, x.dtype), x, norm, eps)


def pgd_maximize(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float | None = None,
    rand_init: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return the perturbation ``delta`` (N x 3 x H x W) that PGD finds for ``max loss_fn(x + delta)``.

    Parameters
    ----------
    loss_fn
        Maps images N x 3 x H x W in [0, 1] to per-image losses (N,); must be differentiable.
    x
        Clean images N x 3 x H x W in [0, 1].
    norm, eps
        ``"l2"`` (eps in pixel units of the whole image) or ``"linf"`` (eps per pixel, [0,1] scale).
    steps
        Gradient steps (0 returns the random start, or zeros).
    step_size
        Step length; default ``2.5 * eps / steps`` (Madry et al.).
    rand_init, generator
        Start from a random point of the ball drawn from ``generator``.
    """
    if step_size is None:
        step_size = 2.5 * eps / max(steps, 1)
    x = x.detach()
    if rand_init:
        if generator is None:
            raise ValueError("pgd_maximize: rand_init needs a generator")
        delta = random_start(x, norm, eps, generator)
    else:
        delta = torch.zeros_like(x)
    alpha = _eps_column(x, step_size)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(x + delta).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            adv = _project.step(x + delta.detach(), grad, alpha, norm)
            delta = project(adv - x, x, norm, eps)
    return delta.detach()
