"""Convergence diagnostics: the first-order bound and the achieved fraction, against known answers."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from brainprobe.probes import Drive, ProbeCheckWarning, Shift, probe
from brainprobe.probes.convergence import first_order_bound, late_gain

SHAPE = (3, 6, 6)
P = 3 * 6 * 6


class Linear(nn.Module):
    """y = W x (flattened pixels), T outputs."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


class TanhRidge(nn.Module):
    """y_t = tanh(w . x + b_t): T outputs saturating along one pixel direction w."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.float())
        self.b = nn.Parameter(b.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh((x.flatten(1) @ self.w).unsqueeze(1) + self.b)


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand((n, *SHAPE), generator=g)  # interior: the box never binds


def _quiet(**kw):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeCheckWarning)
        return probe(progress=False, **kw)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_linear_drive_reaches_the_bound_exactly(norm: str) -> None:
    w = torch.randn(4, P, generator=torch.Generator().manual_seed(1))
    model = Linear(w)
    eps = [0.05, 0.2] if norm == "l2" else [1 / 255, 4 / 255]
    r = _quiet(model=model, images=_images(), norm=norm, eps=eps, objective=Drive(), steps=5)
    g = w.double().mean(0)
    expected = eps[0] * (g.norm() if norm == "l2" else g.abs().sum())
    torch.testing.assert_close(r.bound, expected.expand(3), rtol=1e-4, atol=0)
    torch.testing.assert_close(r.fraction(), torch.ones(3, dtype=torch.float64), rtol=1e-3, atol=0)
    assert r.settings["convergence"]["eps"] == pytest.approx(eps[0])


def test_linear_shift_bound_is_eps_sigma_max_and_a_converged_probe_reaches_it() -> None:
    w = torch.randn(5, P, generator=torch.Generator().manual_seed(2))
    model = Linear(w)
    r = _quiet(model=model, images=_images(), norm="l2", eps=[0.05], objective=Shift(normalize=False), steps=40,
               step_size=1.0)
    smax = float(torch.linalg.svdvals(w.double())[0])
    torch.testing.assert_close(r.bound, torch.full((3,), 0.05 * smax, dtype=torch.float64), rtol=1e-4, atol=0)
    torch.testing.assert_close(r.fraction(), torch.ones(3, dtype=torch.float64), rtol=2e-3, atol=0)


def test_linear_shift_under_converged_probe_reads_below_one_and_warns() -> None:
    w = torch.randn(5, P, generator=torch.Generator().manual_seed(3))
    model = Linear(w)
    with pytest.warns(ProbeCheckWarning, match="convergence"):
        r = probe(model, _images(), norm="l2", eps=[0.05], objective=Shift(normalize=False), steps=1,
                  step_size=0.001, progress=False, jacobian_start=False)
    frac = r.fraction()
    assert bool((frac < 0.5).all())
    assert r.checks["convergence"] is False


def test_jacobian_start_puts_a_linear_shift_at_its_optimum_before_any_step() -> None:
    """Same under-powered PGD (one tiny step), but started along the top singular vector of J: the
    start is already the first-order optimum eps * sigma_max(W), whatever the steps do (rank 3 <=
    START_LANCZOS_ITERS, so Lanczos is exact)."""
    w = torch.randn(3, P, generator=torch.Generator().manual_seed(3))
    r = probe(Linear(w), _images(), norm="l2", eps=[0.05, 0.2], objective=Shift(normalize=False), steps=1,
              step_size=0.001, progress=False)
    assert r.settings["jacobian_start"] is True
    sigma = float(torch.linalg.svdvals(w)[0])
    torch.testing.assert_close(r.trace[0].double(), torch.tensor([[0.05 * sigma] * 3, [0.2 * sigma] * 3],
                                                                  dtype=torch.float64), rtol=1e-3, atol=0)
    torch.testing.assert_close(r.fraction(), torch.ones(3, dtype=torch.float64), rtol=1e-3, atol=0)
    assert r.checks["convergence"] is True
    off = probe(Linear(w), _images(), norm="l2", eps=[0.05], objective=Shift(normalize=False), steps=1, progress=False,
                random_start=True)  # a random start turns it off ("auto")
    assert off.settings["jacobian_start"] is False


def test_linf_shift_rank_one_bound_is_exact() -> None:
    """Rank-1 J = u w^T: max ||J d|| over |d|_inf <= eps is ||u|| eps ||w||_1, found by the power method."""
    g = torch.Generator().manual_seed(4)
    u, wv = torch.randn(3, generator=g), torch.randn(P, generator=g)
    model = Linear(torch.outer(u, wv))
    eps = 1 / 255
    r = _quiet(model=model, images=_images(), norm="linf", eps=[eps], objective=Shift(normalize=False), steps=5)
    expected = float(u.norm() * eps * wv.abs().sum())
    torch.testing.assert_close(r.bound, torch.full((3,), expected, dtype=torch.float64), rtol=1e-4, atol=0)
    torch.testing.assert_close(r.fraction(), torch.ones(3, dtype=torch.float64), rtol=1e-3, atol=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_saturating_tanh_fraction_is_what_the_maths_says(norm: str) -> None:
    """f = mean_t tanh(z_t + w.d): the optimum moves w.d to its max a = eps * ||w||_dual, so the
    fraction is mean[tanh(z_t + a) - tanh(z_t)] / (a * mean sech^2(z_t)) (< 1: tanh saturates)."""
    g = torch.Generator().manual_seed(5)
    wv = torch.randn(P, generator=g)
    x = _images(2)
    b = torch.tensor([0.2, 0.5, 0.9])
    model = TanhRidge(wv, b)
    dual = wv.norm() if norm == "l2" else wv.abs().sum()
    eps = float(1.0 / dual)  # a = 1: well into the saturation
    r = _quiet(model=model, images=x, norm=norm, eps=[eps], objective=Drive(), steps=20)
    z = (x.flatten(1).double() @ wv.double()).unsqueeze(1) + b.double()  # N x T
    a = 1.0
    achieved = (torch.tanh(z + a) - torch.tanh(z)).mean(1)
    bound = a * (1 - torch.tanh(z) ** 2).mean(1)
    torch.testing.assert_close(r.bound, bound, rtol=1e-4, atol=0)
    torch.testing.assert_close(r.fraction(), achieved / bound, rtol=2e-3, atol=0)
    assert bool((r.fraction() < 0.9).all())


def test_bound_is_nan_for_zero_gradient_objectives_without_a_vector_form() -> None:
    from brainprobe.probes.objectives import Compiled

    model = Linear(torch.randn(2, P))
    x = _images(2)
    clean = {id(model): model(x).detach()}

    def value(outs, cl, idx):  # type: ignore[no-untyped-def]
        return ((outs[id(model)] - cl[id(model)].index_select(0, idx)) ** 2).sum(1)

    comp = Compiled([model], value, zero_grad_at_origin=True)
    out = first_order_bound(comp, clean, x, torch.arange(2), torch.full((2,), 0.1), "l2")
    assert bool(torch.isnan(out).all())


def test_late_gain_of_a_known_trace() -> None:
    steps = 10
    trace = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0]).view(-1, 1)  # 11 iterates, one item
    flat = torch.tensor([0, 5, 10, 10, 10, 10, 10, 10, 10, 10, 10.0]).view(-1, 1)
    assert float(late_gain(trace, steps, 1)[0]) == pytest.approx(0.2)  # last 2 steps: 8 -> 10
    assert float(late_gain(flat, steps, 1)[0]) == 0.0
    two = torch.cat([flat, trace])  # two restarts: the last restart's last 20% counts
    assert float(late_gain(two, steps, 2)[0]) == 0.0  # its best never beat the first restart's 10
    assert math.isnan(float(late_gain(torch.zeros(11, 1), steps, 1)[0]))


def test_convergence_off_records_nothing() -> None:
    r = _quiet(model=Linear(torch.randn(2, P)), images=_images(2), norm="l2", eps=[0.1], objective=Drive(), steps=2,
               convergence=False)
    assert r.bound is None and r.fraction() is None
    assert r.late_gain is not None and r.late_gain.shape == (1, 2)
