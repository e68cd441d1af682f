"""Controversial probes: the engine's smooth-min value is recovered, and a brain equal to one model recovers it."""

from __future__ import annotations

import numpy as np
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
    assert int(ds["n_controversial"].sel(model_a="A", model_b="B", **big)) == 32  # both orientations, 16 images each
    assert "predictivity_fraction_significant" in ds
    # the margin grows with the budget
    assert (ds["controversiality"].sel(eps=0.3) > ds["controversiality"].sel(eps=0.05)).sum() == 6
