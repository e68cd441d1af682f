"""Semantics: spectral energy share of gratings, KL / top-1 flips against scipy, a real ImageNet classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax

from _analysis_helpers import Probe, mid_images
from brainprobe.analysis import classifier_change, low_frequency_share, semantics, white_noise_share
from brainprobe.errors import ConfigError


def _grating(cycles: int, size: int = 32, axis: int = -1, phase: float = 0.3) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64)
    wave = torch.sin(2 * np.pi * cycles * t / size + phase)
    img = wave.reshape(1, size) if axis == -1 else wave.reshape(size, 1)
    return img.expand(size, size).expand(3, size, size).clone()


def test_low_frequency_share_of_gratings() -> None:
    low, high = _grating(2), _grating(8, axis=-2)  # 0.0625 and 0.25 cycles / pixel
    assert low_frequency_share(low, 0.1) == pytest.approx(1.0)
    assert low_frequency_share(high, 0.1) == pytest.approx(0.0, abs=1e-12)
    a, b = 0.3, 0.7
    assert low_frequency_share(a * low + b * high, 0.1) == pytest.approx(a**2 / (a**2 + b**2))
    noise = torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert low_frequency_share(noise, 0.1).mean() == pytest.approx(white_noise_share(32, 32, 0.1), rel=0.05)
    assert white_noise_share(128, 128, 0.1) == pytest.approx(np.pi * 0.1**2, rel=0.03)


def test_classifier_change_matches_scipy() -> None:
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
    x = torch.rand(5, 3, 4, 4)
    moved = (x + 0.3 * torch.randn(2, 5, 3, 4, 4)).clamp(0, 1)
    kl, flip = classifier_change(clf, x, moved)
    with torch.no_grad():
        p = softmax(clf(x).double().numpy(), -1)
        q = softmax(clf(moved.reshape(-1, 3, 4, 4)).double().numpy(), -1).reshape(2, 5, 10)
    np.testing.assert_allclose(kl, rel_entr(p[None], q).sum(-1), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(flip, p.argmax(-1)[None] != q.argmax(-1))


def test_semantics_with_a_real_imagenet_classifier() -> None:
    from brainprobe.zoo import load_backbone

    clf = load_backbone("mobilenet_v2")
    x = mid_images(4, size=64, spread=0.4)
    eps = torch.tensor([1e-4, 16 / 255])
    g = torch.Generator().manual_seed(0)
    sign = torch.sign(torch.randn(1, 4, 3, 64, 64, generator=g))
    smooth = torch.sign(torch.randn(1, 4, 3, 4, 4, generator=g)).repeat_interleave(16, -1).repeat_interleave(16, -2)
    probes = {"noisy": Probe(eps.reshape(-1, 1, 1, 1, 1) * sign, eps, "linf"),
              "smooth": Probe(eps.reshape(-1, 1, 1, 1, 1) * smooth, eps, "linf")}
    ds = semantics(x, probes, classifier=clf, classifier_name="mobilenet_v2", n_boot=100)
    kl = ds["kl_mean"].sel(norm="linf")
    assert (kl.sel(eps=1e-4) < 1e-3).all()  # a tiny probe barely changes the class distribution
    assert (kl.sel(eps=16 / 255, method="nearest") > 10 * kl.sel(eps=1e-4)).all()
    share = ds["low_freq_share_mean"].sel(norm="linf").isel(eps=-1)
    assert float(share.sel(model="smooth")) > 0.8 > 0.1 > float(share.sel(model="noisy"))
    assert ds.attrs["classifier"] == "mobilenet_v2"
    assert set(np.unique(ds["top1_flip"].values)) <= {0.0, 1.0}


def _lowpass_matrix(size: int, cutoff: float) -> torch.Tensor:
    """P x P matrix of the per-channel orthogonal projector onto radial frequencies < cutoff."""
    from brainprobe.analysis._semantics import _low_mask

    p = 3 * size * size
    eye = torch.eye(p, dtype=torch.float64).reshape(p, 3, size, size)
    low = torch.fft.ifft2(torch.fft.fft2(eye) * _low_mask(size, size, cutoff)).real
    return low.reshape(p, p).T


class _Projector(torch.nn.Module):
    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("m", matrix.float())
        self.judge_kind = "features"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.m.T


def test_semantics_baselines_on_a_model_that_is_exactly_a_low_pass_filter() -> None:
    from _analysis_helpers import LinearModel
    from brainprobe.probes import probe

    size, cutoff = 16, 0.1
    low = _lowpass_matrix(size, cutoff)
    model = LinearModel(low)  # responses = the low-passed image: its probes live in the pass band
    x = mid_images(6, size=size, spread=0.1)
    eps = [0.05, 0.2]
    pr = probe(model, x, norm="l2", eps=eps, objective="drive:#40", steps=3, progress=False)
    high = torch.eye(low.shape[0], dtype=torch.float64) - low
    judges = {"lowpass": _Projector(low), "highpass": _Projector(high)}
    ds = semantics(x, {"lp": pr}, judges=judges, cutoff=cutoff, n_boot=200)
    np.testing.assert_allclose(ds["low_freq_share"].values, 1.0, atol=1e-4)
    white = ds["noise_low_freq_share"].sel(noise="white").values
    assert white.mean() == pytest.approx(white_noise_share(size, size, cutoff), rel=0.3)
    # probe share 1 minus each noise's share, image by image
    np.testing.assert_allclose(ds["lf_excess"].sel(noise="pink").values,
                               (1 - ds["noise_low_freq_share"].sel(noise="pink").values).mean(-1), atol=1e-4)
    # the high-pass judge does not see the probe at all; it sees the noise
    np.testing.assert_allclose(ds["judge_change"].sel(judge="highpass").values, 0.0, atol=1e-4)
    assert (ds["judge_noise_change"].sel(judge="highpass").values > 1e-3).all()
    # the low-pass judge sees the whole probe and sqrt(low share) of each equal-norm noise (Parseval)
    jp = ds["judge_change"].sel(judge="lowpass").values
    for kind in ("white", "pink"):
        jn = ds["judge_noise_change"].sel(judge="lowpass", noise=kind).values
        share = ds["noise_low_freq_share"].sel(noise=kind).values
        np.testing.assert_allclose(jn / jp, np.sqrt(share), rtol=1e-3)
    ratio = ds["judge_ratio"].sel(judge="lowpass", norm="l2").values
    expected = jp.mean(-1) / np.max([ds["judge_noise_change"].sel(judge="lowpass", noise=k).values.mean(-1)
                                     for k in ("white", "pink")], axis=0)
    np.testing.assert_allclose(ratio, expected[0], rtol=1e-9)
    assert (ratio > 1).all()
    assert float(ds["judge_ratio_ci_low"].sel(judge="lowpass").min()) <= float(ratio.min())


def test_gabor_energy_judge_sees_structure_not_a_constant_shift() -> None:
    from brainprobe.analysis._semantics import GaborEnergy, judge_change

    judge = GaborEnergy()
    x = mid_images(2, size=32, spread=0.2)
    grating = _grating(4, size=32).float()[None, None] * 0.05
    shift = torch.full((1, 2, 3, 32, 32), 0.05)
    change_grating = judge_change(judge, x, (x + grating).clamp(0, 1), "features")
    change_shift = judge_change(judge, x, (x + shift).clamp(0, 1), "features")
    assert (change_grating > 5 * change_shift).all()


def test_nlpd_judge_is_plenoptics_distance_on_luminance_and_zero_for_no_change() -> None:
    import plenoptic as po

    from brainprobe.analysis._semantics import NLPDistance, _judge_kind, judge_change

    judge = NLPDistance()
    assert _judge_kind(judge) == "distance"
    x = mid_images(3, size=64, spread=0.2)
    delta = 0.03 * torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    moved = (x[None] + delta).clamp(0, 1)
    got = judge_change(judge, x, moved, "distance", batch_size=2)  # batches split the images: same values
    weights = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    for m in range(2):
        ref = po.metric.nlpd((x * weights).sum(1, keepdim=True), (moved[m] * weights).sum(1, keepdim=True))
        np.testing.assert_allclose(got[m], ref.reshape(-1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(judge_change(judge, x, x[None], "distance"), 0.0, atol=1e-4)  # sqrt(epsilon) floor
    # a visible grating moves the early-vision model more than an equal-l2 uniform shift
    grating = _grating(8, size=64).float()[None, None]
    grating = grating / grating.norm() * 0.5
    shift = torch.full((1, 1, 3, 64, 64), 0.5 / float(np.sqrt(3 * 64 * 64)))
    assert (judge_change(judge, x, (x + grating).clamp(0, 1), "distance")
            > 2 * judge_change(judge, x, (x + shift).clamp(0, 1), "distance")).all()
    with pytest.raises(ConfigError, match="too small"):
        judge_change(judge, x[:, :, :32, :32], x[None, :, :, :32, :32], "distance")
