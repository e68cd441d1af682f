"""Probes that survive being written to an image file: projection onto the pixel lattice.

An image file stores each pixel value as an integer k / L (L = 255 for 8-bit PNG, 65535 for
16-bit). Rounding a probe ``x + delta`` to that lattice can destroy small probes (most pixel
changes of an l2 probe are well under half a level) or break their budget (an linf probe of
0.5/255 rounds to 1/255). This module projects perturbations onto the lattice *inside* the
ball and the [0, 1] box, and runs the last PGD steps on lattice points so the written probe keeps
as much of its effect as the lattice allows.

Imports torch only; uses the probe engine's objectives (``brainprobe.probes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

LEVELS = {8: 255, 16: 65535}


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def on_lattice(x: torch.Tensor, levels: int) -> bool:
    """True when every value of ``x`` is (to float32 rounding) an integer multiple of 1/levels."""
    k = x.double() * levels
    return bool((k - k.round()).abs().max() < 1e-3)


def round_away(v: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, ties away from zero (a probe's half-level changes keep their sign).

    torch.round rounds ties to even, which turns PGD's common half-level steps (2.5 * eps / steps)
    into zero or not depending on the clean pixel's parity.
    """
    # 1e-4 of a level absorbs float32 error in half-level values (0.5/255 stored as 0.49999997/255)
    return torch.sign(v) * torch.floor(v.abs() + 0.5 + 1e-4)


def lattice_project(
    delta: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor, norm: str, levels: int = 255
) -> torch.Tensor:
    """Map perturbations onto the lattice ``{k / levels}`` inside the ``norm`` ball and the box.

    linf: round each pixel change to the nearest level (ties away from zero) and clip it to ``floor(eps * levels)``
    levels (the largest lattice budget not above ``eps``) and to the box. l2: round the scaled
    change ``s * delta`` with the largest ``s`` whose rounded vector stays inside the ball
    (found by bisection; the rounded norm is monotone in ``s``), so the budget is spent on the
    pixels where ``delta`` is largest instead of being rounded away.

    Parameters
    ----------
    delta : float N x C x H x W
        Perturbations in [0, 1] pixel units.
    x : float N x C x H x W
        Clean images, on the lattice.
    eps : float or tensor N
        Budgets in the same units.
    norm : {"l2", "linf"}
    levels : int
        255 (8-bit) or 65535 (16-bit).

    Returns
    -------
    Tensor N x C x H x W: ``x + out`` is on the lattice, ``out`` inside the ball and ``x + out``
    inside [0, 1].
    """
    n = delta.shape[0]
    eps_t = torch.as_tensor(eps, dtype=torch.float64, device=delta.device).reshape(-1).expand(n)
    d = delta.double() * levels
    xk = (x.double() * levels).round()
    lo, hi = -xk, levels - xk  # integer room to the box edges
    if norm == "linf":
        kmax = torch.floor(eps_t * levels + 1e-9)
        k = torch.clamp(round_away(d), min=-_col(kmax, d), max=_col(kmax, d))
        k = torch.minimum(torch.maximum(k, lo), hi)
        return (k / levels).float()
    radius = eps_t * levels  # ball radius in level units

    def rounded(s: torch.Tensor) -> torch.Tensor:
        k = round_away(d * _col(s, d))
        return torch.minimum(torch.maximum(k, lo), hi)

    def norms(k: torch.Tensor) -> torch.Tensor:
        return k.flatten(1).norm(dim=1)

    # bracket: s_lo feasible (0), s_hi infeasible or large enough that the largest entry rounds
    # to far beyond the radius
    peak = d.flatten(1).abs().amax(dim=1).clamp_min(1e-30)
    s_lo = torch.zeros(n, dtype=torch.float64, device=d.device)
    s_hi = (radius + 1.0) / peak * 2.0
    for _ in range(60):
        mid = (s_lo + s_hi) / 2
        ok = norms(rounded(mid)) <= radius + 1e-9
        s_lo = torch.where(ok, mid, s_lo)
        s_hi = torch.where(ok, s_hi, mid)
    return (rounded(s_lo) / levels).float()


@dataclass
class LatticeResult:
    """Perturbations on the lattice and what the probed model's objective says about them.

    Attributes
    ----------
    delta : Tensor N x 3 x H x W
        Lattice perturbations (``x + delta`` is exactly k / levels).
    value : Tensor N
        Objective of the written probes.
    value_continuous : Tensor N
        Objective of the original (unrounded) probes.
    value_rounded : Tensor N
        Objective of plain rounding of ``x + delta`` to the nearest level (no projection).
    steps : int
        Lattice PGD steps run.
    """

    delta: torch.Tensor
    value: torch.Tensor
    value_continuous: torch.Tensor
    value_rounded: torch.Tensor
    steps: int


class ObjectiveEvaluator:
    """The probe engine's objective on a fixed set of clean images: value and input gradient."""

    def __init__(self, model: nn.Module, images: torch.Tensor, objective: Any) -> None:
        from brainprobe.probes import parse_objective

        self.images = images
        self._clean: dict[int, torch.Tensor] = {}
        self.model = model

        def clean_fn(m: nn.Module) -> torch.Tensor:
            if id(m) not in self._clean:
                with torch.no_grad():
                    self._clean[id(m)] = m(images).float()
            return self._clean[id(m)]

        clean_fn(model)
        self.compiled = parse_objective(objective).compile(model, clean_fn)
        self.index = torch.arange(images.shape[0], device=images.device)

    def value(self, delta: torch.Tensor, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Objective at ``x + delta`` (N) and, when ``grad``, its gradient w.r.t. delta."""
        d = delta.detach().clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            xin = (self.images + d).clamp(0, 1)
            outs = {id(m): m(xin).float() for m in self.compiled.models}
            v = self.compiled.value(outs, self._clean, self.index)
            g = torch.autograd.grad(v.sum(), d)[0] if grad else None
        return v.detach(), g


def lattice_probe(
    model: nn.Module,
    images: torch.Tensor,
    delta: torch.Tensor,
    *,
    norm: str,
    eps: float,
    objective: Any,
    bits: int = 8,
    steps: int = 10,
    step_size: float | None = None,
) -> LatticeResult:
    """Quantisation-aware probes: the last PGD steps run on lattice points inside the ball.

    Starting from the continuous probe ``delta``, each step takes the gradient of the objective
    at the current *lattice* probe (what would be written), moves the continuous iterate by a
    PGD step (sign step for linf, normalised gradient for l2), projects it onto the ball and the
    box, and maps it onto the lattice with :func:`lattice_project`. The best lattice iterate by
    objective is kept (the plain projection of ``delta`` is iterate 0).

    Parameters
    ----------
    model : nn.Module
        The probed model (N x 3 x H x W in [0, 1] -> N x T).
    images : float N x 3 x H x W
        Clean images on the 8-bit lattice.
    delta : float N x 3 x H x W
        Continuous probes (from :func:`brainprobe.probes.probe`).
    norm, eps, objective : as given to the probe run.
    bits : {8, 16}
        Lattice of the output file.
    steps : int
        Lattice PGD steps (0: only project).
    step_size : float, optional
        Default: for linf one lattice level (1/levels) — smaller steps cannot move a lattice
        point; for l2, ``eps / 4``.

    Returns
    -------
    LatticeResult
    """
    from brainprobe.probes import _project

    levels = LEVELS[bits]
    images = images.float().contiguous()
    delta = delta.float().to(images.device).contiguous()
    ev = ObjectiveEvaluator(model, images, objective)
    n = images.shape[0]
    eps_t = torch.full((n,), float(eps), device=images.device)
    v_cont, _ = ev.value(delta)
    naive = ((images + delta).clamp(0, 1) * levels).round() / levels - images
    v_round, _ = ev.value(naive)
    best = lattice_project(delta, images, eps, norm, levels)
    best_v, _ = ev.value(best)
    if step_size is None:
        step_size = 1.0 / levels if norm == "linf" else float(eps) / 4
    alpha = torch.full((n,), float(step_size), device=images.device)
    cur_cont, cur_lat = delta.clone(), best.clone()
    for _ in range(steps):
        _, g = ev.value(cur_lat, grad=True)
        adv = _project.step(images + cur_cont, g.contiguous(), alpha, norm)
        adv = _project.project(adv, images, eps_t, norm)
        cur_cont = adv - images
        cur_lat = lattice_project(cur_cont, images, eps, norm, levels)
        v, _ = ev.value(cur_lat)
        better = v > best_v
        best = torch.where(_col(better, best), cur_lat, best)
        best_v = torch.where(better, v, best_v)
    return LatticeResult(delta=best, value=best_v, value_continuous=v_cont, value_rounded=v_round, steps=steps)
