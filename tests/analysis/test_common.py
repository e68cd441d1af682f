"""Tests of the shared bootstrap and readout helpers (brainprobe/analysis/_common.py)."""

from __future__ import annotations

import numpy as np
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
