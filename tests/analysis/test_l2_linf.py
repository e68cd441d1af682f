"""l2 vs linf target-wise sensitivity: closed-form R for linear models and known perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from _analysis_helpers import LinearModel, Probe, mid_images
from brainprobe.analysis import l2_linf
from brainprobe.errors import ConfigError
from brainprobe.probes import probe

P = 3 * 8 * 8


def test_r_matches_closed_form() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(25, P)) * rng.uniform(0.2, 3, size=(25, 1))
    model = LinearModel(torch.tensor(w))
    x = mid_images(8)
    v = rng.normal(size=P) * np.linspace(0.1, 1, P)
    v /= np.linalg.norm(v)
    e2, ei = torch.tensor([0.1, 0.2]), torch.tensor([0.004])
    d2 = (e2.reshape(-1, 1) * torch.tensor(v, dtype=torch.float32)).reshape(2, 1, 3, 8, 8).expand(2, 8, 3, 8, 8)
    di = (ei.reshape(-1, 1) * torch.tensor(np.sign(v), dtype=torch.float32)).reshape(1, 1, 3, 8, 8).expand(1, 8, 3, 8, 8)
    ds = l2_linf({"m": model}, x, {"m": [Probe(d2.clone(), e2, "l2"), Probe(di.clone(), ei, "linf")]}, n_boot=200)
    sd = (x.flatten(1).double().numpy() @ w.T).std(0, ddof=1)
    s2 = np.abs(w @ v) / sd
    si = np.abs(w @ np.sign(v)) / sd
    expected = pearsonr(s2, si)[0]
    assert float(ds["r"].sel(model="m", l2_eps=0.1, linf_eps=0.004)) == pytest.approx(expected, abs=1e-4)
    assert float(ds["r"].sel(model="m", l2_eps=0.2, linf_eps=0.004)) == pytest.approx(expected, abs=1e-4)
    assert float(ds["spearman"].sel(model="m", l2_eps=0.1, linf_eps=0.004)) == pytest.approx(spearmanr(s2, si)[0], abs=1e-4)
    assert float(ds["r_model"].sel(model="m")) == pytest.approx(expected, abs=1e-4)
    np.testing.assert_allclose(ds["target_sensitivity_l2"].sel(model="m", l2_eps=0.1), 0.1 * s2, rtol=1e-3)
    assert 0.3 < expected < 0.95  # a non-trivial value


def test_with_real_shift_probes_and_bootstrap() -> None:
    rng = np.random.default_rng(1)
    # targets mix two pixel patterns; across targets, sensitivity ranks should mostly agree across norms
    basis = rng.normal(size=(2, P))
    mix = np.abs(rng.normal(size=(30, 2))) * [1.0, 0.2]
    model = LinearModel(torch.tensor(mix @ basis + 0.05 * rng.normal(size=(30, P))))
    x = mid_images(10, seed=4)
    prs = [probe(model, x, norm="l2", eps=[0.1], objective="shift", steps=20, progress=False),
           probe(model, x, norm="linf", eps=[0.005], objective="shift", steps=20, progress=False)]
    ds = l2_linf({"m": model}, x, {"m": prs}, n_boot=300)
    r = float(ds["r"].squeeze())
    s2 = ds["target_sensitivity_l2"].squeeze().values
    si = ds["target_sensitivity_linf"].squeeze().values
    assert r == pytest.approx(pearsonr(s2, si)[0], abs=1e-9)
    assert float(ds["r_ci_low"].squeeze()) <= r <= float(ds["r_ci_high"].squeeze())
    assert ds["r_model_boot"].sizes["boot"] == 300
    with pytest.raises(ConfigError, match="l2 and a linf"):
        l2_linf({"m": model}, x, {"m": prs[:1]})


def _noisy_profiles(rng: np.random.Generator, g: np.ndarray, h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image sensitivities (1 x N x T): log-normal image and image-by-target noise around g and g^1.5 h."""
    t = len(g)
    a = g * np.exp(0.3 * rng.normal(size=(n, 1)) + rng.normal(size=(n, t)))
    b = g**1.5 * h * np.exp(0.3 * rng.normal(size=(n, 1)) + rng.normal(size=(n, t)))
    return a[None], b[None]


def test_bca_coverage_of_the_corrected_agreement() -> None:
    """Noisy, non-linear case: the truth is r(E a, E b) across targets; the BCa interval covers it >= 90 %."""
    from brainprobe.analysis._bca import bca_interval, jackknife_weights
    from brainprobe.analysis._common import boot_weights, pearson
    from brainprobe.analysis._l2_linf import corrected_r, split_halves

    rng = np.random.default_rng(0)
    t, n, reps, n_boot = 30, 24, 200, 400
    g, h = np.exp(rng.normal(0, 0.5, t)), np.exp(rng.normal(0, 0.35, t))
    truth = float(pearson(g, g**1.5 * h))  # about 0.78: far from 1, so the test can fail
    assert 0.6 < truth < 0.9
    half, jack, uniform = split_halves(n), jackknife_weights(n), np.full((1, n), 1.0 / n)
    covered, contained, finite, raw = 0, 0, 0, []
    for rep in range(reps):
        a, b = _noisy_profiles(rng, g, h, n)

        def stat(w: np.ndarray) -> np.ndarray:
            return corrected_r(a, b, w, half)[0][:, 0, 0]

        value = stat(uniform)[0]
        lo, hi = bca_interval(value, stat(boot_weights(n, n_boot, rep)), stat(jack))
        covered += bool(lo <= truth <= hi)  # an undefined (NaN) estimate counts as a miss
        if np.isfinite(value):
            finite += 1
            contained += bool(lo <= value <= hi)
        raw.append(float(pearson(a[0].mean(0), b[0].mean(0))))
    assert covered / reps >= 0.9
    assert contained == finite >= 0.95 * reps  # every defined estimate lies inside its own interval
    assert np.mean(raw) < truth - 0.1  # the uncorrected r is attenuated: the correction matters


def test_bca_matches_scipy_for_a_mean() -> None:
    from scipy.stats import bootstrap

    from brainprobe.analysis._bca import bca_interval, jackknife_weights
    from brainprobe.analysis._common import boot_weights

    x = np.random.default_rng(3).exponential(size=30)
    w = boot_weights(30, 20000, 0)
    lo, hi = bca_interval(x.mean(), w @ x, jackknife_weights(30) @ x)
    ref = bootstrap((x,), np.mean, n_resamples=20000, method="BCa", random_state=1).confidence_interval
    assert lo == pytest.approx(ref.low, rel=0.03) and hi == pytest.approx(ref.high, rel=0.03)


def test_matched_budgets_and_reliability_on_real_probes() -> None:
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(2, P))
    model = LinearModel(torch.tensor(np.abs(rng.normal(size=(20, 2))) @ basis + 0.05 * rng.normal(size=(20, P))))
    x = mid_images(12, seed=5)
    prs = [probe(model, x, norm="l2", eps=[0.05, 0.2], objective="shift", steps=10, progress=False),
           probe(model, x, norm="linf", eps=[0.001, 0.004, 0.016], objective="shift", steps=10, progress=False)]
    ds = l2_linf({"m": model}, x, {"m": prs}, n_boot=200)
    # first-order effect: l2 eps e ~ linf eps e * ||w||_1 / ||w||_2; the matched linf budget is the closest in log effect
    eff2, effi = ds["effect_l2"].sel(model="m").values, ds["effect_linf"].sel(model="m").values
    for k, e in enumerate(ds["l2_eps"].values):
        best = ds["linf_eps"].values[np.argmin(np.abs(np.log(eff2[k]) - np.log(effi)))]
        assert float(ds["matched_linf_eps"].sel(model="m", l2_eps=e)) == best
    assert len(set(ds["matched_linf_eps"].sel(model="m").values)) == 2  # two budgets, two partners
    assert (ds["reliability_l2"] <= 1 + 1e-9).all() and (ds["reliability_l2"] > 0.5).all()
    lo, hi = float(ds["r_model_ci_low"].squeeze()), float(ds["r_model_ci_high"].squeeze())
    assert lo <= float(ds["r_model"].squeeze()) <= hi
    assert ds["r_model_jack"].sizes["jack"] == 12


def test_correction_ignores_image_noise_shared_by_the_two_norms() -> None:
    """Per-image noise common to both norms inflates r(mean l2, mean linf); the cross-half
    correction still recovers the true-score correlation (here 0.5) instead of exceeding 1."""
    from brainprobe.analysis._l2_linf import corrected_r

    rng = np.random.default_rng(0)
    n, t = 40, 300
    u, v = rng.standard_normal((2, t))
    ta, tb = u, 0.5 * u + np.sqrt(0.75) * v  # true profiles: r = 0.5
    shared = 3.0 * rng.standard_normal((n, t))  # image noise common to both norms
    a = (ta + shared + 0.5 * rng.standard_normal((n, t)))[None]
    b = (tb + shared + 0.5 * rng.standard_normal((n, t)))[None]
    half = np.arange(n) % 2 == 0
    rc, rel_a, rel_b = corrected_r(a, b, np.full((1, n), 1 / n), half)
    naive = np.corrcoef(a[0].mean(0), b[0].mean(0))[0, 1] / np.sqrt(rel_a[0, 0] * rel_b[0, 0])
    assert naive > 0.7  # the shared noise drives the naive correction far above the truth
    assert abs(float(rc[0, 0, 0]) - 0.5) < 0.12
