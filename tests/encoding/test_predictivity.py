"""Predictivity: Pearson r, noise-ceiling normalisation, ROI medians and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from brainprobe.encoding.predictivity import _bootstrap_r, compute_predictivity, normalise, pearson_r
from brainprobe.errors import DataError


def test_pearson_r_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    b[:, 1] += 2 * a[:, 1]
    expected = [pearsonr(a[:, t], b[:, t])[0] for t in range(4)]
    np.testing.assert_allclose(pearson_r(a, b), expected, rtol=1e-12)
    b[:, 2] = 1.0
    assert np.isnan(pearson_r(a, b)[2])


def test_bootstrap_counts_equal_resampled_rows():
    """The vectorised bootstrap equals recomputing r on explicitly resampled rows."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    boot = _bootstrap_r(a, b, 5, np.random.default_rng(7))
    counts = np.random.default_rng(7).multinomial(30, np.full(30, 1 / 30), size=5)
    for k in range(5):
        idx = np.repeat(np.arange(30), counts[k])
        np.testing.assert_allclose(boot[k], pearson_r(a[idx], b[idx]), rtol=1e-9)


def _simulated(n_images: int, nc: np.ndarray, seed: int = 0):
    """Measured = signal + noise with var(signal)/var(measured) = NC; a perfect model predicts the signal."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_images, len(nc)))
    noise = rng.normal(size=(n_images, len(nc))) * np.sqrt((1 - nc) / nc)
    return signal + noise, signal


def test_perfect_model_reaches_normalised_r_of_one():
    nc = np.repeat([0.3, 0.6, 0.9], 20)
    measured, signal = _simulated(4000, nc)
    targets = pd.DataFrame({"target": [f"t{i}" for i in range(60)], "roi": np.repeat(["a", "b", "c"], 20)})
    ds = compute_predictivity(measured, signal, targets, nc, n_boot=200, seed=0)
    # analytic: r = sqrt(NC) for a perfect model, so r / sqrt(NC) = 1 and r^2 / NC = 1
    np.testing.assert_allclose(ds["r"].values, np.sqrt(nc), atol=0.03)
    np.testing.assert_allclose(ds["roi_r_normalised"].values, 1.0, atol=0.02)
    np.testing.assert_allclose(ds["roi_explained_variance"].values, 1.0, atol=0.04)
    low, high = ds["roi_r_normalised_ci"].sel(bound="low").values, ds["roi_r_normalised_ci"].sel(bound="high").values
    assert (low < 1.0).all() and (high > 1.0).all() and (high - low < 0.05).all()
    assert list(ds["roi"].values) == ["a", "b", "c"] and ds["roi_n_targets"].values.tolist() == [20, 20, 20]


def test_ci_coverage_and_determinism():
    """95% intervals from 60 test images cover the true ROI median in most of 40 repeats."""
    nc = np.full(15, 0.5)
    targets = pd.DataFrame({"target": [f"t{i}" for i in range(15)], "roi": "v1"})
    covered = 0
    for rep in range(40):
        measured, signal = _simulated(60, nc, seed=100 + rep)
        ds = compute_predictivity(measured, signal, targets, nc, n_boot=300, seed=rep)
        low, high = ds["roi_r_normalised_ci"].values[0]
        covered += low <= 1.0 <= high
    assert covered >= 32  # nominal 38 of 40; percentile bootstrap of a median is a bit narrow
    measured, signal = _simulated(60, nc)
    a = compute_predictivity(measured, signal, targets, nc, n_boot=100, seed=3)
    b = compute_predictivity(measured, signal, targets, nc, n_boot=100, seed=3)
    c = compute_predictivity(measured, signal, targets, nc, n_boot=100, seed=4)
    np.testing.assert_array_equal(a["roi_r_ci"].values, b["roi_r_ci"].values)
    assert not np.array_equal(a["roi_r_ci"].values, c["roi_r_ci"].values)


def test_normalise_edge_cases():
    r = np.array([0.5, -0.2, 0.4, 0.3])
    nc = np.array([0.25, 0.5, 0.0, np.nan])
    rn, ev = normalise(r, nc)
    np.testing.assert_allclose(rn[:2], [1.0, -0.2 / np.sqrt(0.5)])
    np.testing.assert_allclose(ev[:2], [1.0, 0.0])  # negative r explains nothing
    assert np.isnan(rn[2:]).all() and np.isnan(ev[2:]).all()


def test_bad_inputs():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(10, 2))
    targets = pd.DataFrame({"target": ["a", "b"], "roi": "x"})
    with pytest.raises(DataError, match="fraction of variance"):
        compute_predictivity(y, y, targets, np.array([40.0, 50.0]))
    with pytest.raises(DataError, match="1 rows for 2 response columns"):
        compute_predictivity(y, y, targets.iloc[:1], np.array([0.4, 0.5]))
    with pytest.raises(DataError, match="at least 3 test images"):
        compute_predictivity(y[:2], y[:2], targets, None)
    with pytest.warns(UserWarning, match="no noise ceiling"):
        ds = compute_predictivity(y, y, targets, None, n_boot=10)
    assert np.isnan(ds["r_normalised"].values).all() and np.allclose(ds["r"].values, 1.0)
