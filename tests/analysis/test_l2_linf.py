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
