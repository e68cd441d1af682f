"""Coding axes: alignment equals the analytic principal-angle value; randomised SVD recovers the exact axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from _analysis_helpers import LinearModel, mid_images
from brainprobe.analysis import coding_axes, jacobian, local_axes, subspace_alignment
from brainprobe.errors import ConfigError

P = 3 * 6 * 6


def _basis(seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(P, P)))
    return q.T  # rows: a random orthonormal basis of pixel space


def test_alignment_equals_principal_angle_value() -> None:
    q = _basis()
    theta, phi = 0.7, 1.2
    # A spans (q0, q1); B spans (cos t q0 + sin t q2, cos f q1 + sin f q3): principal angles t and f
    span_a = np.stack([q[0], q[1]])
    span_b = np.stack([np.cos(theta) * q[0] + np.sin(theta) * q[2], np.cos(phi) * q[1] + np.sin(phi) * q[3]])
    rng = np.random.default_rng(1)
    # readouts are mixtures of the spanning vectors, so singular vectors are not the vectors themselves
    w_a = rng.normal(size=(2, 2)) @ span_a
    w_b = rng.normal(size=(2, 2)) @ span_b
    models = {"A": LinearModel(torch.tensor(w_a)), "B": LinearModel(torch.tensor(w_b))}
    x = mid_images(4, size=6)
    ds = coding_axes(models, x, k=2, method="exact", n_boot=50, whiten=False)
    expected = (np.cos(theta) ** 2 + np.cos(phi) ** 2) / 2
    got = ds["alignment"].sel(roi="all")
    assert float(got.sel(model_a="A", model_b="B")) == pytest.approx(expected, abs=1e-5)
    assert float(got.sel(model_a="A", model_b="A")) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(ds["alignment_image"].sel(roi="all", model_a="B", model_b="A"), expected, atol=1e-5)
    assert float(ds["chance"].sel(roi="all")) == pytest.approx(2 / P)
    # singular values of a linear model are those of its weight matrix
    np.testing.assert_allclose(ds["singular_values"].sel(model="A", roi="all").values[0],
                               np.linalg.svd(w_a, compute_uv=False), rtol=1e-5)


def test_subspace_alignment_of_random_subspaces_is_near_chance() -> None:
    rng = np.random.default_rng(2)
    k, p = 3, 400
    a = np.linalg.qr(rng.normal(size=(50, p, k)))[0].transpose(0, 2, 1)
    b = np.linalg.qr(rng.normal(size=(50, p, k)))[0].transpose(0, 2, 1)
    assert subspace_alignment(a, b).mean() == pytest.approx(k / p, rel=0.2)


def test_brain_alignment_and_per_roi_axes() -> None:
    q = _basis(3)
    w = np.concatenate([2 * q[:3], 0.5 * q[3:6]])  # ROI V1 reads q0..q2, ROI V4 reads q3..q5
    rois = ["V1"] * 3 + ["V4"] * 3
    same = LinearModel(torch.tensor(w), rois=rois)
    other = LinearModel(torch.tensor(np.concatenate([q[:3], q[6:9]])), rois=rois)
    brain = LinearModel(torch.tensor(3 * w), rois=rois)
    x = mid_images(3, size=6)
    ds = coding_axes({"same": same, "other": other}, x, k=3, brain=brain, n_boot=50)
    np.testing.assert_allclose(ds["brain_alignment"].sel(model="same").values, [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(ds["brain_alignment"].sel(model="other", roi="V1"), 1.0, atol=1e-5)
    assert float(ds["brain_alignment"].sel(model="other", roi="V4")) == pytest.approx(0.0, abs=1e-5)
    assert list(ds["model"].values) == ["same", "other", "brain"]


class _SmallConv(nn.Module):
    """A non-linear response model: conv -> softplus -> conv -> pooled readout to many targets."""

    def __init__(self, n_targets: int = 60) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, n_targets)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3
        decay = torch.logspace(0, -2, 8 * 4 * 4)  # a decaying spectrum, as in real encoders
        self.fc.weight.data *= decay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.softplus(self.c2(nn.functional.softplus(self.c1(x))))
        return self.fc(h.flatten(1))


def test_randomized_matches_exact_on_a_nonlinear_model() -> None:
    model = _SmallConv()
    x = mid_images(3, size=8, spread=0.3)
    v_exact, s_exact = local_axes(model, x, k=3, method="exact")
    v_rand, s_rand = local_axes(model, x, k=3, method="randomized", power_iters=2, seed=1)
    assert v_exact.shape == (3, 3, 3, 8, 8)
    np.testing.assert_allclose(s_rand.numpy(), s_exact.numpy(), rtol=5e-3)
    align = subspace_alignment(v_exact.flatten(2), v_rand.flatten(2))
    assert (align > 0.99).all(), align
    # the Jacobian by VJPs agrees with finite differences
    jac = jacobian(model, x[:1], np.arange(60))[0]
    d = torch.randn(1, 3, 8, 8, dtype=torch.float64) * 1e-3
    with torch.no_grad():
        fd = (model((x[:1].double() + d).float()) - model((x[:1].double() - d).float())).double()[0] / 2
    np.testing.assert_allclose(fd.numpy(), (jac @ d.flatten()).numpy(), rtol=0.05, atol=1e-5)


class _Gated(nn.Module):
    """y = W_A x on bright images (mean > 0.5), W_B x on dark ones: the local axes depend on the image."""

    def __init__(self, w_a: np.ndarray, w_b: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("w_a", torch.tensor(w_a, dtype=torch.float32))
        self.register_buffer("w_b", torch.tensor(w_b, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x.flatten(1).mean(1, keepdim=True) > 0.5).float()
        return bright * (x.flatten(1) @ self.w_a.T) + (1 - bright) * (x.flatten(1) @ self.w_b.T)


def test_mismatched_null_is_the_matched_value_for_a_linear_model() -> None:
    q = _basis(4)
    a = LinearModel(torch.tensor(np.stack([q[0], q[1]])))
    theta = 0.9
    b = LinearModel(torch.tensor(np.stack([np.cos(theta) * q[0] + np.sin(theta) * q[2], q[1]])))
    ds = coding_axes({"A": a, "B": b}, mid_images(5, size=6), k=2, method="exact", n_boot=50, whiten=False)
    expected = (np.cos(theta) ** 2 + 1) / 2
    assert float(ds["mismatched"].sel(roi="all", model_a="A", model_b="B")) == pytest.approx(expected, abs=1e-5)
    assert float(ds["excess"].sel(roi="all", model_a="A", model_b="B")) == pytest.approx(0.0, abs=1e-5)


def test_mismatched_null_on_an_image_dependent_model_is_known() -> None:
    q = _basis(5)
    phi = 0.6  # subspaces of the two branches: principal angles 0 and phi -> alignment (1 + cos^2 phi) / 2
    w_a = np.stack([q[0], q[1]])
    w_b = np.stack([q[0], np.cos(phi) * q[1] + np.sin(phi) * q[2]])
    c = (1 + np.cos(phi) ** 2) / 2
    n = 6
    x = mid_images(n, size=6, spread=0.05)
    x[: n // 2] += 0.2  # 3 bright images, 3 dark ones
    x[n // 2 :] -= 0.2
    model = _Gated(w_a, w_b)
    brain = _Gated(3 * w_a, 0.5 * w_b)
    ds = coding_axes({"m": model}, x, k=2, method="exact", brain=brain, n_boot=200, whiten=False)
    null = ((n / 2 - 1) * 1 + (n / 2) * c) / (n - 1)  # same branch at n/2 - 1 other images, the other at n/2
    assert float(ds["brain_alignment"].sel(model="m", roi="all")) == pytest.approx(1.0, abs=1e-5)
    assert float(ds["brain_mismatched"].sel(model="m", roi="all")) == pytest.approx(null, abs=1e-5)
    assert float(ds["brain_excess"].sel(model="m", roi="all")) == pytest.approx(1 / null - 1, abs=1e-4)
    lo, hi = (float(ds[f"brain_excess_ci_{s}"].sel(model="m", roi="all")) for s in ("low", "high"))
    assert lo <= 1 / null - 1 <= hi


def test_noise_whitening_picks_the_axis_most_detectable_above_noise() -> None:
    q = _basis(6)
    model = LinearModel(torch.tensor(np.stack([1.0 * q[0], 2.0 * q[1]])))  # raw: q1 is the top axis
    brain = LinearModel(torch.tensor(np.stack([1.0 * q[0], 0.01 * q[1]])))  # brain reads q0
    x = mid_images(4, size=6)
    raw = coding_axes({"m": model}, x, k=1, method="exact", brain=brain, n_boot=20, whiten=False)
    white = coding_axes({"m": model}, x, k=1, method="exact", brain=brain, n_boot=20,
                        noise_sd=np.array([0.1, 1.0]))  # target 0 is 10x less noisy: q0 becomes the top axis
    assert float(raw["brain_alignment"].sel(model="m", roi="all")) == pytest.approx(0.0, abs=1e-5)
    assert float(white["brain_alignment"].sel(model="m", roi="all")) == pytest.approx(1.0, abs=1e-5)
    assert white.attrs["units"] == "brain trial-noise SD"
    with pytest.raises(ConfigError, match="noise_sd"):
        coding_axes({"m": model}, x, k=1, brain=brain, noise_sd=np.array([1.0, 0.0]))


def test_random_network_null_is_reported_per_model() -> None:
    q = _basis(7)
    brain = LinearModel(torch.tensor(np.stack([q[0], q[1]])))
    trained = LinearModel(torch.tensor(np.stack([q[0], q[1]])))
    rand = LinearModel(torch.tensor(np.stack([q[0], q[3]])))  # shares one of two axes: alignment 1/2
    ds = coding_axes({"t": trained, "u": trained}, mid_images(4, size=6), k=2, method="exact", brain=brain,
                     random_models={"t": rand}, n_boot=20, whiten=False)
    assert float(ds["random_brain_alignment"].sel(model="t", roi="all")) == pytest.approx(0.5, abs=1e-5)
    assert np.isnan(float(ds["random_brain_alignment"].sel(model="u", roi="all")))
    assert list(ds["model"].values) == ["t", "u", "brain"]
    # one random network shared by two models (an architecture's null) is computed once, reported for both
    for whiten in (False, True):
        shared = coding_axes({"t": trained, "u": trained}, mid_images(4, size=6), k=2, method="exact", brain=brain,
                             random_models={"t": rand, "u": rand}, n_boot=20, whiten=whiten)
        np.testing.assert_array_equal(shared["random_brain_alignment"].sel(model="t").values,
                                      shared["random_brain_alignment"].sel(model="u").values)
        assert float(shared["random_brain_alignment"].sel(model="u", roi="all")) == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ConfigError, match="random_models"):
        coding_axes({"t": trained}, mid_images(3, size=6), k=2, brain=brain, random_models={"zz": rand})


def test_batchnorm_calibration_of_a_random_network_ignores_the_global_random_state() -> None:
    """EfficientNet-Lite0 has drop-connect: calibrating in full training mode made its statistics depend on
    torch's global RNG (the demo's random-init null differed between two runs of the same seed)."""
    from brainprobe.analysis._axes import calibrate_batchnorm
    from brainprobe.zoo import get_spec

    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    stats = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        net = get_spec("efficientnet_lite0").builder()
        torch.manual_seed(global_seed)
        calibrate_batchnorm(net, images, batch_size=4)
        assert not net.training
        stats.append(torch.cat([m.running_mean for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]))
    torch.testing.assert_close(stats[0], stats[1], rtol=0, atol=0)
    assert float(stats[0].abs().sum()) > 0
