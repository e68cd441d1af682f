"""Equal-norm random baselines: exact norms, 1/f spectrum, and the analytic change of a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _analysis_helpers import LinearModel, mid_images
from brainprobe.analysis import transfer
from brainprobe.analysis._baselines import perturbation_norms, random_like
from brainprobe.probes import probe


def _delta(e: int = 2, n: int = 5, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(e, n, 3, size, size, generator=g) * torch.rand(e, n, 1, 1, 1, generator=g) * 0.01


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_random_perturbations_have_the_probe_norm(norm: str, kind: str) -> None:
    d = _delta()
    d[0, 1] = 0  # a probe that did not move: its baseline does not move either
    r = random_like(d, norm, kind, seed=1)
    np.testing.assert_allclose(perturbation_norms(r, norm), perturbation_norms(d, norm), rtol=1e-5, atol=1e-12)
    assert float(r[0, 1].abs().max()) == 0.0
    assert not torch.allclose(r, random_like(d, norm, kind, seed=2))  # the seed matters
    if norm == "linf" and kind == "white":
        mag = r.abs().flatten(2)
        np.testing.assert_allclose(mag[1].numpy(), np.broadcast_to(d[1].abs().flatten(1).amax(1, keepdim=True), mag[1].shape),
                                   rtol=1e-6)


def test_pink_noise_puts_its_power_at_low_frequencies() -> None:
    d = _delta(1, 8, 32)
    share = {}
    for kind in ("white", "pink"):
        r = random_like(d, "l2", kind, seed=0)
        power = torch.fft.rfft2(r).abs() ** 2
        low = power[..., :4, :4].sum() + power[..., -3:, :4].sum()
        share[kind] = float(low / power.sum())
    assert share["white"] < 0.1  # 4x4 + 3x4 of 32x17 bins: about 5 % of the power
    assert share["pink"] > 0.5


def test_random_baseline_matches_the_linear_expectation() -> None:
    """f(x) = W x, d uniform on the l2 sphere of radius eps in P dims: E ||W d||^2 = eps^2 ||W||_F^2 / P."""
    g = torch.Generator().manual_seed(0)
    size, t = 8, 6
    p = 3 * size * size
    w = torch.randn(t, p, generator=g)
    models = {"A": LinearModel(w, architecture="a"), "B": LinearModel(torch.randn(t, p, generator=g), architecture="b")}
    x = mid_images(40, size=size)
    eps = [0.05, 0.1]
    probes = {k: probe(m, x, norm="l2", eps=eps, objective="drive", steps=10, progress=False) for k, m in models.items()}
    ds = transfer(models, x, probes, baselines=["white"], n_boot=50)
    # drive: the random change of A's target-set mean is v . d with v = mean of W's rows
    v = w.double().numpy().mean(0)
    got = ds["random_change"].sel(noise="white", source_model="B", target_model="A")  # B's probe norms, A's response
    norms = np.array(eps)[:, None] * np.ones((1, 40))
    expect = norms**2 * (v @ v) / p
    ratio = float((got.values**2).sum() / expect.sum())
    assert ratio == pytest.approx(1.0, abs=0.25)  # 80 draws of a chi-square-like quantity
    # the probes beat it: A's own probe moves A by eps ||v|| per unit, the random direction by ~ eps ||v|| / sqrt(P)
    beat = ds["beats_random"].sel(noise="white", source_model="A", target_model="A")
    assert (ds["beats_random_ci_low"].sel(noise="white", source_model="A", target_model="A") > 0.8).all()
    assert (beat > 0.8).all()
    # a shift readout: size of the SD-scaled pattern, E ||S^-1 W d||^2 = eps^2 ||S^-1 W||_F^2 / P
    shift = {k: probe(m, x, norm="l2", eps=eps, objective="shift", steps=10, progress=False) for k, m in models.items()}
    ds2 = transfer(models, x, shift, baselines=["white"], n_boot=50)
    sd = (x.flatten(1).double() @ w.double().T).numpy().std(0, ddof=1)
    fro = float(((w.double().numpy() / sd[:, None]) ** 2).sum())
    got2 = ds2["random_change"].sel(noise="white", source_model="B", target_model="A").values
    assert float((got2**2).sum() / (norms**2 * fro / p).sum()) == pytest.approx(1.0, abs=0.1)
