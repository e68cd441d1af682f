"""Sanity checks warn by name; minimal_eps finds the analytic minimal budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brainprobe.errors import ConfigError
from brainprobe.probes import ProbeCheckWarning, minimal_eps, probe
from brainprobe.probes.checks import check_box, check_budget
from tests.probes.conftest import LinearResponses

D = 3 * 8 * 8


class Noisy(nn.Module):
    """A response model that is random even in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)) + 0.1 * torch.randn(x.shape[0], 2)


def test_nondeterministic_model_warns_determinism() -> None:
    with pytest.warns(ProbeCheckWarning, match="'determinism' failed"):
        res = probe(Noisy(), torch.rand(2, 3, 8, 8), norm="l2", eps=[0.1], objective="drive")
    assert res.checks["determinism"] is False and res.checks["budget"] is True


def test_zero_input_gradient_warns_gradient() -> None:
    w = torch.zeros(2, D)
    w[1] = 1.0  # target 0 does not depend on the image
    model = LinearResponses(w)
    with pytest.warns(ProbeCheckWarning, match="'gradient' failed: 2 of 2 probes \\(drive:#0\\)"):
        res = probe(model, torch.rand(2, 3, 8, 8), norm="linf", eps=[0.01], objective="drive:#0")
    assert res.checks["gradient"] is False


def test_budget_and_box_checks_catch_violations() -> None:
    delta = torch.full((2, 3, 4, 4), 0.1)
    eps = torch.tensor([0.1, 0.0999])
    with pytest.warns(ProbeCheckWarning, match="'budget' failed: 1 perturbations exceed their linf budget"):
        assert check_budget(delta, eps, "linf") is False
    assert check_budget(delta, torch.tensor([0.1, 0.1]), "linf") is True
    assert check_budget(delta, torch.full((2,), 0.1 * 48**0.5 * (1 + 1e-7)), "l2") is True
    x = torch.full((1, 3, 4, 4), 0.95)
    with pytest.warns(ProbeCheckWarning, match="'box' failed"):
        assert check_box(x, delta[:1], torch.tensor([0])) is False


def _linear(seed: int = 0) -> tuple[LinearResponses, torch.Tensor]:
    w = torch.randn(2, D, generator=torch.Generator().manual_seed(seed))
    return LinearResponses(w, rois=["A", "B"]), w


def test_minimal_eps_matches_analytic_threshold() -> None:
    model, w = _linear()
    x = 0.4 + 0.2 * torch.rand((5, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    grid = [0.02, 0.04, 0.08, 0.16]
    target = 0.5  # response units: reached at eps* = 0.5 / ||w_0||
    found = minimal_eps(model, x, norm="l2", objective="drive:A", criterion=target, eps_grid=grid, bisect_steps=6)
    exact = target / float(w[0].norm())
    assert 0.02 < exact < 0.16
    assert bool((found >= exact * (1 - 1e-4)).all())
    assert bool((found - exact <= 0.08 / 2**6 + 1e-6).all())
    # "1sd": one across-image SD of the ROI's clean response
    with torch.no_grad():
        sd = float(model(x)[:, 0].std())
    found_sd = minimal_eps(model, x, norm="linf", objective="drive:A", criterion="1sd", eps_grid=[1e-3, 1e-2, 1e-1])
    exact_sd = sd / float(w[0].abs().sum())
    assert bool((found_sd >= exact_sd * (1 - 1e-4)).all()) and bool((found_sd <= exact_sd * 1.2).all())


def test_minimal_eps_unreached_is_inf_and_bad_criteria_error() -> None:
    model, _ = _linear()
    x = torch.full((2, 3, 8, 8), 0.5)
    found = minimal_eps(model, x, norm="l2", objective="drive:A", criterion=1e6, eps_grid=[0.1, 0.2])
    assert torch.isinf(found).all()
    with pytest.raises(ConfigError, match="must be a number or '<k>sd'"):
        minimal_eps(model, x, norm="l2", objective="drive:A", criterion="big", eps_grid=[0.1])
    with pytest.raises(ConfigError, match="increasing"):
        minimal_eps(model, x, norm="l2", objective="drive:A", criterion=1.0, eps_grid=[0.2, 0.1])
