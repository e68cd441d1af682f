"""Controversial probes: the engine's smooth-min value is recovered, and a brain equal to one model recovers it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _analysis_helpers import LinearModel
from brainprobe.analysis import controversial, predictivity_scores
from brainprobe.probes import Contrast, probe

P = 3 * 8 * 8


def _models() -> dict[str, LinearModel]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, P, generator=g)
    return {name: LinearModel(base + 0.8 * torch.randn(2, P, generator=g)) for name in ("A", "B", "C")}


def _images(n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (0.3 + 0.4 * torch.rand(n, 3, 8, 8, generator=g)).float()


def _contrast_probes(models, x, eps):  # type: ignore[no-untyped-def]
    return {(a, b): probe(None, x, norm="l2", eps=eps, objective=Contrast(models[a], models[b]), progress=False)
            for a in models for b in models if a != b}


def test_brain_equal_to_a_model_recovers_it() -> None:
    models = _models()
    x = _images()
    eps = [0.05, 0.3]
    probes = _contrast_probes(models, x, eps)
    brain = LinearModel(2.0 * models["B"].weight + 0.1)  # B up to scale and offset
    resp = brain(x).detach().numpy()
    pred = predictivity_scores({k: m(x).detach().numpy() for k, m in models.items()}, resp)
    ds = controversial(models, x, probes, brain=brain, predictivity=pred, n_boot=100)
    # the margin we compute equals the engine's smooth-min objective value (same definition)
    np.testing.assert_allclose(ds["margin"].sel(model_a="A", model_b="C", norm="l2").values,
                               probes[("A", "C")].objective_value.double().numpy(), rtol=1e-3, atol=1e-4)
    big = dict(norm="l2", eps=0.3)
    assert float(ds["fraction_controversial"].sel(model_a="A", model_b="B", **big)) == 1.0
    rec = ds["recovery"].sel(**big)
    assert float(rec.sel(model_a="B", model_b="A")) == 1.0 and float(rec.sel(model_a="B", model_b="C")) == 1.0
    assert float(rec.sel(model_a="A", model_b="B")) == 0.0
    np.testing.assert_allclose(rec + rec.transpose("model_b", "model_a", ...).values, np.where(np.eye(3), np.nan, 1.0))
    assert bool(ds["decided"].sel(model_a="B", model_b="A", **big))
    assert int(ds["n_controversial"].sel(model_a="A", model_b="B", **big)) == 16  # each image once per pair
    assert "predictivity_fraction_significant" in ds
    # the margin grows with the budget
    assert (ds["controversiality"].sel(eps=0.3) > ds["controversiality"].sel(eps=0.05)).sum() == 6


def test_recovery_counts_each_image_once_above_the_trial_noise() -> None:
    """Constructed margins and brain changes for 3 models, 10 images: the counts are known by hand."""
    from brainprobe.analysis._controversial import count_recovery

    m, n = 3, 10
    margin = np.full((m, m, 1, 1, n), -1.0)
    brain = np.zeros((m, m, 1, 1, n))
    # pair (0, 1): images 0-7 controversial in orientation (0, 1) with margin 2, and in (1, 0) with margin 1
    margin[0, 1, ..., :8], margin[1, 0, ..., :8] = 2.0, 1.0
    brain[0, 1, ..., :6] = 0.5    # 6 images: the brain rises under (0, 1) probes -> follows model 0
    brain[0, 1, ..., 6] = -0.5    # 1 image: falls -> follows model 1
    brain[0, 1, ..., 7] = 0.05    # 1 image: inside the noise -> undecided
    brain[1, 0, ..., :8] = 0.5    # the weaker orientation is ignored (it would say "follows 1" 8 times)
    # pair (0, 2): only the (2, 0) orientation is controversial, on images 0-9; the brain falls under it -> follows 0
    margin[2, 0] = 0.5
    brain[2, 0] = -0.3
    out = count_recovery(margin, brain, threshold=0.1)
    assert out["n_controversial"][0, 1, 0, 0] == 8 and out["n_controversial"][1, 0, 0, 0] == 8
    assert (out["n_follow_a"][0, 1, 0, 0], out["n_follow_b"][0, 1, 0, 0], out["n_undecided"][0, 1, 0, 0]) == (6, 1, 1)
    assert (out["n_follow_a"][1, 0, 0, 0], out["n_follow_b"][1, 0, 0, 0]) == (1, 6)
    assert out["recovery"][0, 1, 0, 0] == pytest.approx(6 / 7)
    assert (out["n_follow_a"][0, 2, 0, 0], out["n_follow_b"][0, 2, 0, 0]) == (10, 0)
    assert out["n_controversial"][1, 2, 0, 0] == 0 and np.isnan(out["recovery"][1, 2, 0, 0])
    # binomial tests: 6 of 7 -> p = 0.125; 10 of 10 -> p = 0.00195; Holm over the 2 tested pairs
    assert out["p_value"][0, 1, 0, 0] == pytest.approx(0.125)
    assert out["p_holm"][0, 2, 0, 0] == pytest.approx(2 * 2 * 0.5**10)
    assert out["p_holm"][0, 1, 0, 0] == pytest.approx(0.125)
    assert out["decided"][0, 2, 0, 0] and not out["decided"][0, 1, 0, 0]
    assert out["fraction_decided"][0, 0] == pytest.approx(0.5)
    # a larger trial noise leaves the 0.3 changes undecided
    loud = count_recovery(margin, brain, threshold=0.4)
    assert loud["n_undecided"][0, 2, 0, 0] == 10 and loud["n_follow_a"][0, 1, 0, 0] == 6


def test_noise_threshold_from_the_noise_ceiling() -> None:
    """sd of the R-trial mean = s sqrt((1 - NC) / NC); for the target-set mean sqrt(sum s_t^2 (1-NC)/NC) / K."""
    from brainprobe.analysis._controversial import _noise_of_mean

    brain = LinearModel(torch.eye(4, 3 * 8 * 8))
    clean = np.random.default_rng(0).normal(size=(20, 4)) * [1.0, 2.0, 1.0, 2.0]
    s = clean.std(0, ddof=1)
    nc = np.array([0.5, 0.8, 0.5, 0.8])
    got = _noise_of_mean(brain, clean, np.arange(4), nc, unit=2.0)
    assert got == pytest.approx(np.sqrt((s**2 * (1 - nc) / nc).sum()) / 4 / 2.0)
    assert np.isnan(_noise_of_mean(brain, clean, np.arange(4), None, 1.0))
    from brainprobe.errors import ConfigError

    with pytest.raises(ConfigError, match="fraction in"):
        _noise_of_mean(brain, clean, np.arange(4), [0.5, np.nan, 0.5, 0.5], 1.0)
