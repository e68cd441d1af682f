"""Galleries at one visible budget: report-time probes from a cached encoder, cached on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from torch import nn

from brainprobe.report import probes_io


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.readout = nn.Linear(4, 4)
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(4)], "roi": ["V1", "V1", "IT", "IT"]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def _run(tmp_path):  # type: ignore[no-untyped-def]
    enc_path = tmp_path / "encoder.pt"
    torch.save(TinyEncoder(), enc_path)
    probes = tmp_path / "probes" / "brainA"
    probes.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    np.save(probes / "images.npy", images)
    np.save(probes / "m.l2.npy", np.zeros((1, 3, 3, 16, 16), dtype=np.float16))
    entry = {"models": {"m": {"encoder": str(enc_path), "norms": {"l2": {"file": "brainA/m.l2.npy", "eps": [0.05]}}}},
             "images": "brainA/images.npy", "objective": "shift"}
    (tmp_path / "probes" / "index.json").write_text(json.dumps({"format": 1, "datasets": {"brainA": entry}}))

    class Run:
        run_dir = tmp_path

    return Run(), entry


def test_default_gallery_budget_is_visible_and_the_same_for_every_model():
    images = np.zeros((2, 128, 128, 3), dtype=np.uint8)
    norm, eps = probes_io.visible_budget(images, None, None)
    assert norm == "l2" and abs(eps - 8 / 255 * np.sqrt(3 * 128 * 128)) < 1e-9  # 6.95: RMS 8/255 per pixel value
    assert probes_io.visible_budget(images, 8 / 255, None) == ("linf", 8 / 255)
    assert probes_io.visible_budget(images, 2.0, None) == ("l2", 2.0)


def test_galleries_probe_at_report_time_and_cache(tmp_path, monkeypatch):
    run, entry = _run(tmp_path)
    items, notes = probes_io.gallery_figures(run, "brainA")
    assert notes == [] and len(items) == 1
    title, fig, caption = items[0]
    assert "ε = " in title and "report time" in caption and "white noise" in caption
    cached = list((tmp_path / "probes" / "brainA" / "gallery").glob("m.l2.*.npy"))
    assert len(cached) == 1
    delta = np.load(cached[0]).astype(np.float32)
    _, eps = probes_io.visible_budget(np.zeros((1, 16, 16, 3)), None, None)
    assert delta.shape == (probes_io.GALLERY_IMAGES, 3, 16, 16)
    assert np.linalg.norm(delta.reshape(len(delta), -1), axis=1).max() <= eps * 1.001
    assert np.abs(delta).max() > 0

    def boom(*a, **k):  # a rebuild reads the cache and probes nothing
        raise AssertionError("probed again")

    monkeypatch.setattr("brainprobe.probes.probe", boom)
    items2, notes2 = probes_io.gallery_figures(run, "brainA")
    assert notes2 == [] and len(items2) == 1


def test_a_kept_budget_uses_the_kept_perturbations(tmp_path, monkeypatch):
    run, entry = _run(tmp_path)
    monkeypatch.setattr("brainprobe.probes.probe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("probed")))
    items, notes = probes_io.gallery_figures(run, "brainA", eps=0.05, norm="l2")
    assert notes == [] and "kept by the run" in items[0][2]
