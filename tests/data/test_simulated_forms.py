"""SimulatedBrain generative forms (form=): known answers computed from the brain's own buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainprobe.data import SimulatedBrain
from brainprobe.data.simulated import FORMS
from brainprobe.errors import DataError

SMALL = dict(targets_per_roi=5, seed=3, calibration_resolution=48, n_calibration=8)


@pytest.fixture(scope="module")
def backbone():
    from brainprobe.zoo import load_backbone

    return load_backbone("mobilenet_v2")


@pytest.fixture(scope="module")
def brains(backbone):
    return {form: SimulatedBrain(backbone, form=form, **SMALL).eval() for form in FORMS}


@pytest.fixture(scope="module")
def x():
    return torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))


def _window(layer_act, brain, r, weights, p=None):
    """Reference drive of ROI r's targets, written out target by target."""
    a = layer_act.double()
    h, w = a.shape[-2:]
    out = []
    for t in range(weights.shape[0]):
        cy, cx = brain.__getattr__(f"_c_{r}")[t].double()
        s = brain.__getattr__(f"_s_{r}")[t].double()
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w
        g = torch.exp(-0.5 * ((ys[:, None] - cy) / s) ** 2) * torch.exp(-0.5 * ((xs[None, :] - cx) / s) ** 2)
        g = g / g.sum()
        m = torch.einsum("nchw,c->nhw", a, weights[t].double())
        if p is None:
            out.append((m * g).sum((1, 2)))
        else:
            out.append(((m.clamp_min(0) ** p) * g).sum((1, 2)) ** (1 / p))
    return torch.stack(out, 1)


def _standardised_softplus(brain, drive):
    return torch.nn.functional.softplus((drive - brain._mu.double()) / brain._sd.double())


def test_every_form_is_labelled_deterministic_nonnegative_and_differentiable(brains, x):
    for form, brain in brains.items():
        assert brain.form == form and brain.provenance()["brain_form"] == form
        assert f"form={form}" in str(brain) and "SIMULATED" in str(brain)
        assert (brain.targets["form"] == form).all()
        y = brain(x)
        assert y.shape == (3, brain.n_targets) and torch.isfinite(y).all() and (y >= 0).all()
        assert torch.equal(y, brain(x))
        xg = x.clone().requires_grad_(True)
        brain(xg).sum().backward()
        assert xg.grad is not None and xg.grad.abs().sum() > 0, form


def test_matched_and_l4pool_drives_match_the_written_out_readout(brains, x):
    for form, p in (("matched", None), ("l4pool", 4.0)):
        brain = brains[form]
        with torch.no_grad():
            acts = brain.body(x)
            expect = torch.cat(
                [_window(acts[layer], brain, r, getattr(brain, f"_w_{r}"), p) for r, layer in enumerate(brain.roi_layers.values())],
                1,
            )
            got = brain(x).double()
        np.testing.assert_allclose(got.numpy(), _standardised_softplus(brain, expect).numpy(), rtol=1e-4, atol=1e-5)


def test_two_layer_targets_sum_two_layers(brains, x):
    brain = brains["two_layer"]
    assert set(brain.targets["layer2"]) == set(brain.second_layers.values())
    assert all(brain.second_layers[r] != brain.roi_layers[r] for r in brain.roi_layers)
    with torch.no_grad():
        acts = brain.body(x)
        expect = torch.cat(
            [
                _window(acts[layer], brain, r, getattr(brain, f"_w_{r}"))
                + _window(acts[brain.second_layers[roi]], brain, r, getattr(brain, f"_w2_{r}"))
                for r, (roi, layer) in enumerate(brain.roi_layers.items())
            ],
            1,
        )
        got = brain(x).double()
    np.testing.assert_allclose(got.numpy(), _standardised_softplus(brain, expect).numpy(), rtol=1e-4, atol=1e-5)
    # the second layer matters: dropping it changes the responses
    with torch.no_grad():
        single = _standardised_softplus(brain, torch.cat(
            [_window(acts[layer], brain, r, getattr(brain, f"_w_{r}")) for r, layer in enumerate(brain.roi_layers.values())], 1))
    assert (single - got).abs().max() > 1e-2


def test_divnorm_divides_by_the_roi_mean_energy(brains, x):
    matched, dn = brains["matched"], brains["divnorm"]
    # same seed and drive form: identical calibration, so divnorm is a known function of matched
    assert torch.equal(matched._mu, dn._mu)
    with torch.no_grad():
        s = matched(x).double()
        got = dn(x).double()
    t = matched.targets_per_roi
    for r in range(len(matched.roi_layers)):
        e = s[:, r * t : (r + 1) * t] ** 2
        np.testing.assert_allclose(got[:, r * t : (r + 1) * t].numpy(), (e / (0.5 + e.mean(1, keepdim=True))).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_unknown_form_is_a_data_error(backbone):
    with pytest.raises(DataError, match="form 'gabor' is unknown"):
        SimulatedBrain(backbone, form="gabor", **SMALL)
