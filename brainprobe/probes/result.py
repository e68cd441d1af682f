"""ProbeResult: the perturbations a probe run found and what they did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ProbeResult:
    """Result of :func:`brainprobe.probes.probe` for one objective.

    Attributes
    ----------
    delta : Tensor, E x N x 3 x H x W, float32
        Perturbation per budget and image, in [0, 1] pixel units; ``images + delta`` is in [0, 1].
    change : Tensor, E x N x T, float32
        Probed model's response change ``y(x + delta) - y(x)`` (response units).
    objective_value : Tensor, E x N, float32
        Achieved objective (0 = no change; higher is better).
    eps : Tensor, E, float32
        Budgets (l2: Euclidean norm over all 3*H*W pixel values; linf: max abs pixel change).
    norm : str
        ``"l2"`` or ``"linf"``.
    objective : str
        Objective name, e.g. ``"drive:V1"``.
    clean : Tensor, N x T
        Probed model's clean responses.
    trace : Tensor, I x E x N
        Objective at every iterate (I = restarts * (steps + 1); iterate 0 is the start point).
    best_step : Tensor, E x N (long)
        Index into ``trace`` of the returned iterate.
    checks : dict
        Sanity check name -> passed (bool); see :mod:`brainprobe.probes.checks`.
    settings : dict
        Everything needed to reproduce the run (steps, step sizes, seed, batch size, device,
        dtype, versions, model class); ``settings["convergence"]`` says how ``bound`` was computed.
    bound : Tensor, N, float64, or None
        First-order bound of each image's objective at the smallest budget (objective units;
        :mod:`brainprobe.probes.convergence`); NaN where undefined, None when not computed.
    late_gain : Tensor, E x N, float32, or None
        Gain of the best objective over the last 20% of steps, relative to the final best
        (0: the last steps added nothing).
    """

    delta: torch.Tensor
    change: torch.Tensor
    objective_value: torch.Tensor
    eps: torch.Tensor
    norm: str
    objective: str
    clean: torch.Tensor
    trace: torch.Tensor
    best_step: torch.Tensor
    checks: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    bound: torch.Tensor | None = None
    late_gain: torch.Tensor | None = None

    def fraction(self) -> torch.Tensor | None:
        """Achieved objective / first-order bound at the smallest budget, per image (N,), or None.

        About 1 for a converged probe in the near-linear regime of small budgets; below 0.95 the
        run under-estimates the model's sensitivity (more steps, a larger step size).
        """
        if self.bound is None:
            return None
        e_min = int(torch.argmin(self.eps))
        return self.objective_value[e_min].double() / self.bound.double()

    def perturbed(self, images: torch.Tensor) -> torch.Tensor:
        """The probe images ``images + delta`` (E x N x 3 x H x W), clipped to [0, 1] against rounding."""
        return (images.to(self.delta.device).unsqueeze(0) + self.delta).clamp(0, 1)

    def delta_norm(self) -> torch.Tensor:
        """Size of each perturbation in the run's norm: E x N."""
        flat = self.delta.flatten(2)
        return flat.abs().amax(dim=2) if self.norm == "linf" else flat.norm(dim=2)

    def __repr__(self) -> str:
        e, n = self.objective_value.shape
        return (
            f"ProbeResult(objective={self.objective!r}, norm={self.norm!r}, eps={[round(float(v), 6) for v in self.eps]}, "
            f"images={n}, targets={self.change.shape[-1]}, mean objective={float(self.objective_value.mean()):.4g})"
        )
