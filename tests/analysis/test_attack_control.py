"""Attack-artefact control: ensemble and input-diversity probes against plain PGD on linear models with known transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _analysis_helpers import LinearModel, mid_images
from brainprobe.analysis._attack_control import attack_control
from brainprobe.errors import ConfigError
from brainprobe.probes import probe

SIZE = 6
P = 3 * SIZE * SIZE


def _unit(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(P, P)))
    return q.T


def _model(w: np.ndarray, arch: str, training: str = "standard") -> LinearModel:
    m = LinearModel(torch.tensor(w[None]), training=training, architecture=arch)
    m.register_buffer("response_sd", torch.ones(1))  # one scale for every model: ensembles weigh them equally
    m.mean_response_sd = {"__all__": 1.0, "all": 1.0}
    return m


def test_ensemble_probe_transfers_as_predicted_and_plain_as_cosine() -> None:
    q = _unit(0)
    w_a, w_b = q[0], q[1]
    w_c = (q[0] + q[1]) / np.sqrt(2)  # C reads exactly what the A+B ensemble attacks
    models = {"A": _model(w_a, "a"), "B": _model(w_b, "b"), "C": _model(w_c, "c")}
    brain = _model(w_c, "vgg")
    x = mid_images(4, size=SIZE)
    eps = [0.02, 0.05]
    probes = {k: probe(m, x, norm="l2", eps=eps, objective="drive", steps=3, progress=False) for k, m in models.items()}
    ds = attack_control(models, x, probes, objective="drive", brain=brain, brain_architecture="vgg", steps=3,
                        input_diversity=0.5, n_boot=100, n_images=None)
    t = ds["transfer"]
    # plain l2 probes of linear models: transfer = cos(w_A, w_C) (box not binding)
    assert float(t.sel(variant="plain", source_model="A", target_model="C").mean()) == pytest.approx(1 / np.sqrt(2), abs=1e-3)
    assert float(t.sel(variant="plain", source_model="A", target_model="B").mean()) == pytest.approx(0.0, abs=1e-3)
    # the ensemble of the standard models not of C's architecture (A, B) moves C exactly along its own axis
    assert float(t.sel(variant="ensemble", source_model="A", target_model="C").mean()) == pytest.approx(1.0, abs=1e-3)
    # receivers of an ensemble member's architecture are never tested with that ensemble
    assert np.isnan(t.sel(variant="ensemble", source_model="A", target_model="A")).all()
    assert "A -> C" in ds.attrs["ensembles"]
    # the stronger attack raises the mean transfer over the tested pairs, compared on the same pairs
    assert float(ds["cross_transfer"].sel(variant="ensemble")) > float(ds["plain_same_pairs"].sel(variant="ensemble"))
    for v in ds["variant"].values:
        lo, hi = float(ds["cross_transfer_ci_low"].sel(variant=v)), float(ds["cross_transfer_ci_high"].sel(variant=v))
        assert lo <= float(ds["cross_transfer"].sel(variant=v)) <= hi
    # the brain (reads w_C): the all-standard ensemble moves it more than plain A / B probes
    assert float(ds["brain_change"].sel(variant="ensemble")) > float(ds["brain_change"].sel(variant="plain"))
    assert np.isfinite(ds["transfer"].sel(variant="input_diversity", source_model="A", target_model="C")).all()
    # a subset of the budgets gives the same values at those budgets (plain and ensemble are deterministic)
    one = attack_control(models, x, probes, objective="drive", brain=brain, brain_architecture="vgg", steps=3,
                         input_diversity=0.0, n_boot=100, n_images=None, budgets=[0.05])
    assert one["eps"].values.tolist() == [0.05]
    for v in ("plain", "ensemble"):
        np.testing.assert_allclose(one["change"].sel(variant=v).values,
                                   ds["change"].sel(variant=v, eps=[0.05]).values, rtol=1e-5, equal_nan=True)
    with pytest.raises(ConfigError, match="none of the budgets"):
        attack_control(models, x, probes, objective="drive", budgets=[0.3])


def test_two_architectures_have_no_ensemble_pairs_and_no_standard_model_is_an_error() -> None:
    q = _unit(1)
    models = {"A": _model(q[0], "a"), "B": _model(q[1], "b"), "R": _model(q[2], "a", training="robustified")}
    x = mid_images(3, size=SIZE)
    probes = {k: probe(m, x, norm="l2", eps=[0.05], objective="drive", steps=2, progress=False) for k, m in models.items()}
    ds = attack_control(models, x, probes, objective="drive", steps=2, input_diversity=0.0, n_boot=20)
    assert list(ds["variant"].values) == ["plain", "ensemble"]
    assert np.isnan(float(ds["cross_transfer"].sel(variant="ensemble")))
    assert ds.attrs["ensembles"].startswith("none")
    robust = {"R": models["R"]}
    with pytest.raises(ConfigError, match="no standard models"):
        attack_control(robust, x, {"R": probes["R"]}, objective="drive")


def test_findings_row_reports_the_strongest_control_attack() -> None:
    from brainprobe.analysis import findings

    q = _unit(2)
    models = {"A": _model(q[0], "a"), "B": _model(q[1], "b"), "C": _model((q[0] + q[1]) / np.sqrt(2), "c")}
    x = mid_images(4, size=SIZE)
    probes = {k: probe(m, x, norm="l2", eps=[0.05], objective="drive", steps=3, progress=False) for k, m in models.items()}
    ds = attack_control(models, x, probes, objective="drive", steps=3, input_diversity=0.0, n_boot=50, n_images=None)
    row = findings({"attack_control": ds}, n_boot=100).set_index("finding").loc[
        "standard probes' poor transfer survives stronger attacks (input diversity, ensembles)"]
    assert row["value"] == pytest.approx(float(ds["cross_transfer"].sel(variant="ensemble")), abs=1e-9)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert not row["held"]  # the ensemble transfers well above 0.5 to C: poor transfer does not survive
