"""Inner attack of robustify: PGD in pixel space that maximises a per-image loss.

The loss here is the student's feature distance to the teacher's clean features, which is not a
function of one model's output alone (it needs the teacher's features of the *clean* image), so
this small loop runs it directly; the probe engine (brainprobe.probes) does the evaluation.
"""

from __future__ import annotations

from typing import Callable

import torch

NORMS = ("l2", "linf")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-image l2 norm, shape N x 1 x 1 x 1."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def project(delta: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project ``delta`` (N x 3 x H x W) onto the ``norm`` ball of radius ``eps`` and the [0,1] box."""
    if norm == "l2":
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    else:
        delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0, 1) - x


def random_start(x: torch.Tensor, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A random point of the ball: uniform in the linf cube, or a Gaussian direction at radius eps*U (l2)."""
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator)
        r = torch.rand(x.shape[0], 1, 1, 1, generator=generator) * eps
        delta = g / _flat_norm(g) * r
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
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(x + delta).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "l2":
                step = grad / _flat_norm(grad) * step_size
            else:
                step = grad.sign() * step_size
            delta = project(delta.detach() + step, x, norm, eps)
    return delta.detach()
