"""Recovery, confusion, controversial shares and power on constructed scores (known answers, no models)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from brainprobe.validation.config import ValidationConfig
from brainprobe.validation.power import images_needed, power_analysis, power_curve
from brainprobe.validation.recovery import Instance, controversial_recovery, format_recovery, recovery

CANDS = ["net_a", "net_b", "net_c"]


def _scores(own: str, winner: str, outcome: np.ndarray, n: int = 12, seed: int = 0) -> xr.Dataset:
    """Per-image scores where ``winner`` scores 1 above the others (plus noise), and given controversial outcomes."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 0.1, (len(CANDS), n))
    s[CANDS.index(winner)] += 1.0
    others = [c for c in CANDS if c != own]
    groups = np.repeat([f"p{i}" for i in range(n // 2)], 2)
    return xr.Dataset(
        {"predictivity": (("candidate", "test_image"), s), "sensitivity": (("candidate", "image"), s),
         "controversial": (("other", "eps", "image"), outcome),
         "controversial_z": (("other", "eps", "image"), np.where(np.isfinite(outcome), outcome * 2.0, np.nan))},
        coords={"candidate": CANDS, "image": np.arange(n), "test_image": np.arange(n), "group": ("image", groups),
                "test_group": ("test_image", groups), "other": others, "eps": [0.5, 2.0]},
        attrs={"own": own, "noise_unit": 0.5},
    )


def _outcome(p_own: float, n: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.where(rng.random((2, 2, n)) < p_own, 1.0, -1.0)
    out[:, :, :2] = np.nan  # not controversial
    return out


def test_recovery_counts_own_network_first_per_form_group():
    insts = [
        Instance("net_a:matched", "matched", 0, "ridge", "net_a", _scores("net_a", "net_a", _outcome(1.0))),
        Instance("net_a:matched", "matched", 1, "ridge", "net_a", _scores("net_a", "net_a", _outcome(1.0), seed=1)),
        Instance("net_b:divnorm", "divnorm", 0, "ridge", "net_b", _scores("net_b", "net_c", _outcome(0.0))),
        Instance("net_b:divnorm", "divnorm", 1, "ridge", "net_b", _scores("net_b", "net_b", _outcome(0.0), seed=1)),
    ]
    rec, conf = recovery(insts, ["predictivity", "sensitivity", "controversial"], n_boot=100, seed=0)
    acc = rec["accuracy"].sel(readout="ridge", criterion="predictivity")
    assert float(acc.sel(brain="matched")) == 1.0
    assert float(acc.sel(brain="mismatched")) == 0.5
    assert float(acc.sel(brain="all")) == 0.75
    assert int(rec["n_brains"].sel(readout="ridge", criterion="predictivity", brain="all")) == 4
    lo, hi = (float(rec[k].sel(readout="ridge", criterion="predictivity", brain="mismatched")) for k in ("ci_low", "ci_high"))
    assert lo <= 0.5 <= hi and lo < hi  # seeds resampled: one hit, one miss
    # the brain always sides with its own network in the matched family, never in the mismatched one
    c = rec["accuracy"].sel(readout="ridge", criterion="controversial")
    assert float(c.sel(brain="matched")) == 1.0 and float(c.sel(brain="mismatched")) == 0.0
    share = conf["share"].sel(readout="ridge", criterion="predictivity", brain="net_b:divnorm")
    assert share.sum() == pytest.approx(1.0)
    assert float(share.sel(candidate="net_c")) == pytest.approx(0.5, abs=0.1)
    assert "matched" in format_recovery(rec)


def test_controversial_share_pools_seeds_and_reaches_the_bar():
    insts = [Instance("net_a:matched", "matched", s, "ridge", "net_a", _scores("net_a", "net_a", _outcome(0.9, seed=s)))
             for s in range(2)]
    out = _outcome(0.9, seed=0)
    cont = controversial_recovery(insts, n_boot=200, seed=0)
    n_dec = int(cont["n_decided"].sel(readout="ridge", brain="net_a:matched", other="net_b", eps=0.5))
    assert n_dec == 20  # 2 seeds x 10 controversial images
    expect = ((out[0, 0] == 1).sum() + (_outcome(0.9, seed=1)[0, 0] == 1).sum()) / 20
    assert float(cont["share"].sel(readout="ridge", brain="net_a:matched", other="net_b", eps=0.5)) == pytest.approx(expect)
    lo = float(cont["ci_low"].sel(readout="ridge", brain="net_a:matched", other="net_b", eps=0.5))
    assert lo <= expect <= float(cont["ci_high"].sel(readout="ridge", brain="net_a:matched", other="net_b", eps=0.5))
    worst = float(cont["worst_pair_best_share"].sel(readout="ridge", brain="net_a:matched"))
    assert worst == pytest.approx(float(cont["best_share"].sel(readout="ridge", brain="net_a:matched").min()))
    assert int(cont["reaches_75"].sel(readout="ridge", brain="net_a:matched")) == int(worst >= 0.75)


def test_power_grows_with_images_repeats_and_noise_ceiling():
    signal = np.full(50, 0.5)
    p = power_curve(signal, 1.0, noise_ceilings=[0.1, 0.6], repeats=[1, 8], n_images=[4, 16, 64, 256], n_sim=400)
    assert p.shape == (2, 2, 4)
    assert p[1, 1, -1] > 0.95 and p[0, 0, 0] < 0.3
    assert np.all(np.diff(p[0, 0]) > -0.1)  # grows with images (up to simulation noise)
    assert p[0, 1, 1] > p[0, 0, 1] and p[1, 0, 1] > p[0, 0, 1]
    # known answer: noiseless, constant positive signal is always decided (infinite t)
    assert power_curve(np.full(10, 1.0), 0.0, noise_ceilings=[0.5], repeats=[1], n_images=[4])[0, 0, 0] == 1.0
    # a signal of the wrong sign never decides for the own network
    assert power_curve(np.full(10, -1.0), 0.1, noise_ceilings=[0.5], repeats=[3], n_images=[16])[0, 0, 0] == 0.0
    assert np.array_equal(images_needed(np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3]]), [4, 8, 16], 0.8), [16, np.nan],
                          equal_nan=True)


def test_power_analysis_uses_the_best_budget():
    cfg = ValidationConfig(brains=[{"backbone": "mobilenet_v2"}], candidates=["mobilenet_v2", "vgg19"],
                           power={"n_images": [4, 16], "repeats": [3], "noise_ceilings": [0.5], "n_sim": 50})
    out = _outcome(1.0)
    out[:, 0] = -1.0  # eps 0.5: the brain always sides with the other network
    insts = [Instance("net_a:matched", "matched", 0, "ridge", "net_a", _scores("net_a", "net_a", out))]
    pw = power_analysis(insts, cfg)
    assert float(pw["eps"].sel(readout="ridge", brain="net_a:matched", other="net_b")) == 2.0
    assert float(pw["mean_signal"].sel(readout="ridge", brain="net_a:matched", other="net_b")) == pytest.approx(2.0)
