"""Transfer between linear models has closed forms: cos(w_A, w_B) under l2, w_B.sign(w_A)/|w_B|_1 under linf."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _analysis_helpers import LinearModel, mid_images
from brainprobe.analysis import transfer
from brainprobe.probes import probe


def _pair(seed: int = 0, p: int = 3 * 8 * 8) -> dict[str, LinearModel]:
    g = torch.Generator().manual_seed(seed)
    w_a = torch.randn(1, p, generator=g)
    w_b = 0.6 * w_a + torch.randn(1, p, generator=g)  # correlated, cosine about 0.5
    w_c = torch.randn(1, p, generator=g) * torch.linspace(0.1, 2, p)
    return {"A": LinearModel(w_a, architecture="a"), "B": LinearModel(w_b, architecture="b"),
            "C": LinearModel(w_c, architecture="c")}


def test_transfer_matches_closed_forms_with_real_probes() -> None:
    models = _pair()
    x = mid_images(6)
    eps = {"l2": [0.05, 0.1], "linf": [0.005, 0.01]}  # far from the box at 0.5 +- 0.1
    probes = {k: [probe(m, x, norm=nm, eps=e, objective="drive", steps=10, progress=False) for nm, e in eps.items()]
              for k, m in models.items()}
    ds = transfer(models, x, probes, objective="drive", n_boot=200)
    w = {k: m.weight[0].double().numpy() for k, m in models.items()}
    for a in w:
        for b in w:
            cos = w[a] @ w[b] / np.linalg.norm(w[a]) / np.linalg.norm(w[b])
            sign = w[b] @ np.sign(w[a]) / np.abs(w[b]).sum()
            got_l2 = ds["transfer"].sel(source_model=a, target_model=b, norm="l2").dropna("eps").values
            got_linf = ds["transfer"].sel(source_model=a, target_model=b, norm="linf").dropna("eps").values
            np.testing.assert_allclose(got_l2, cos, atol=1e-4)
            np.testing.assert_allclose(got_linf, sign, atol=1e-4)
    # the closed forms differ, so the test can tell the norms apart
    assert abs(float(ds["transfer"].sel(source_model="A", target_model="C", norm="l2", eps=0.1))
               - float(ds["transfer"].sel(source_model="A", target_model="C", norm="linf", eps=0.01))) > 0.02
    assert ds["transfer_ci_low"].sel(norm="l2", eps=0.1).notnull().all()


def test_brain_closed_loop_ratio_and_correlation() -> None:
    models = _pair(1)
    x = mid_images(12, seed=3)
    # brain = 0.5 * A + A-orthogonal part: A's probes move it by half of what A predicts
    w_a = models["A"].weight
    brain = LinearModel(0.5 * w_a)
    probes = {k: probe(m, x, norm="l2", eps=[0.1], objective="drive", progress=False) for k, m in models.items()}
    ds = transfer(models, x, probes, objective="drive", brain=brain, n_boot=200)
    assert float(ds["brain_ratio"].sel(source_model="A", norm="l2").squeeze()) == pytest.approx(0.5, abs=1e-3)
    w_b = models["B"].weight[0].double().numpy()
    cos = w_b @ w_a[0].double().numpy() / np.linalg.norm(w_b) / np.linalg.norm(w_a[0].double().numpy())
    # B's probes move the brain by 0.5 |w_A| cos / |w_B| relative to B's prediction
    expect = 0.5 * np.linalg.norm(w_a[0].double().numpy()) * cos / np.linalg.norm(w_b)
    assert float(ds["brain_ratio"].sel(source_model="B", norm="l2").squeeze()) == pytest.approx(expect, rel=1e-3)


def test_shift_transfer_projects_on_source_pattern() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(4, 3 * 8 * 8, generator=g)
    models = {"A": LinearModel(w), "A2": LinearModel(2 * w)}  # same geometry, scaled outputs
    x = mid_images(8)
    probes = {k: probe(m, x, norm="l2", eps=[0.05], objective="shift", steps=20, progress=False) for k, m in models.items()}
    ds = transfer(models, x, probes, n_boot=100)  # objective read from the probe results ("shift:all")
    assert ds.attrs["objective"] == "shift:all"
    # normalised targets: a scaled copy responds identically, so probes transfer fully both ways
    np.testing.assert_allclose(ds["transfer"].values.squeeze(), 1.0, atol=0.02)


def test_user_errors_are_one_line_config_errors() -> None:
    from brainprobe.errors import ConfigError
    from brainprobe.probes import Contrast

    models = _pair()
    x = mid_images(4)
    probes = {k: probe(m, x, norm="l2", eps=[0.1], objective="drive", progress=False) for k, m in models.items()}
    with pytest.raises(ConfigError, match="not a Drive or Shift"):
        transfer(models, x, probes, objective=Contrast(models["A"], models["B"]))
    with pytest.raises(ConfigError, match="pass the images that were probed"):
        transfer(models, x[:3], probes, objective="drive")
    with pytest.raises(ConfigError, match="no such models"):
        transfer({"A": models["A"]}, x, probes, objective="drive")
    with pytest.raises(ConfigError, match="unknown ROI"):
        transfer(models, x, probes, objective="drive:V9")
    with pytest.raises(ConfigError, match="expected a ProbeResult"):
        transfer(models, x, {"A": "not a probe"}, objective="drive")


def test_closed_loop_correlation_across_images() -> None:
    """Where the box binds, A's predicted change varies by image; a brain proportional to A tracks it exactly."""
    models = _pair(3)
    x = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # many pixels near 0 / 1
    probes = {k: probe(m, x, norm="linf", eps=[0.2, 0.5], objective="drive", steps=20, progress=False)
              for k, m in models.items()}
    w_a = models["A"].weight
    for factor in (0.5, -2.0):
        ds = transfer(models, x, probes, objective="drive", brain=LinearModel(factor * w_a), n_boot=200)
        pred = ds["predicted"].sel(source_model="A", norm="linf")
        assert float(pred.std("image").min()) > 0.01 * float(pred.mean())  # the box makes images differ
        np.testing.assert_allclose(ds["brain_r"].sel(source_model="A", norm="linf"), np.sign(factor), atol=1e-6)
        np.testing.assert_allclose(ds["brain_ratio"].sel(source_model="A", norm="linf"), factor, rtol=1e-4)
        # B's probes: the brain's change is factor * A's change under them, correlated with B's prediction < 1
        r_b = ds["brain_r"].sel(source_model="B", norm="linf").values
        assert (np.abs(r_b) < 1 - 1e-3).all()
