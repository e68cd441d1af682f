"""The Encoder equals the stepwise fitted pipeline, is differentiable, and stops at its readout layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainprobe.data import sample_stimuli
from brainprobe.encoding import Encoder, extract_features, fit_encoder
from brainprobe.errors import ConfigError, DataError, ModelError
from brainprobe.zoo import load_backbone, truncate


def _stepwise(encoder: Encoder, backbone, images: np.ndarray) -> np.ndarray:
    """extract -> pool -> standardise -> PCA -> ridge predict, stage by stage in float64."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        acts = truncate(backbone, encoder.layers)(x)
    out = np.zeros((len(images), encoder.n_targets))
    for layer in encoder.layers:
        a = acts[layer]
        if encoder.pooling == "avg":
            feats = a.mean(dim=(2, 3))
        elif encoder.pooling == "flatten":
            feats = a.reshape(a.shape[0], -1)
        else:
            k = int(encoder.pooling.removeprefix("avgpool"))
            feats = torch.nn.functional.adaptive_avg_pool2d(a, k).reshape(a.shape[0], -1)
        stages = encoder.readouts[layer]
        z = (feats.double().numpy() - stages.mean) / stages.scale
        if stages.pca is not None:
            z = stages.pca.transform(z)
        pred = z @ stages.ridge.coef + stages.ridge.intercept
        cols = (encoder.targets["readout_layer"] == layer).to_numpy()
        out[:, cols] = pred[:, cols]
    return out


@pytest.mark.parametrize(
    "model,layer,pooling,pca",
    [
        ("mobilenet_v2", "features.4", "avg", None),
        ("mobilenet_v2", "features.13", "avgpool2", 20),
        ("mobilenet_v2", "features.7", "flatten", None),
        ("efficientnet_lite0", "_blocks.4", "avg", 10),
        ("efficientnet_lite0", "_blocks.10", "avgpool2", None),
    ],
)
def test_encoder_equals_stepwise_pipeline(mobilenet_dataset, model, layer, pooling, pca):
    ds = mobilenet_dataset
    backbone = load_backbone(model)
    enc = fit_encoder(backbone, ds, layer=layer, pooling=pooling, pca=pca, cv=3, n_boot=50)
    assert enc.layers == [layer] and enc.layer == layer and enc.backbone_name == model
    assert enc.weights_sha256 == backbone.weights_sha256
    new_images, _ = sample_stimuli(8, 64, seed=123)
    for images in (ds.stimuli[ds.test_index], new_images):
        ref = _stepwise(enc, backbone, images)
        with torch.no_grad():
            got = enc(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).double().numpy()
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    # the predictions behind .predictivity are the stepwise ones
    np.testing.assert_allclose(enc.evaluation.y_pred, _stepwise(enc, backbone, ds.stimuli[ds.test_index]), rtol=1e-6, atol=1e-8)


def test_layer_selection_per_roi_and_forward(mobilenet_dataset):
    ds = mobilenet_dataset
    backbone = load_backbone("mobilenet_v2")
    enc = fit_encoder(backbone, ds, layer=["features.4", "features.13"], cv=3, n_boot=50)
    pred = enc.predictivity
    assert set(pred["selected_layer"].values) <= {"features.4", "features.13"}
    for roi in pred["roi"].values:
        chosen = pred["selected_layer"].sel(roi=roi).item()
        scores = pred["layer_cv_score"].sel(roi=roi)
        assert scores.sel(candidate_layer=chosen).item() == scores.max().item()
        assert (enc.targets.loc[enc.targets["roi"] == roi, "readout_layer"] == chosen).all()
    assert enc.layers == [lay for lay in ["features.4", "features.13"] if lay in set(pred["selected_layer"].values)]
    ref = _stepwise(enc, backbone, ds.stimuli[:10])
    with torch.no_grad():
        got = enc(ds.stimuli[:10]).double().numpy()  # uint8 N x H x W x 3 accepted too
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_differentiable_frozen_and_cut_at_readout(mobilenet_dataset):
    backbone = load_backbone("mobilenet_v2")
    enc = fit_encoder(backbone, mobilenet_dataset, layer="features.4", cv=3, n_boot=20)
    calls: list[str] = []
    # torch.fx traces through blocks down to leaf modules, so hook the leaves (same objects as in the backbone)
    leaves = ("features.4.conv.0.0", "features.4.conv.2", "features.5.conv.0.0", "features.18.0", "classifier.1")
    hooks = [backbone.net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
             for name in leaves]
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    y = enc(x)
    for h in hooks:
        h.remove()
    assert calls == ["features.4.conv.0.0", "features.4.conv.2"]  # the readout layer runs, nothing after it
    y[:, 0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in enc.parameters())
    assert {"weight", "bias"} <= {name for name, _ in enc.named_buffers()}
    assert enc.weight.shape == (12, 32) and y.shape == (2, 12)


def test_subset_and_roi_means(mobilenet_dataset):
    enc = fit_encoder("mobilenet_v2", mobilenet_dataset, layer=["features.4", "features.13"], cv=3, n_boot=50)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        full = enc(x)
        late = enc.subset("late")
        cols = np.flatnonzero(enc.targets["roi"] == "late")
        torch.testing.assert_close(late(x), full[:, cols], rtol=1e-5, atol=1e-6)
        assert list(late.targets["roi"].unique()) == ["late"] and late.layers == [enc.targets["readout_layer"][cols[0]]]
        np.testing.assert_allclose(late.predictivity["r"].values, enc.predictivity["r"].values[cols])
        np.testing.assert_array_equal(late.predictivity["alpha"].values, enc.predictivity["alpha"].values[cols])
        picked = enc.subset([0, 7])
        torch.testing.assert_close(picked(x), full[:, [0, 7]], rtol=1e-5, atol=1e-6)
        means = enc.roi_means()
        assert means.targets["target"].tolist() == ["early", "late"]
        expected = torch.stack([full[:, enc.targets["roi"].to_numpy() == r].mean(1) for r in ["early", "late"]], 1)
        torch.testing.assert_close(means(x), expected, rtol=1e-5, atol=1e-6)
    # ROI means have trials, hence their own noise ceiling
    assert np.isfinite(means.predictivity["r_normalised"].values).all()
    with pytest.raises(DataError, match="unknown ROI 'v4'; valid ROIs: early, late"):
        enc.subset("v4")


def test_predictivity_layout(mobilenet_dataset):
    enc = fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.13", cv=3, n_boot=100)
    p = enc.predictivity
    for name in ("r", "r_normalised", "explained_variance", "noise_ceiling", "alpha", "cv_score", "readout_layer"):
        assert p[name].dims == ("target",)
    assert p["roi_r_normalised_ci"].dims == ("roi", "bound")
    assert p.attrs["backbone"] == "mobilenet_v2" and p.attrs["n_test"] == len(mobilenet_dataset.test_index)
    assert (p["alpha"].values > 0).all() and enc.provenance["seed"] == 0
    # a readout of this very layer is well predicted on held-out images
    assert p["roi_r"].sel(roi="late").item() > 0.5


def test_bad_inputs(mobilenet_dataset):
    from brainprobe.data import Dataset

    ds = mobilenet_dataset
    with pytest.raises(ModelError, match=r"unknown layer 'features\.99'.*valid layers: features\.0, features\.1"):
        fit_encoder("mobilenet_v2", ds, layer="features.99")
    with pytest.raises(ConfigError, match="pooling 'max'"):
        fit_encoder("mobilenet_v2", ds, layer="features.4", pooling="max")
    with pytest.raises(ConfigError, match="pca=500"):
        fit_encoder("mobilenet_v2", ds, layer="features.4", pca=500, cv=3)
    small = Dataset(ds.stimuli[:8], ds.responses[:8], ds.targets, split=["train"] * 4 + ["test"] * 4)
    with pytest.raises(DataError, match="only 4 training images for 5-fold"):
        fit_encoder("mobilenet_v2", small, layer="features.4", cv=5)
    responses = ds.responses.copy()
    responses[:, 2] = 3.0
    const = Dataset(ds.stimuli, responses, ds.targets, split=ds.split, noise_ceiling=ds.noise_ceiling)
    with pytest.warns(UserWarning, match=r"dropped 1 constant .*early_2"):
        enc = fit_encoder("mobilenet_v2", const, layer="features.4", cv=3, n_boot=20)
    assert enc.n_targets == ds.n_targets - 1 and "early_2" not in enc.targets["target"].tolist()
    with pytest.raises(ModelError, match="model name or a brainprobe.zoo Backbone"):
        fit_encoder(torch.nn.Linear(2, 2), ds, layer="x")


def test_extract_features_cache(mobilenet_dataset, monkeypatch):
    import brainprobe.encoding.features as features

    backbone = load_backbone("mobilenet_v2")
    images = mobilenet_dataset.stimuli[:10]
    first = extract_features(backbone, images, ["features.2", "features.4"], pooling="avgpool2", batch_size=4)
    assert first["features.2"].shape == (10, 24 * 4) and first["features.4"].shape == (10, 32 * 4)

    def fail(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(features, "_forward_features", fail)
    again = extract_features(backbone, images, ["features.4", "features.2"], pooling="avgpool2")
    np.testing.assert_array_equal(again["features.4"], first["features.4"])
    for changed in (dict(images=images[:9], pooling="avgpool2"), dict(images=images, pooling="avg")):
        with pytest.raises(AssertionError, match="cache miss"):
            extract_features(backbone, changed["images"], ["features.4"], pooling=changed["pooling"])
    monkeypatch.undo()
    # the cached values are the truncated backbone's, pooled
    with torch.no_grad():
        act = truncate(backbone, "features.4")(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    ref = torch.nn.functional.adaptive_avg_pool2d(act, 2).flatten(1).numpy()
    np.testing.assert_allclose(first["features.4"], ref, rtol=1e-5, atol=1e-6)
    uncached = extract_features(backbone, images, "features.4", pooling="avgpool2", cache=False, batch_size=3)
    np.testing.assert_allclose(uncached["features.4"], ref, rtol=1e-5, atol=1e-6)


def test_response_sd_on_training_images_survives_subset_roi_means_and_pickle(mobilenet_dataset, tmp_path):
    enc = fit_encoder("mobilenet_v2", mobilenet_dataset, layer="features.4", cv=3, n_boot=20)
    train = mobilenet_dataset.images(mobilenet_dataset.train_index)
    with torch.no_grad():
        pred = enc(train).double()
    assert "response_sd" in dict(enc.named_buffers())
    torch.testing.assert_close(enc.response_sd.double(), pred.std(0), rtol=1e-4, atol=1e-6)
    rois = enc.targets["roi"].to_numpy()
    for roi in ("early", "late"):
        assert enc.mean_response_sd[roi] == pytest.approx(float(pred[:, rois == roi].mean(1).std()), rel=1e-4)
    assert enc.mean_response_sd["__all__"] == pytest.approx(float(pred.mean(1).std()), rel=1e-4)
    late = enc.subset("late")
    torch.testing.assert_close(late.response_sd, enc.response_sd[torch.as_tensor(np.flatnonzero(rois == "late"))])
    assert set(late.mean_response_sd) == {"late"}
    assert "early" not in enc.subset([0, 7]).mean_response_sd  # ROI "early" only in part: no ROI-mean SD
    means = enc.roi_means()
    np.testing.assert_allclose(means.response_sd.numpy(), [enc.mean_response_sd["early"], enc.mean_response_sd["late"]],
                               rtol=1e-6)
    torch.save(enc, tmp_path / "enc.pt")
    back = torch.load(tmp_path / "enc.pt", weights_only=False)
    torch.testing.assert_close(back.response_sd, enc.response_sd)
    assert back.mean_response_sd == enc.mean_response_sd
