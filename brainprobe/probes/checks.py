"""Cheap sanity checks of a probe run (after AutoAttack's checks.py): a failure warns, naming the check."""

from __future__ import annotations

import warnings

import torch
from torch import nn

BALL_RTOL = 1e-6
BOX_ATOL = 1e-6


class ProbeCheckWarning(UserWarning):
    """A probe sanity check failed; the message names the check."""


def _warn(name: str, message: str) -> None:
    warnings.warn(f"probe check '{name}' failed: {message}", ProbeCheckWarning, stacklevel=4)


def check_determinism(model: nn.Module, forward, x: torch.Tensor) -> bool:  # type: ignore[no-untyped-def]
    """Two eval-mode forwards on the same images agree (to 1e-5 relative); warns 'determinism' if not."""
    with torch.no_grad():
        a, b = forward(model, x), forward(model, x)
    tol = 1e-5 * (1.0 + float(a.abs().max())) if a.numel() else 0.0
    ok = bool(torch.isfinite(a).all()) and float((a - b).abs().max()) <= tol
    if not ok:
        _warn(
            "determinism",
            f"{type(model).__name__} gives different responses to the same images (max diff "
            f"{float((a - b).abs().max()):.3g}) or non-finite ones; put dropout/noise layers in eval mode",
        )
    return ok


def check_gradients(zero_grad: torch.Tensor, names: list[str]) -> bool:
    """Every item had a non-zero, finite input gradient at its first step; warns 'gradient' if not."""
    n_bad = int(zero_grad.sum())
    if n_bad:
        _warn(
            "gradient",
            f"{n_bad} of {len(zero_grad)} probes ({', '.join(sorted(set(names)))}) had a zero or non-finite "
            "input gradient at the start; the model may be non-differentiable there or the targets unused",
        )
    return n_bad == 0


def budget_violation(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Per item: ||delta|| / eps - 1 (positive when outside the ball); delta M x ..., eps M."""
    flat = delta.reshape(delta.shape[0], -1).double()
    size = flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)
    e = eps.double()
    return torch.where(e > 0, size / e.clamp_min(1e-300) - 1, torch.where(size > 0, torch.inf, -1.0))


def check_budget(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> bool:
    """Every delta lies in its ball (1e-6 relative); warns 'budget' if not."""
    excess = budget_violation(delta, eps, norm)
    ok = bool((excess <= BALL_RTOL).all())
    if not ok:
        _warn("budget", f"{int((excess > BALL_RTOL).sum())} perturbations exceed their {norm} budget "
              f"(worst by {float(excess.max()):.3g} relative)")
    return ok


def check_box(images: torch.Tensor, delta: torch.Tensor, image_index: torch.Tensor) -> bool:
    """Every x + delta lies in [0, 1] (to 1e-6); warns 'box' if not."""
    adv = images.index_select(0, image_index) + delta
    worst = float(torch.maximum(-adv.amin(), adv.amax() - 1)) if adv.numel() else 0.0
    ok = worst <= BOX_ATOL
    if not ok:
        _warn("box", f"perturbed images leave [0, 1] by up to {worst:.3g}")
    return ok


def check_convergence(results: list) -> bool:  # type: ignore[type-arg]
    """Median fraction of the first-order bound at the smallest budget >= 0.95 for every result;
    warns 'convergence' if not (NaN fractions, where no bound is defined, are skipped)."""
    from brainprobe.probes.convergence import CONVERGED

    ok = True
    for r in results:
        frac = r.fraction()
        if frac is None or not bool(torch.isfinite(frac).any()):
            continue
        med = float(frac[torch.isfinite(frac)].median())
        if med < CONVERGED:
            ok = False
            e_min = int(torch.argmin(r.eps))
            gain = float(r.late_gain[e_min].median()) if r.late_gain is not None else float("nan")
            _warn(
                "convergence",
                f"{r.objective} ({r.norm}, eps {float(r.eps.min()):.3g}): probes reach a median {med:.3f} of the "
                f"first-order bound (< {CONVERGED}), the last 20% of steps added {gain:.1%}; if that is ~0 the "
                "model's curvature at this budget is the limit (a smaller budget is nearer linear), else raise steps",
            )
    return ok
