"""Sensitivity curves of linear models in closed form: change = eps |g_roi . u| / SD(ROI mean)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _analysis_helpers import LinearModel, Probe, mid_images
from brainprobe.analysis import sensitivity, sensitivity_scores
from brainprobe.errors import ConfigError
from brainprobe.probes import probe

P = 3 * 8 * 8


def _model(seed: int, training: str) -> LinearModel:
    g = torch.Generator().manual_seed(seed)
    return LinearModel(torch.randn(4, P, generator=g), rois=["V1", "V1", "V4", "V4"], training=training)


def test_curves_auc_and_min_eps_match_closed_form() -> None:
    models = {"a": _model(0, "standard"), "b": _model(1, "robustified")}
    x = mid_images(10)
    eps = np.geomspace(0.01, 1.0, 21)
    probes = {k: probe(m, x, norm="l2", eps=eps.tolist(), objective="drive:V1", progress=False) for k, m in models.items()}
    ds = sensitivity(models, x, probes, criterion=1.0, n_boot=200)
    for name, m in models.items():
        w = m.weight.double().numpy()
        g1, g4 = w[:2].mean(0), w[2:].mean(0)
        u = g1 / np.linalg.norm(g1)  # l2 drive of V1 without the box: eps * u
        xf = x.flatten(1).double().numpy()
        sd1, sd4 = (xf @ g1).std(ddof=1), (xf @ g4).std(ddof=1)
        c1, c4 = np.linalg.norm(g1) / sd1, abs(g4 @ u) / sd4  # change per unit eps, in SDs
        curve = ds["curve"].sel(model=name, norm="l2")
        np.testing.assert_allclose(curve.sel(roi="V1"), c1 * eps, rtol=1e-3)
        np.testing.assert_allclose(curve.sel(roi="V4"), c4 * eps, rtol=1e-3, atol=1e-6)
        expected_auc = np.trapezoid(c1 * eps, np.log10(eps))
        assert float(ds["auc"].sel(model=name, norm="l2", roi="V1")) == pytest.approx(expected_auc, rel=1e-3)
        # the criterion is reached at eps = 1 / c1, found between grid points by log interpolation
        assert float(ds["min_eps"].sel(model=name, norm="l2", roi="V1")) == pytest.approx(1 / c1, rel=0.02)
    assert list(ds["training"].values) == ["standard", "robustified"]
    assert ds["change"].dims == ("model", "norm", "eps", "roi", "image")


def test_bootstrap_ci_over_images_and_never_reached() -> None:
    model = LinearModel(torch.ones(1, P))
    x = mid_images(40, seed=2)
    rng = np.random.default_rng(0)
    scale = torch.tensor(rng.uniform(0.2, 1.8, 40), dtype=torch.float32)  # per-image effect sizes
    eps = torch.tensor([0.01, 0.02])
    u = torch.ones(P) / P**0.5
    delta = eps.reshape(-1, 1, 1) * scale.reshape(1, -1, 1) * u  # E x N x P
    pr = Probe(delta.reshape(2, 40, 3, 8, 8), eps, "l2")
    ds = sensitivity({"m": model}, x, {"m": pr}, criterion=1e6, n_boot=2000, seed=1)
    per = ds["change"].sel(model="m", norm="l2", roi="all").values  # E x N
    half = (ds["curve_ci_high"] - ds["curve_ci_low"]).sel(model="m", norm="l2", roi="all").values / 2
    np.testing.assert_allclose(half, 1.96 * per.std(1) / np.sqrt(40), rtol=0.15)
    assert np.isinf(ds["min_eps_image"]).all()  # the criterion is never reached on the grid
    again = sensitivity({"m": model}, x, {"m": pr}, criterion=1e6, n_boot=2000, seed=1)
    assert float(again["curve_ci_low"].sum()) == float(ds["curve_ci_low"].sum())  # seeded
    s = sensitivity_scores(ds)
    assert s.dims == ("model", "image") and s.sizes["image"] == 40


def test_rms_measure_and_errors() -> None:
    model = LinearModel(torch.randn(3, P, generator=torch.Generator().manual_seed(5)))
    x = mid_images(6)
    pr = probe(model, x, norm="linf", eps=[0.01], objective="shift", progress=False)
    ds = sensitivity({"m": model}, x, {"m": pr}, measure="rms", n_boot=50)
    xf = x.flatten(1).double().numpy()
    w = model.weight.double().numpy()
    d = (pr.delta.flatten(2).double().numpy() @ w.T)[0]  # N x T
    expected = np.sqrt(((d / (xf @ w.T).std(0, ddof=1)) ** 2).mean(1))
    np.testing.assert_allclose(ds["change"].sel(model="m", norm="linf", roi="all").values[0], expected, rtol=1e-4)
    assert sensitivity({"m": model}, x, {"m": pr}, n_boot=50).attrs["measure"] == "rms"  # read from pr.objective
    with pytest.raises(ConfigError, match="no such models"):
        sensitivity({}, x, {"m": pr})
    with pytest.raises(ConfigError, match="measure"):
        sensitivity({"m": model}, x, {"m": pr}, measure="max")


def test_photo_bootstrap_with_unequal_groups() -> None:
    """Groups of unequal size: a resample holds a varying number of images; the median CI still brackets it."""
    models = {"a": _model(0, "standard"), "b": _model(1, "robustified")}
    x = mid_images(10)
    eps = np.geomspace(0.01, 1.0, 9)
    probes = {k: probe(m, x, norm="l2", eps=eps.tolist(), objective="drive:V1", progress=False) for k, m in models.items()}
    groups = ["p0"] * 5 + ["p1"] * 2 + ["p2", "p3", "p4"]
    ds = sensitivity(models, x, probes, criterion=1.0, n_boot=200, groups=groups)
    lo, hi = ds["min_eps_ci_low"].sel(roi="V1"), ds["min_eps_ci_high"].sel(roi="V1")
    med = ds["min_eps"].sel(roi="V1")
    assert bool(((lo <= med) & (med <= hi)).all())
    assert bool((hi > lo).any())  # the photo resamples really vary
