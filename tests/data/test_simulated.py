"""SimulatedBrain and simulate_dataset on the real EfficientNet-Lite2 backbone (small images)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.data import Dataset, SimulatedBrain, noise_ceiling_ncsnr, sample_stimuli, simulate_dataset
from brainprobe.errors import DataError


@pytest.fixture(scope="module")
def brain() -> SimulatedBrain:
    torch.set_num_threads(2)
    return SimulatedBrain("efficientnet_lite2", targets_per_roi=12, seed=0, calibration_resolution=64, n_calibration=16)


@pytest.fixture(scope="module")
def stimuli() -> np.ndarray:
    return sample_stimuli(120, 48, seed=0)[0]


def test_labelled_simulated_with_rois(brain):
    assert "SIMULATED" in brain.name and "efficientnet_lite2" in brain.name
    assert "SIMULATED" in str(brain) and "SIMULATED" in repr(brain)
    assert brain.rois == ["sim-early", "sim-mid", "sim-late"]
    assert list(brain.roi_layers.values()) == ["_blocks.6", "_blocks.14", "_blocks.20"]
    t = brain.targets
    assert len(t) == brain.n_targets == 36 and t["target"].is_unique
    assert {"target", "roi", "x", "y"} <= set(t.columns)
    sig = t.groupby("roi", sort=False)["rf_sigma"].mean()
    assert sig["sim-early"] < sig["sim-mid"] < sig["sim-late"]  # receptive fields grow along the hierarchy


def test_forward_deterministic_nonnegative_and_seeded(brain, stimuli):
    a = brain.respond(stimuli[:8], progress=False)
    b = brain.respond(stimuli[:8], progress=False)
    assert a.shape == (8, 36) and np.array_equal(a, b) and (a >= 0).all()
    assert np.all(a.std(axis=0) > 0)  # every target responds to image content
    small = dict(targets_per_roi=4, calibration_resolution=48, n_calibration=8)
    one, twin, other = (SimulatedBrain("efficientnet_lite2", seed=s, **small) for s in (0, 0, 1))
    pd.testing.assert_frame_equal(one.targets, twin.targets)
    assert np.array_equal(one.respond(stimuli[:8], progress=False), twin.respond(stimuli[:8], progress=False))
    assert not np.allclose(one.respond(stimuli[:8], progress=False), other.respond(stimuli[:8], progress=False))
    assert not np.allclose(one.targets["x"], other.targets["x"])


def test_readouts_are_spatially_local_and_differentiable(brain):
    x = torch.full((1, 3, 96, 96), 0.5, requires_grad=True)
    early = brain.targets.index[brain.targets["roi"] == "sim-early"]
    t = int(brain.targets.loc[early, "rf_sigma"].idxmin())
    brain(x)[0, t].backward()
    g = x.grad.abs().sum(dim=(0, 1))
    assert g.sum() > 0
    ys, xs = torch.meshgrid((torch.arange(96) + 0.5) / 96, (torch.arange(96) + 0.5) / 96, indexing="ij")
    cy, cx = float((g * ys).sum() / g.sum()), float((g * xs).sum() / g.sum())
    row = brain.targets.loc[t]
    assert abs(cy - row["y"]) < 0.12 and abs(cx - row["x"]) < 0.12


def test_measure_reaches_chosen_noise_ceilings(brain, stimuli):
    m = brain.measure(stimuli, repeats=3, seed=5, noise_ceiling=[0.3, 0.8])  # list as from YAML
    assert m.trials.shape == (120, 3, 36)
    s = m.signal.var(axis=0)
    np.testing.assert_allclose(m.noise_ceiling, s / (s + m.noise_sd**2 / 3), rtol=1e-10)
    assert m.noise_ceiling.min() >= 0.3 and m.noise_ceiling.max() <= 0.8
    resid = (m.trials - m.signal[:, None, :]).std(axis=(0, 1))
    np.testing.assert_allclose(resid, m.noise_sd, rtol=0.12)
    est = noise_ceiling_ncsnr(m.trials)
    assert np.median(np.abs(est - m.noise_ceiling)) < 0.07  # 120 images only
    fixed = brain.measure(stimuli[:20], repeats=2, seed=0, noise_ceiling=0.5)
    again = brain.measure(stimuli[:20], repeats=2, seed=0, noise_ceiling=0.5)
    assert np.allclose(fixed.noise_ceiling, 0.5) and np.array_equal(fixed.trials, again.trials)


def test_measure_bad_inputs(brain, stimuli):
    with pytest.raises(DataError, match="at least 2 images"):
        brain.measure(stimuli[:1])
    with pytest.raises(DataError, match=r"\(0, 1\]"):
        brain.measure(stimuli[:4], noise_ceiling=1.5)
    with pytest.raises(DataError, match="0 < low <= high <= 1"):
        brain.measure(stimuli[:4], noise_ceiling=(0.0, 0.5))
    with pytest.raises(DataError, match=r"range must be \(low, high\)"):
        brain.measure(stimuli[:4], noise_ceiling=[0.2, 0.3, 0.4])


def test_simulate_dataset_labelled_round_trip(brain, stimuli, tmp_path):
    ds = simulate_dataset(brain, stimuli[:60], repeats=3, seed=2, test_fraction=0.25)
    assert ds.simulated and ds.attrs["brain"] == "efficientnet_lite2" and ds.attrs["source"] == "simulated"
    assert "SIMULATED" in repr(ds) and "SIMULATED" in ds.summary()
    assert len(ds.test_index) == 15 and ds.n_repeats == 3
    assert "true_noise_ceiling" in ds.targets and ds.attrs["noise_ceiling_method"] == "ncsnr"
    np.testing.assert_allclose(ds.responses, ds.trials.mean(axis=1))
    back = Dataset.load(ds.save(tmp_path / "sim.nc"))
    np.testing.assert_array_equal(back.targets["true_noise_ceiling"], ds.targets["true_noise_ceiling"])
    assert back.simulated and back.attrs == ds.attrs
    # crops of one photo stay on one side of the split and survive the save
    imgs, prov = sample_stimuli(60, 48, seed=0)
    grouped = simulate_dataset(brain, imgs, repeats=2, seed=2, test_fraction=0.25, groups=prov["photo"].to_numpy())
    sides = pd.DataFrame({"g": grouped.groups, "s": grouped.split}).groupby("g")["s"].nunique()
    assert (sides == 1).all() and grouped.n_groups == prov["photo"].nunique() < 60
    assert len(set(grouped.groups[grouped.test_index])) == round(0.25 * grouped.n_groups)
    assert 0.1 <= len(grouped.test_index) / 60 <= 0.4
    assert np.array_equal(Dataset.load(grouped.save(tmp_path / "grouped.nc")).groups, grouped.groups)
    # the brain stays usable after simulation: new images, same noise-free answers
    new = sample_stimuli(4, 48, seed=99)[0]
    assert np.array_equal(brain.respond(new, progress=False), brain.respond(new, progress=False))


def test_brain_accepts_loaded_backbone_and_custom_rois():
    from brainprobe.zoo import load_backbone

    bb = load_backbone("mobilenet_v2")
    b = SimulatedBrain(bb, rois={"v1": "features.4", "sim-it": "features.14"}, targets_per_roi=4,
                       calibration_resolution=48, n_calibration=8)
    assert b.rois == ["sim-v1", "sim-it"] and b.backbone_name == "mobilenet_v2"
    out = b(torch.rand(2, 3, 48, 48))
    assert out.shape == (2, 8)
