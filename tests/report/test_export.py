"""Stimulus export: lattice projection, exact PNG round trips, CSVs that match a fresh forward pass."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from brainprobe.report.export import export_probe_images
from brainprobe.report.lattice import lattice_probe, lattice_project
from brainprobe.report.pngio import from_levels, read_png, write_png


def decode_png(path: Path) -> np.ndarray:
    """Independent PNG decoder (zlib + the five scanline filters) for RGB 8/16-bit files."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, color, _, _, interlace = header
    assert color == 2 and interlace == 0
    bpp = 3 * depth // 8
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = np.zeros((h, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)], dtype=np.uint8).astype(np.int64)
        cur = np.zeros(stride, dtype=np.int64)
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + p) & 0xFF
        out[y], prev = cur, cur
    by = out.astype(np.uint8).reshape(h, w * 3, depth // 8)
    if depth == 16:
        return (by[..., 0].astype(np.uint16) << 8 | by[..., 1]).reshape(h, w, 3)
    return by[..., 0].reshape(h, w, 3)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_is_exact(tmp_path, bits):
    rng = np.random.default_rng(bits)
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, (9, 13, 3)).astype(dtype)
    path = write_png(tmp_path / "a.png", pixels)
    np.testing.assert_array_equal(read_png(path), pixels)
    np.testing.assert_array_equal(decode_png(path), pixels)
    if bits == 8:
        np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)


def _lattice_images(n: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 256, (n, 3, size, size))
    k[:, :, 0, :] = 0  # pixels on the box edges: the box must bind there
    k[:, :, -1, :] = 255
    return torch.from_numpy(k / 255.0).float()


@pytest.mark.parametrize("eps_levels", [0.5, 1.0, 2.5, 4.0])
def test_linf_lattice_projection(eps_levels):
    x = _lattice_images()
    eps = eps_levels / 255
    delta = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * eps
    q = lattice_project(delta, x, eps, "linf", 255)
    k = (x + q).double() * 255
    assert torch.allclose(k, k.round(), atol=1e-3)
    assert float(q.abs().max()) <= eps + 1e-7
    assert float((x + q).min()) >= 0 and float((x + q).max()) <= 1
    assert float(q.abs().max()) * 255 == pytest.approx(np.floor(eps_levels), abs=1e-4)


@pytest.mark.parametrize("bits", [8, 16])
def test_l2_lattice_projection_stays_in_ball_and_spends_budget(bits):
    x = _lattice_images(size=32)
    eps = 0.1
    delta = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    delta = delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps  # tiny per-pixel changes
    levels = 255 if bits == 8 else 65535
    q = lattice_project(delta, x, eps, "l2", levels)
    norms = q.double().flatten(1).norm(dim=1)
    assert bool((norms <= eps + 1e-7).all())
    assert bool((norms >= 0.9 * eps).all())  # plain rounding would zero most pixels
    k = (x + q).double() * levels
    assert torch.allclose(k, k.round(), atol=1e-2)
    # plain 8-bit rounding of the same probe leaves the ball (~0.46 level rms per pixel here)
    plain = ((x + delta) * 255).round() / 255 - x
    assert bool((plain.flatten(1).norm(dim=1) > eps).all())


class Linear(nn.Module):
    """y = W x (flattened pixels), T outputs in two ROIs: exact gradients, analytic optima."""

    def __init__(self, n_pixels: int, n_targets: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(n_targets, n_pixels, generator=g), requires_grad=False)
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(n_targets)], "roi": ["a", "b"] * (n_targets // 2)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def test_lattice_probe_reaches_linf_lattice_optimum_on_linear_model():
    from brainprobe.probes import Drive, probe

    x = torch.full((2, 3, 8, 8), 128 / 255)  # mid-box: the box does not bind
    model = Linear(3 * 8 * 8)
    eps = 2.6 / 255  # the lattice allows 2 levels: the optimum is 2/255 * ||w_a||_1
    res = probe(model, x, norm="linf", eps=[eps], objective=Drive("a"), steps=10, progress=False, checks=False)
    lat = lattice_probe(model, x, res.delta[0], norm="linf", eps=eps, objective=Drive("a"), steps=5)
    w_a = model.w[[0, 2]].mean(dim=0)
    optimum = float(w_a.abs().sum()) * 2 / 255
    assert lat.value.tolist() == pytest.approx([optimum, optimum], rel=1e-4)
    assert float(lat.delta.abs().max()) == pytest.approx(2 / 255, abs=1e-7)


def test_lattice_probe_beats_plain_rounding_for_small_l2_probes():
    from brainprobe.probes import Drive, probe

    x = _lattice_images(n=2, size=16, seed=3)
    model = Linear(3 * 16 * 16, seed=1)
    eps = 0.02
    res = probe(model, x, norm="l2", eps=[eps], objective=Drive("a"), steps=10, progress=False, checks=False)
    lat = lattice_probe(model, x, res.delta[0], norm="l2", eps=eps, objective=Drive("a"), steps=5)
    assert bool((lat.value > lat.value_rounded).all())
    assert bool((lat.delta.flatten(1).norm(dim=1) <= eps + 1e-6).all())


# ------------------------------------------------------------------------ end to end, real network


class PooledReadout(nn.Module):
    """A real pretrained network cut at a layer, average pooled, with a fixed random readout."""

    def __init__(self, layer: str, n_targets: int = 12, seed: int = 0) -> None:
        super().__init__()
        from brainprobe.zoo import load_backbone, truncate

        self.body = truncate(load_backbone("mobilenet_v2"), layer)
        with torch.no_grad():
            f = self.body(torch.zeros(1, 3, 64, 64)).shape[1]
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(f, n_targets, generator=g) / f**0.5, requires_grad=False)
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(n_targets)], "roi": ["early", "mid", "late"] * (n_targets // 3)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3)) @ self.w


@pytest.fixture(scope="module")
def real_probe():
    from brainprobe.data import sample_stimuli
    from brainprobe.probes import Drive, probe

    torch.set_num_threads(2)
    images, _ = sample_stimuli(3, 64, seed=0)
    models = {"mnv2_f4": PooledReadout("features.4", seed=0).eval(), "mnv2_f7": PooledReadout("features.7", seed=1).eval()}
    out = {}
    for norm, eps in (("l2", 0.1), ("linf", 2 / 255)):
        res = probe(models["mnv2_f4"], images, norm=norm, eps=[eps], objective=Drive("mid"), steps=5, progress=False)
        out[norm] = (eps, res.delta[0])
    return images, models, out


def _fresh_roi_changes(models, clean: torch.Tensor, written: torch.Tensor) -> pd.DataFrame:
    rows = []
    with torch.no_grad():
        for name, m in models.items():
            y0, y1 = m(clean), m(written)
            for roi in m.targets["roi"].unique():
                idx = np.flatnonzero(m.targets["roi"].to_numpy() == roi)
                d = (y1[:, idx].mean(1) - y0[:, idx].mean(1)).numpy()
                rows += [{"i": i, "model": name, "roi": roi, "fresh": float(d[i])} for i in range(len(d))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("bits,quantise", [(8, True), (16, True)])
def test_export_writes_exact_pngs_and_csv_matches_fresh_forward(tmp_path, real_probe, bits, quantise):
    from brainprobe.probes import Drive

    images, models, probes = real_probe
    eps, delta = probes["l2"]
    out = tmp_path / "stimuli"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = export_probe_images(images, delta, source="mnv2_f4", models=models, norm="l2", eps=eps,
                                      objective=Drive("mid"), out=out, bits=bits, quantise=quantise, steps=2,
                                      image_ids=["a", "b", "c"])
    flagged_warnings = [w for w in caught if "export check" in str(w.message)]
    assert len(flagged_warnings) == int(summary["flagged"].any())
    files = sorted((out / "probes").glob("*.png"))
    assert [f.stem for f in files] == ["a", "b", "c"]
    # the clean images are written losslessly too
    for i, name in enumerate("abc"):
        np.testing.assert_array_equal(decode_png(out / "clean" / f"{name}.png"), images[i])
    pixels = np.stack([decode_png(f) for f in files])
    assert pixels.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(np.stack([read_png(f) for f in files]), pixels)
    written = from_levels(pixels)
    clean = from_levels(images)
    # the budget reported is the budget of what is on disk, and it is inside the ball
    levels = 255 if bits == 8 else 65535
    used = np.linalg.norm((pixels / levels - images / 255.0).reshape(3, -1), axis=1)
    np.testing.assert_allclose(summary["budget_used"].to_numpy(), used, rtol=1e-6)
    assert bool((used <= eps * (1 + 1e-6)).all())
    # every model's change per ROI in the CSV equals a fresh forward pass of the reloaded files
    changes = pd.read_csv(out / "changes.csv")
    assert set(changes["model"]) == set(models)
    fresh = _fresh_roi_changes(models, clean, written)
    fresh["image"] = fresh["i"].map(dict(enumerate("abc")))
    merged = changes.merge(fresh, on=["image", "model", "roi"])
    assert len(merged) == len(changes) == 3 * 2 * 3
    np.testing.assert_allclose(merged["change"], merged["fresh"], rtol=1e-4, atol=1e-6)
    # kept fraction and flag are consistent with the written objective
    csv = pd.read_csv(out / "probes.csv")
    np.testing.assert_allclose(csv["kept"], csv["objective_written"] / csv["objective_continuous"], rtol=1e-5)
    assert (csv["flagged"] == (csv["kept"] < 0.9)).all()
    if bits == 16:
        assert csv["kept"].min() > 0.98 and not csv["flagged"].any()


def test_plain_rounding_of_small_l2_probes_is_flagged_and_lattice_keeps_more(tmp_path, real_probe):
    from brainprobe.probes import Drive

    images, models, probes = real_probe
    eps, delta = probes["l2"]
    with pytest.warns(UserWarning, match="export check"):
        plain = export_probe_images(images, delta, source="mnv2_f4", models=models, norm="l2", eps=eps,
                                    objective=Drive("mid"), out=tmp_path / "plain", bits=8, quantise=False)
    assert plain["flagged"].all() and (plain["kept"] < 0.9).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = export_probe_images(images, delta, source="mnv2_f4", models=models, norm="l2", eps=eps,
                                      objective=Drive("mid"), out=tmp_path / "lattice", bits=8, quantise=True, steps=2)
    assert (lattice["kept"].to_numpy() > plain["kept"].to_numpy()).all()
    assert (lattice["budget_used"] <= eps * (1 + 1e-6)).all()


def test_linf_export_keeps_budget(tmp_path, real_probe):
    from brainprobe.probes import Drive

    images, models, probes = real_probe
    eps, delta = probes["linf"]
    summary = export_probe_images(images, delta, source="mnv2_f4", models=models, norm="linf", eps=eps,
                                  objective=Drive("mid"), out=tmp_path / "linf", bits=8, quantise=True, steps=1)
    assert (summary["budget_used"] <= eps + 1e-9).all()
    assert not summary["flagged"].any()


def test_sub_level_linf_probe_doubles_budget_when_rounded_and_survives_only_in_16_bit(tmp_path):
    from brainprobe.probes import Drive, probe

    x = _lattice_images(n=2, size=16, seed=4)
    model = Linear(3 * 16 * 16, seed=2).eval()
    eps = 0.5 / 255
    res = probe(model, x, norm="linf", eps=[eps], objective=Drive("a"), steps=10, progress=False, checks=False)
    kwargs = dict(source="lin", models={"lin": model}, norm="linf", eps=eps, objective=Drive("a"))
    with pytest.warns(UserWarning, match="more than their budget"):
        plain = export_probe_images(x, res.delta[0], out=tmp_path / "plain", bits=8, quantise=False, **kwargs)
    assert plain["over_budget"].all()
    np.testing.assert_allclose(plain["budget_ratio"], 2.0, rtol=1e-6)
    with pytest.warns(UserWarning, match="keep < 90%"):
        lattice = export_probe_images(x, res.delta[0], out=tmp_path / "lattice", bits=8, quantise=True, steps=2, **kwargs)
    assert (lattice["budget_used"] == 0).all() and lattice["flagged"].all() and not lattice["over_budget"].any()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="export check")  # no export check may fire
        deep = export_probe_images(x, res.delta[0], out=tmp_path / "deep", bits=16, quantise=True, steps=0, **kwargs)
    assert not deep["over_budget"].any() and (deep["kept"] > 0.99).all()
    assert read_png(tmp_path / "deep" / "probes" / "img000.png").dtype == np.uint16
