"""One small real check: analyses on encoders built from real pretrained zoo backbones (32 px images)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainprobe.analysis import coding_axes, linearity, sensitivity, transfer
from brainprobe.probes import probe

pytestmark = pytest.mark.filterwarnings("ignore::brainprobe.probes.ProbeCheckWarning")


class ZooEncoder(nn.Module):
    """Pretrained backbone cut at a layer, average-pooled, fixed random readout to 8 targets in 2 ROIs."""

    def __init__(self, name: str, layer: str, seed: int) -> None:
        super().__init__()
        from brainprobe.zoo import load_backbone, truncate

        self.body = truncate(load_backbone(name), layer)
        with torch.no_grad():
            width = self.body(torch.rand(1, 3, 32, 32)).shape[1]
        g = torch.Generator().manual_seed(seed)
        self.readout = nn.Linear(width, 8)
        self.readout.weight.data = torch.randn(8, width, generator=g) / width**0.5
        self.readout.requires_grad_(False)
        self.targets = pd.DataFrame({"target": [f"v{i}" for i in range(8)], "roi": ["V1"] * 4 + ["V4"] * 4})
        self.backbone_name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.body(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    from brainprobe.data import sample_stimuli

    pics, _ = sample_stimuli(4, 32, seed=0)
    x = torch.from_numpy(pics).permute(0, 3, 1, 2).float() / 255
    models = {"mobilenet": ZooEncoder("mobilenet_v2", "features.4", 0),
              "effnet": ZooEncoder("efficientnet_lite0", "_blocks.3", 1)}
    return models, x


def test_real_encoders_sensitivity_transfer_linearity(setup) -> None:  # type: ignore[no-untyped-def]
    models, x = setup
    eps = [0.001, 0.3, 3.0]
    probes = {k: probe(m, x, norm="l2", eps=eps, objective="drive:V1", steps=10, progress=False) for k, m in models.items()}
    sens = sensitivity(models, x, probes, rois=["V1"], n_boot=100)
    curve = sens["curve"].sel(norm="l2", roi="V1").values
    assert (np.diff(curve, axis=-1) > 0).all()  # larger budgets move responses more
    assert list(sens["training"].values) == ["standard", "standard"]  # read from the zoo via backbone_name
    tr = transfer(models, x, probes, objective="drive:V1", n_boot=100)
    np.testing.assert_allclose(np.diagonal(tr["transfer"].sel(norm="l2").values, axis1=0, axis2=1), 1.0)
    off = float(tr["transfer"].sel(source_model="mobilenet", target_model="effnet", norm="l2", eps=0.3))
    assert off < 0.9  # another architecture's probe is less effective than the model's own
    lin = linearity(models, x, probes, objective="drive:V1", n_boot=100)
    ratio = lin["ratio"].sel(norm="l2")
    # a smooth network is first-order exact for tiny budgets ...
    np.testing.assert_allclose(ratio.sel(eps=0.001), 1.0, atol=0.05)
    # ... and the first-order optimum is an upper bound PGD does not beat by much at large ones
    assert (ratio.sel(eps=3.0) < 1.5).all()


def test_real_encoders_coding_axes(setup) -> None:  # type: ignore[no-untyped-def]
    models, x = setup
    ds = coding_axes(models, x[:2], rois="V1", k=2, method="exact", n_boot=50)
    a = ds["alignment"].sel(roi="V1")
    assert float(a.sel(model_a="mobilenet", model_b="mobilenet")) == pytest.approx(1.0, abs=1e-5)
    between = float(a.sel(model_a="mobilenet", model_b="effnet"))
    assert float(ds["chance"].sel(roi="V1")) < between < 1.0
