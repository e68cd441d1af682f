"""Semantics: spectral energy share of gratings, KL / top-1 flips against scipy, a real ImageNet classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax

from _analysis_helpers import Probe, mid_images
from brainprobe.analysis import classifier_change, low_frequency_share, semantics, white_noise_share


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
