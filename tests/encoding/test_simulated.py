"""Ground truth: on a SIMULATED dataset the generating backbone and layer predict each ROI best."""

from __future__ import annotations

import numpy as np
import pytest

from brainprobe.data import SimulatedBrain, sample_stimuli, simulate_dataset
from brainprobe.encoding import extract_features, fit_encoder
from brainprobe.zoo import get_spec, load_backbone


@pytest.mark.slow
def test_generating_backbone_and_layer_predict_best():
    brain = SimulatedBrain("mobilenet_v2", targets_per_roi=6, seed=0, calibration_resolution=64, n_calibration=16)
    stimuli, _ = sample_stimuli(600, 64, seed=1)
    data = simulate_dataset(brain, stimuli, repeats=4, seed=0, noise_ceiling=(0.8, 0.95))
    scores = {}
    for model in ("mobilenet_v2", "efficientnet_lite0"):
        backbone = load_backbone(model)
        layers = list(get_spec(model).default_layers)
        extract_features(backbone, stimuli, layers, pooling="flatten")  # one forward pass fills the cache
        for layer in layers:
            enc = fit_encoder(backbone, data, layer=layer, pooling="flatten", n_boot=200)
            for roi in brain.rois:
                scores[(model, layer, roi)] = enc.predictivity["roi_r_normalised"].sel(roi=roi).item()
        if model == "mobilenet_v2":
            # selection by cross-validation on the training split finds the generating layers too
            chosen = fit_encoder(backbone, data, layer=layers, pooling="flatten", n_boot=10).predictivity["selected_layer"]
            assert {roi: chosen.sel(roi=roi).item() for roi in brain.rois} == brain.roi_layers
    table = "; ".join(f"{m}/{lay}/{roi}={v:.3f}" for (m, lay, roi), v in scores.items())
    print(f"roi_r_normalised: {table}")  # shown with pytest -s / -rP
    for roi, layer in brain.roi_layers.items():
        mine = {k[:2]: v for k, v in scores.items() if k[2] == roi}
        best = max(mine, key=mine.get)
        assert best == ("mobilenet_v2", layer), table
        assert mine[best] >= 0.8, table
        assert np.isfinite(list(mine.values())).all()
