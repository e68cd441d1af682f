"""Discriminability: calibrated under the null (>= 200 null pairs), powerful when models differ, same images."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from brainprobe.analysis import discriminability, predictivity_scores
from brainprobe.analysis._common import holm
from brainprobe.errors import ConfigError


def _scores(values: np.ndarray) -> xr.DataArray:
    m, n = values.shape
    return xr.DataArray(values, dims=("model", "image"), coords={"model": [f"m{i}" for i in range(m)], "image": np.arange(n)})


def test_holm_matches_hand_computation() -> None:
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])


def test_null_models_false_positive_rate_at_most_alpha() -> None:
    """21 models that differ only by noise = 210 null pairs per data set; 25 data sets (5250 pairs)."""
    rng = np.random.default_rng(0)
    m, n = 21, 60
    raw, family = [], []
    for rep in range(25):
        image_effect = 2.0 * rng.normal(size=n)  # shared by all models: paired test removes it
        noise = rng.standard_t(5, size=(m, n)) * rng.uniform(0.5, 2.0, size=n)  # heavy tails, heteroscedastic
        ds = discriminability({"s": _scores(image_effect + noise)}, n_boot=1000, seed=rep)
        iu = np.triu_indices(m, 1)
        raw.append(ds["p_value"].values[0][iu] < 0.05)
        family.append(float(ds["fraction_significant"][0]))
        assert ds.attrs["n_pairs"] == 210
    raw_rate = np.mean(raw)
    # uncorrected per-pair rate is nominal: 0.043 here (0.05 +- ~0.004 over seeds, pairs share models),
    # so not trivially conservative; the bound leaves one SE of slack above alpha
    assert 0.03 <= raw_rate <= 0.055, raw_rate
    # Holm: the reported fraction of separated null pairs is at most alpha (family-wise)
    assert np.mean(family) <= 0.05 and np.mean([f > 0 for f in family]) <= 0.2


def test_separates_models_that_differ_and_variance_ratio() -> None:
    rng = np.random.default_rng(1)
    m, n = 6, 80
    image_effect = rng.normal(size=n)
    offsets = np.arange(m)[:, None] * 0.5  # well separated means
    ds = discriminability({"good": _scores(image_effect + offsets + 0.3 * rng.normal(size=(m, n))),
                           "null": _scores(image_effect + 0.3 * rng.normal(size=(m, n)))}, n_boot=500)
    assert float(ds["fraction_significant"].sel(score="good")) == 1.0
    assert float(ds["fraction_significant"].sel(score="null")) <= 0.1
    assert float(ds["variance_ratio"].sel(score="good")) > 50
    assert float(ds["variance_ratio"].sel(score="null")) == pytest.approx(m / (m - 1), rel=0.7)
    np.testing.assert_allclose(ds["diff"].sel(score="good", model_a="m3", model_b="m1"), 1.0, atol=0.15)
    assert (ds["ci_low"] <= ds["mean"]).all() and (ds["mean"] <= ds["ci_high"]).all()


def test_scores_must_share_images_and_models() -> None:
    a = _scores(np.zeros((3, 10)) + np.arange(10))
    b = a.assign_coords(image=np.arange(10) + 100)
    with pytest.raises(ConfigError, match="same images"):
        discriminability({"predictivity": a, "sensitivity": b})
    with pytest.raises(ConfigError, match="same models"):
        discriminability({"predictivity": a, "sensitivity": a.assign_coords(model=["x", "y", "z"])})


def test_nonfinite_images_are_dropped_from_all_scores() -> None:
    rng = np.random.default_rng(2)
    a = _scores(rng.normal(size=(3, 20)))
    b = a.copy()
    b[0, 3] = np.inf  # a minimal eps that was never reached
    with pytest.warns(UserWarning, match="left out 1"):
        ds = discriminability({"a": a, "b": b}, n_boot=100)
    assert ds.attrs["n_images"] == 19


def test_predictivity_scores_are_per_image_pattern_correlations() -> None:
    rng = np.random.default_rng(3)
    resp = rng.normal(size=(12, 30)) * rng.uniform(1, 5, 30) + rng.normal(size=30) * 10
    pred = resp + rng.normal(size=resp.shape)
    da = predictivity_scores({"good": pred, "bad": rng.normal(size=resp.shape)}, resp)
    z = lambda a: (a - resp.mean(0)) / resp.std(0, ddof=1)  # noqa: E731
    assert float(da.sel(model="good", image=4)) == pytest.approx(np.corrcoef(z(pred)[4], z(resp)[4])[0, 1])
    assert float(da.sel(model="good").mean()) > 0.5 > abs(float(da.sel(model="bad").mean()))
    mse = predictivity_scores({"good": pred}, resp, kind="neg_mse")
    assert float(mse.sel(model="good", image=0)) == pytest.approx(-np.mean((z(pred)[0] - z(resp)[0]) ** 2))


def test_scores_share_the_bootstrap_resamples() -> None:
    """Every score is resampled with the same images: identical matrices give identical answers."""
    rng = np.random.default_rng(4)
    s = _scores(rng.normal(size=(5, 30)) + np.arange(5)[:, None] * 0.3)
    ds = discriminability({"predictivity": s, "sensitivity": s.copy()}, n_boot=300, seed=7)
    np.testing.assert_array_equal(ds["p_value"].sel(score="predictivity"), ds["p_value"].sel(score="sensitivity"))
    np.testing.assert_array_equal(ds["ci_low"].sel(score="predictivity"), ds["ci_low"].sel(score="sensitivity"))
    assert ds.attrs["n_images"] == 30
    # a rescaled copy (another unit) separates exactly the same pairs: the test is scale-free
    ds2 = discriminability({"predictivity": s, "sensitivity": 1000 * s}, n_boot=300, seed=7)
    np.testing.assert_allclose(ds2["p_value"].sel(score="sensitivity"), ds2["p_value"].sel(score="predictivity"))
