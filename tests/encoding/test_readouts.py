"""Named readouts (brainprobe.encoding.READOUTS): registry, folding into the Encoder, and recovery of a known factorised target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.encoding import READOUTS, fit_encoder, get_readout
from brainprobe.errors import ConfigError


def _images_tensor(dataset, index):
    return torch.from_numpy(dataset.stimuli[index]).permute(0, 3, 1, 2).float() / 255


def test_registry_names_and_errors(mobilenet_dataset):
    assert list(READOUTS) == ["ridge", "spatial_ridge", "factorized"]
    assert get_readout("factorized").pooling == "flatten" and get_readout("ridge").pooling == "avg"
    with pytest.raises(ConfigError, match="readout 'nope' is unknown; use one of ridge, spatial_ridge, factorized"):
        fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.4", readout="nope")
    with pytest.raises(ConfigError, match="readout 'factorized' cannot use pooling 'avg'"):
        fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.4", readout="factorized", pooling="avg")
    with pytest.raises(ConfigError, match="pca= does not apply"):
        fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.4", readout="factorized", pca=5)


def test_spatial_ridge_folds_its_pca(mobilenet_dataset):
    enc = fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.13", readout="spatial_ridge", cv=3, n_boot=50)
    n_train = len(mobilenet_dataset.train_index)
    assert enc.pooling == "flatten" and enc.provenance["readout"] == "spatial_ridge"
    assert enc.provenance["pca"] == min(100, n_train)
    test = mobilenet_dataset.test_index
    with torch.no_grad():
        y = enc(_images_tensor(mobilenet_dataset, test)).double().numpy()
    np.testing.assert_allclose(y, enc.evaluation.y_pred, rtol=1e-4, atol=1e-4 * np.abs(enc.evaluation.y_pred).max())


@pytest.fixture(scope="module")
def factorized_truth():
    """Targets = known Gaussian mask x sparse channel weights on mobilenet_v2 features.4 maps (64 px: 32 x 8 x 8), plus noise."""
    from brainprobe.data import Dataset, sample_stimuli
    from brainprobe.zoo import load_backbone, truncate

    images, _ = sample_stimuli(160, 64, seed=1)
    with torch.no_grad():
        acts = truncate(load_backbone("mobilenet_v2"), ["features.4"])(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    X = acts["features.4"].double().numpy()  # N x C x H x W
    n, c, h, w = X.shape
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = [(2.0, 2.5), (5.0, 4.5), (3.5, 6.0), (6.0, 1.5)]
    masks = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.2**2)).ravel() for cy, cx in centres])
    weights = np.zeros((len(centres), c))
    for t in range(len(centres)):
        weights[t, rng.choice(c, 4, replace=False)] = rng.normal(size=4) + np.sign(rng.normal(size=4))
    signal = np.einsum("ncs,ts,tc->nt", X.reshape(n, c, h * w), masks, weights)
    signal = (signal - signal.mean(0)) / signal.std(0)
    trials = signal[:, None, :] + 0.25 * rng.normal(size=(n, 3, len(centres)))
    targets = pd.DataFrame({"target": [f"t{i}" for i in range(len(centres))], "roi": "v"})
    dataset = Dataset(images, targets=targets, trials=trials, attrs={"source": "test", "simulated": True})
    return dataset, masks, weights


def test_factorized_recovers_mask_and_weights_and_folds(factorized_truth):
    dataset, masks, weights = factorized_truth
    enc = fit_encoder("mobilenet_v2", dataset, layer="features.4", readout="factorized", n_boot=50, cache=False)
    fitted = enc.readouts["features.4"]
    assert fitted.shape == (32, 8, 8) and enc.provenance["readout"] == "factorized"
    effective = fitted.weights / fitted.x_scale[None, :]  # weights on raw channels
    for t in range(len(masks)):
        r_mask = np.corrcoef(fitted.mask[t], masks[t])[0, 1]
        r_weights = np.corrcoef(effective[t], weights[t])[0, 1]
        assert r_mask >= 0.9 and abs(r_weights) >= 0.9, (t, r_mask, r_weights)
        assert np.sign(r_weights) == 1  # the sign convention (mask sums >= 0) matches the truth's positive masks
    test = dataset.test_index
    with torch.no_grad():
        y = enc(_images_tensor(dataset, test)).double().numpy()
    np.testing.assert_allclose(y, enc.evaluation.y_pred, rtol=1e-4, atol=1e-4 * np.abs(enc.evaluation.y_pred).max())
    np.testing.assert_allclose(fitted.predict(enc.features(_images_tensor(dataset, test)).double().numpy()),
                               enc.evaluation.y_pred, rtol=1e-9, atol=1e-9)
    assert float(enc.predictivity["roi_r_normalised"].sel(roi="v")) > 0.9


def test_factorized_penalties_chosen_from_the_grid(factorized_truth):
    dataset, _, _ = factorized_truth
    grid = {"l1": [0.001, 3.0], "smooth": [0.01]}
    enc = fit_encoder("mobilenet_v2", dataset, layer="features.4", readout="factorized", readout_options=grid,
                      n_boot=20, cache=False)
    settings = enc.provenance["readout_settings"]
    assert set(settings["grid_val_r2"]) == {"l1=0.001,smooth=0.01", "l1=3,smooth=0.01"}
    assert settings["l1"] == 0.001  # an L1 of 3 zeroes every channel weight: validation R^2 <= 0
    assert settings["grid_val_r2"]["l1=3,smooth=0.01"] < settings["grid_val_r2"]["l1=0.001,smooth=0.01"]
    np.testing.assert_array_equal(enc.predictivity["alpha"].values, 0.001)


def test_run_config_readout_is_validated_and_keyed():
    from pydantic import ValidationError

    from brainprobe.pipeline.config import EncodingConfig

    assert EncodingConfig().readout == "ridge"
    assert EncodingConfig(readout="factorized").model_dump()["readout"] == "factorized"  # in the fit cache key
    with pytest.raises(ValidationError, match="unknown readout 'gauss'"):
        EncodingConfig(readout="gauss")


def test_folding_a_wide_layer_never_forms_a_features_squared_matrix() -> None:
    """spatial_ridge on VGG's block2 at 64 px flattens 131,072 features; folding used np.diag(1/scale)
    (128 GiB). The folded map must equal the staged prediction without it."""
    import numpy as np

    from brainprobe.encoding.fit import _fit_layer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 150_000)).astype(np.float32) * rng.uniform(0.5, 2.0, size=150_000).astype(np.float32)
    Y = X[:, :3].astype(np.float64) + 0.1 * rng.normal(size=(24, 3))
    for pca in (None, 5):
        readout = _fit_layer("wide", X, Y, pca=pca, seed=0, cv=3)
        W, b = readout.folded()
        assert W.shape == (150_000, 3)
        np.testing.assert_allclose(X.astype(np.float64) @ W + b, readout.predict(X), rtol=1e-6, atol=1e-8)
