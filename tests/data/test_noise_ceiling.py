"""Noise ceilings checked against simulated data with known signal and noise."""

from __future__ import annotations

import numpy as np
import pytest

from brainprobe.data.noise_ceiling import (
    nc_from_ncsnr,
    ncsnr,
    noise_ceiling_ncsnr,
    noise_sd_for_ceiling,
    split_half_reliability,
)

N_IMAGES, N_REPEATS, N_TARGETS = 1000, 3, 1000


def simulate(true_nc: np.ndarray, n_images: int, repeats: int, seed: int) -> np.ndarray:
    """Trials N x R x T: skewed (gamma) signals plus Gaussian noise giving each target NC = true_nc.

    The true NC is defined on these images: the signal variance is measured across them.
    """
    rng = np.random.default_rng(seed)
    signal = rng.gamma(2.0, 1.0, size=(n_images, true_nc.size)) * rng.uniform(0.5, 3.0, size=true_nc.size)
    sd = noise_sd_for_ceiling(signal.var(axis=0), true_nc, repeats)
    return signal[:, None, :] + rng.standard_normal((n_images, repeats, true_nc.size)) * sd


def ncsnr_spread(lo: float, hi: float, n: int, repeats: int) -> np.ndarray:
    """True ceilings spanning [lo, hi], evenly spaced in NSD's NCSNR (signal sd / noise sd)."""
    bounds = [np.sqrt(nc / ((1 - nc) * repeats)) for nc in (lo, hi)]
    return nc_from_ncsnr(np.linspace(*bounds, n), repeats)


def sampling_sd(nc: np.ndarray, n_images: int, repeats: int) -> np.ndarray:
    """Large-sample sd of any NC estimate from n_images x repeats (delta method, one-way ANOVA)."""
    return (1 - nc) * np.sqrt(2 * (1 - nc) * (1 + nc) / n_images + 2 / (n_images * (repeats - 1)))


@pytest.mark.parametrize("estimator", ["ncsnr", "split_half"])
def test_must_show_ceiling_accuracy(estimator):
    """1000 images, 3 repeats, 1000 targets spanning true ceilings 0.1-0.8."""
    true = ncsnr_spread(0.1, 0.8, N_TARGETS, N_REPEATS)
    assert true.min() == pytest.approx(0.1) and true.max() == pytest.approx(0.8)
    trials = simulate(true, N_IMAGES, N_REPEATS, seed=0)
    est = noise_ceiling_ncsnr(trials) if estimator == "ncsnr" else split_half_reliability(trials)
    err = np.abs(est - true)
    assert np.median(err) <= 0.02
    assert np.mean(err <= 0.05) >= 0.90


def test_estimator_is_at_the_sampling_limit():
    """With true ceilings evenly spaced in NC, errors match the analytic sampling sd (no extra error).

    This design (1000 images, 3 repeats) cannot give 90 % of targets within 0.05 when NC is
    spread evenly over 0.1-0.8: the sampling sd at NC = 0.1 is 0.049, so the expected share is
    88 %. The estimate is unbiased and its error is what the data allow.
    """
    true = np.linspace(0.1, 0.8, N_TARGETS)
    trials = simulate(true, N_IMAGES, N_REPEATS, seed=1)
    est = noise_ceiling_ncsnr(trials)
    z = (est - true) / sampling_sd(true, N_IMAGES, N_REPEATS)
    assert abs(z.mean()) < 0.15  # unbiased
    assert 0.85 < z.std() < 1.15  # efficient
    assert np.median(np.abs(est - true)) <= 0.02


@pytest.mark.parametrize("repeats", [2, 3, 4, 5])
def test_split_half_handles_odd_repeats(repeats):
    true = np.linspace(0.15, 0.75, 300)
    trials = simulate(true, 1500, repeats, seed=repeats)
    est = split_half_reliability(trials)
    assert np.median(np.abs(est - true)) < 0.02
    assert abs(np.mean(est - true)) < 0.01


def test_split_half_odd_repeats_not_plain_spearman_brown():
    """Plain 2r/(1+r) on unequal halves (1 vs 2 trials) would be biased; the exact form is not."""
    true = np.full(400, 0.5)
    trials = simulate(true, 2000, 3, seed=7)
    est = split_half_reliability(trials)
    assert abs(est.mean() - 0.5) < 0.005
    a = trials[:, :1].mean(axis=1)
    b = trials[:, 1:].mean(axis=1)
    r = np.array([np.corrcoef(a[:, t], b[:, t])[0, 1] for t in range(400)])
    naive = 2 * r / (1 + r)
    # analytic: k = 1/3, r = k / sqrt((k + 1)(k + 1/2)) = 0.3162 -> 2r/(1+r) = 0.4804, biased low
    assert naive.mean() == pytest.approx(0.4804, abs=0.005)


def test_ncsnr_ceiling_for_other_n_avg():
    true3 = np.linspace(0.2, 0.7, 200)
    trials = simulate(true3, 2000, 3, seed=3)
    snr = ncsnr(trials)
    true1 = nc_from_ncsnr(np.sqrt(true3 / ((1 - true3) * 3)), 1)  # same voxels, single trials
    assert np.median(np.abs(noise_ceiling_ncsnr(trials, n_avg=1) - true1)) < 0.02
    np.testing.assert_allclose(nc_from_ncsnr(snr, 3), noise_ceiling_ncsnr(trials), atol=1e-12)


def test_ncsnr_unequal_repeats_matches_nsd_formula():
    """Images with 1, 2 or 3 repeats (NaN-padded): NC uses n_eff = 1 / mean(1/n_i) as NSD does."""
    true_snr = np.full(300, 0.6)
    rng = np.random.default_rng(5)
    n_img = 3000
    signal = rng.normal(size=(n_img, 300))
    signal = (signal - signal.mean(0)) / signal.std(0)
    noise_sd = 1 / true_snr
    trials = signal[:, None, :] + rng.standard_normal((n_img, 3, 300)) * noise_sd
    counts = rng.choice([1, 2, 3], size=n_img, p=[0.2, 0.3, 0.5])
    for i, c in enumerate(counts):
        trials[i, c:] = np.nan
    a, b, c = (counts == 3).sum(), (counts == 2).sum(), (counts == 1).sum()
    expected = 0.36 / (0.36 + (a / 3 + b / 2 + c / 1) / (a + b + c))
    est = noise_ceiling_ncsnr(trials)
    assert abs(np.median(est) - expected) < 0.02


def test_no_signal_gives_zero_and_input_checks():
    rng = np.random.default_rng(0)
    pure_noise = rng.normal(size=(500, 3, 50))
    assert np.median(noise_ceiling_ncsnr(pure_noise)) < 0.05
    assert np.median(split_half_reliability(pure_noise)) < 0.05
    with pytest.raises(ValueError, match="at least 2 repeats"):
        noise_ceiling_ncsnr(rng.normal(size=(10, 1, 3)))
    with pytest.raises(ValueError, match="N x R x T"):
        ncsnr(rng.normal(size=(10, 3)))
