"""Tests of the shared bootstrap and readout helpers (brainprobe/analysis/_common.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import pytest

from brainprobe.analysis._common import boot_means, boot_weights, group_codes
from brainprobe.errors import ConfigError


def test_boot_weights_per_image_unchanged_and_distinct_groups_identical() -> None:
    w = boot_weights(7, 50, seed=3)
    assert w.shape == (50, 7)
    np.testing.assert_allclose(w.sum(1), 1.0)
    # counts are integers / N
    np.testing.assert_allclose(w * 7, np.round(w * 7))
    # every image its own group: exactly the per-image weights
    np.testing.assert_array_equal(boot_weights(7, 50, seed=3, groups=[f"img{i}" for i in range(7)]), w)


def test_boot_weights_groups_share_weight_and_expected_count_one() -> None:
    groups = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    n = len(groups)
    w = boot_weights(n, 20000, seed=0, groups=groups)
    np.testing.assert_allclose(w.sum(1), 1.0)
    for g in np.unique(groups):
        members = w[:, groups == g]
        assert np.all(members == members[:, :1]), f"images of group {g} got different weights"
    # direct check of the expectation with equal-size groups (row total is then constant)
    eq = np.repeat(np.arange(5), 3)
    we = boot_weights(15, 20000, seed=1, groups=eq)
    np.testing.assert_allclose((we * 15).mean(0), 1.0, atol=0.03)
    # the spread of a grouped bootstrap mean reflects the clusters: perfectly correlated within
    # a group, so the SD equals the per-group-mean bootstrap SD
    x = np.repeat(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 3)
    sd_group = boot_means(x, we).std()
    sd_image = boot_means(x, boot_weights(15, 20000, seed=1)).std()
    expected = np.std([0.0, 1, 2, 3, 4]) / np.sqrt(5)
    assert sd_group == pytest.approx(expected, rel=0.05)
    assert sd_image == pytest.approx(np.std(x) / np.sqrt(15), rel=0.05)


def test_group_codes_and_errors() -> None:
    np.testing.assert_array_equal(group_codes(["b", "a", "b", "c"], 4), [0, 1, 0, 2])
    assert group_codes(None, 3) is None
    with pytest.raises(ConfigError, match="3 labels but there are 4 images"):
        boot_weights(4, 10, 0, groups=["a", "b", "c"])
    with pytest.raises(ConfigError, match=">= 2 groups"):
        boot_weights(4, 10, 0, groups=["a"] * 4)


def test_boot_counts_unequal_groups_expected_one_and_weights_match() -> None:
    from brainprobe.analysis._common import boot_counts

    groups = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    counts = boot_counts(10, 20000, 4, groups=groups)
    np.testing.assert_allclose(counts.mean(0), 1.0, atol=0.03)
    np.testing.assert_array_equal(boot_weights(10, 20000, 4, groups=groups), counts / counts.sum(1, keepdims=True))


class _Linear(torch.nn.Module):
    """y = W vec(x): a linear response model with two ROIs."""

    def __init__(self, t: int = 6, side: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(t, 3 * side * side, generator=g) * torch.linspace(0.2, 3.0, t)[:, None])
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(t)], "roi": ["A"] * (t // 2) + ["B"] * (t - t // 2)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def test_probe_objective_equals_reported_readout_with_the_models_training_scale() -> None:
    from brainprobe.analysis._common import Readout, apply_readout, model_mean_sd, model_sd, response_change
    from brainprobe.encoding import set_response_scale
    from brainprobe.probes import Drive, Shift, probe

    torch.manual_seed(0)
    model = _Linear()
    train = torch.rand(40, 3, 8, 8)
    with torch.no_grad():
        set_response_scale(model, model(train))
    images = torch.rand(5, 3, 8, 8)
    res = probe(model, images, norm="l2", eps=[0.05, 0.2], objective=Shift(), steps=10, progress=False)
    assert res.settings["scale"].startswith("model response_sd")
    clean = model(images).detach()
    sd = model_sd(model, clean)
    np.testing.assert_allclose(sd, model(train).detach().double().std(0).numpy(), rtol=1e-5)
    change = response_change(model, images, res.delta)
    reported = apply_readout(Readout("shift", None), change, np.arange(6), sd)
    np.testing.assert_allclose(reported, res.objective_value.double().numpy(), rtol=2e-3)
    # the probed images' own SD is a different scale: the readout would not be what PGD maximised
    other = apply_readout(Readout("shift", None), change, np.arange(6), clean.double().std(0).numpy())
    assert not np.allclose(other, res.objective_value.double().numpy(), rtol=2e-3)
    # a target-set mean (Drive / Contrast unit): the SD of the ROI-mean prediction on the training images
    idx = np.flatnonzero(model.targets["roi"] == "B")
    expected = float(model(train).detach()[:, idx].double().mean(1).std())
    assert model_mean_sd(model, clean, idx) == pytest.approx(expected, rel=1e-5)
    drive = probe(model, images, norm="l2", eps=[0.1], objective=Drive("B"), steps=5, progress=False)
    assert drive.settings["scale"].startswith("model response_sd")
    # a plain module without response_sd: the probed images' SD, and the settings say so
    plain = _Linear(seed=1)
    res2 = probe(plain, images, norm="l2", eps=[0.1], objective=Shift(), steps=5, progress=False)
    assert res2.settings["scale"].startswith("SD of the clean responses to the probed images")
    np.testing.assert_allclose(model_sd(plain, plain(images).detach()), plain(images).detach().double().std(0).numpy())
