"""Bad input at every entry point (issue 18): one table of cases, one clear line each, nothing overwritten.

Every case is a record in ``CASES``: a CLI command line (run in-process through
``brainprobe.cli.main``, or in a subprocess where the operating system must be involved) or a call
of the public Python API, set up in a fresh ``tmp_path`` that holds the files a user already had.
Each case asserts

- the error: exit code 2 for the CLI, a ``brainprobe.errors`` class for the API;
- the message: exactly one line (``error: ...`` on stderr for the CLI), containing the offending
  value and what to do (the ``says`` fragments);
- no traceback (the CLI's stderr and stdout);
- nothing on disk changed: every file under ``tmp_path`` keeps its bytes and mtime, and no file
  appears (no temporary or half-written output is left behind).

Inputs are tiny (8 x 8 images, a 4-target module) so the module runs in well under a minute on
two cores; the one case that needs a zoo model to start a full command under a file-size limit
is marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from torch import nn

import brainprobe as bp
from brainprobe.cli import main
from brainprobe.errors import BrainprobeError, ConfigError, DataError, ModelError, OutputError, WeightsError

# ------------------------------------------------------------------------------------- inputs


def _images(n: int = 6, size: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 N x size x size x 3."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _responses(n: int = 6, t: int = 4, seed: int = 1) -> np.ndarray:
    """float N x T."""
    return np.random.default_rng(seed).normal(size=(n, t))


def _with_nan(a: np.ndarray, where: tuple[int, int] = (2, 1), value: float = np.nan) -> np.ndarray:
    out = a.copy()
    out[where] = value
    return out


class Tiny(nn.Module):
    """A response model: float N x 3 x 8 x 8 in [0, 1] -> N x 4 responses in ROIs ``a`` and ``b``."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(3 * 8 * 8, 4)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(4, 3 * 8 * 8, generator=gen) * 0.05)
        self.targets = pd.DataFrame({"target": ["t0", "t1", "t2", "t3"], "roi": ["a", "a", "b", "b"]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def _x(n: int = 3) -> torch.Tensor:
    """Probe images, float N x 3 x 8 x 8 in [0, 1]."""
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def _probe_kw(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(norm="l2", eps=[0.1], objective="drive:a", steps=1, progress=False, checks=False)
    base.update(kw)
    return base


def _dataset_file(tmp: Path, name: str = "ds.nc") -> Path:
    return bp.Dataset(_images(), _responses()).save(tmp / name)


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _file(tmp: Path, name: str, data: bytes = b"the user's own bytes\n") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _run_folder(tmp: Path, *, results: str = "ok", config_sha256: str = "0" * 64) -> Path:
    """A run folder as `brainprobe run` leaves it: manifest.json and results.nc (``ok``,
    ``truncated`` or ``newer``: written by a future brainprobe)."""
    run = tmp / "run"
    run.mkdir()
    _file(run, "manifest.json", json.dumps({"config_sha256": config_sha256, "config_source": "old.yaml"}).encode())
    version = "99.0.0" if results == "newer" else bp.__version__
    findings = xr.Dataset({"finding": ("row", ["x"])})
    xr.Dataset(attrs={"brainprobe_version": version, "dataset_labels": "d", "simulated": 1}).to_netcdf(
        run / "results.nc", engine="h5netcdf"
    )
    findings.to_netcdf(run / "results.nc", mode="a", group="findings", engine="h5netcdf")
    if results == "truncated":
        _truncated(run / "results.nc")
    _file(run, "report.html", b"<html>the previous report</html>")
    return run


def _config(tmp: Path, **changes: Any) -> Path:
    """A valid small run config (offline models) writing to tmp/run, with ``changes`` applied."""
    cfg: dict[str, Any] = {
        "name": "bad-input",
        "seed": 0,
        "threads": 1,
        "device": "cpu",
        "dataset": {"kind": "simulated", "brains": [{"backbone": "efficientnet_lite0", "seed": 0, "targets_per_roi": 4}],
                    "n_images": 24, "resolution": 32, "repeats": 2},
        "models": [{"name": "mobilenet_v2", "layer": "features.10"}],
        "probes": {"norms": ["l2"], "eps": {"l2": [0.1, 0.5]}, "objective": "drive:sim-mid", "steps": 2, "n_images": 4},
        "analyses": {"include": ["sensitivity"], "n_boot": 20},
        "output": {"dir": str(tmp / "run"), "cache_dir": str(tmp / "cache")},
    }
    for key, value in changes.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class _RunsCode:
    """Pickles to a call of os.system: a weights file that would run code when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _code_weights(tmp: Path) -> Path:
    path = tmp / "weights_with_code.pt"
    with open(path, "wb") as f:
        pickle.dump({"features.0.0.weight": _RunsCode(tmp / "code_ran")}, f)
    return path


# ------------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``setup(tmp)`` writes the user's files and returns the argv (CLI) or a zero-argument callable
    (API). ``says``: fragments the one-line message must contain (the value, what to do).
    ``fsize``: run the CLI in a subprocess with RLIMIT_FSIZE set to this many bytes (a full disk).
    """

    name: str
    kind: str  # "cli" or "api"
    setup: Callable[[Path], Any]
    says: tuple[str, ...]
    error: type[BrainprobeError] | None = None
    fsize: int | None = None
    marks: tuple[Any, ...] = field(default=())


def cli(name: str, argv: Callable[[Path], list[str]], *says: str, fsize: int | None = None, marks: tuple = ()) -> Case:
    return Case(name, "cli", argv, says, None, fsize, marks)


def api(name: str, error: type[BrainprobeError], call: Callable[[Path], Callable[[], Any]], *says: str,
        marks: tuple = ()) -> Case:
    return Case(name, "api", call, says, error, None, marks)


def _p(tmp: Path, *parts: str) -> str:
    return str(tmp.joinpath(*parts))


_HAS_PROC = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a read-only file system)")

CASES: list[Case] = [
    # ---------------------------------------------------------------- CLI: usage errors (click/typer)
    cli("simulate n-images 0", lambda t: ["data", "simulate", "--out", _p(t, "s.nc"), "--n-images", "0"],
        "--n-images", "greater than or equal to 4", "--help"),
    cli("simulate n-images not a number", lambda t: ["data", "simulate", "--out", _p(t, "s.nc"), "--n-images", "abc"],
        "--n-images", "valid integer"),
    cli("simulate repeats 0", lambda t: ["data", "simulate", "--out", _p(t, "s.nc"), "--repeats", "0"], "--repeats"),
    cli("simulate unknown option", lambda t: ["data", "simulate", "--out", _p(t, "s.nc"), "--bogus"], "--bogus"),
    cli("simulate missing --out", lambda t: ["data", "simulate"], "--out"),
    cli("unknown command", lambda t: ["frobnicate"], "frobnicate"),
    cli("fit missing --data", lambda t: ["fit"], "--data"),
    cli("fit --pca not a number", lambda t: ["fit", "--data", "simulated", "--pca", "many"], "--pca"),
    cli("export-stimuli --bits not a number", lambda t: ["export-stimuli", _p(t), "--model", "m", "--eps", "0.1",
                                                         "--bits", "x"], "--bits"),
    # ---------------------------------------------------------------- CLI: data
    cli("simulate onto an existing file", lambda t: ["data", "simulate", "--out", str(_file(t, "s.nc"))],
        "s.nc", "--force"),
    cli("simulate into a folder that is a file", lambda t: ["data", "simulate", "--out", str(_file(t, "afile") / "s.nc")],
        "afile", "is a file, not a folder"),
    cli("simulate into a missing folder", lambda t: ["data", "simulate", "--out", _p(t, "nowhere", "s.nc")],
        "nowhere", "does not exist"),
    cli("simulate unknown brain", lambda t: ["data", "simulate", "--out", _p(t, "s.nc"), "--brain", "nope_net"],
        "nope_net", "mobilenet_v2"),
    cli("data info missing file", lambda t: ["data", "info", _p(t, "missing.nc")], "missing.nc", "not found"),
    cli("data info garbage file", lambda t: ["data", "info", str(_file(t, "garbage.nc"))],
        "garbage.nc", "not a readable netCDF"),
    cli("data info truncated dataset", lambda t: ["data", "info", str(_truncated(_dataset_file(t)))],
        "ds.nc", "not a readable netCDF"),
    cli("simulate with a full disk keeps the old file",
        lambda t: ["data", "simulate", "--out", str(_file(t, "s.nc")), "--force", "--brain", "mobilenet_v2",
                   "--n-images", "4", "--resolution", "16", "--targets-per-roi", "1"],
        "s.nc", "File too large", "free disk space", fsize=4096, marks=(pytest.mark.slow,)),
    # ---------------------------------------------------------------- CLI: zoo
    cli("models unknown name", lambda t: ["models", "nope_net"], "nope_net", "mobilenet_v2"),
    cli("weights fetch unknown model", lambda t: ["weights", "fetch", "nope_net"], "nope_net", "valid names"),
    cli("weights fetch without network", lambda t: ["weights", "fetch", "resnet18"], "resnet18", "--weights PATH"),
    cli("weights check garbage file", lambda t: ["weights", "check", "mobilenet_v2", "--weights", str(_file(t, "w.pt"))],
        "w.pt", "mobilenet_v2"),
    cli("weights check missing file", lambda t: ["weights", "check", "mobilenet_v2", "--weights", _p(t, "none.pt")],
        "none.pt", "not found"),
    # ---------------------------------------------------------------- CLI: fit
    cli("fit missing data file", lambda t: ["fit", "--data", _p(t, "missing.nc")], "missing.nc", "'simulated'"),
    cli("fit garbage data file", lambda t: ["fit", "--data", str(_file(t, "garbage.nc"))], "garbage.nc",
        "not a readable netCDF"),
    cli("fit no models", lambda t: ["fit", "--data", "simulated", "--models", ","], "--models", "at least one"),
    cli("fit unknown model", lambda t: ["fit", "--data", "simulated", "--models", "mobilenet_v2,nope_net"],
        "nope_net", "valid names"),
    cli("fit unknown layer", lambda t: ["fit", "--data", str(_dataset_file(t)), "--models", "mobilenet_v2",
                                        "--layer", "features.99"], "features.99", "valid layers"),
    # ---------------------------------------------------------------- CLI: run / demo
    cli("run missing config", lambda t: ["run", _p(t, "missing.yaml")], "missing.yaml", "not found"),
    cli("run config is not YAML", lambda t: ["run", str(_file(t, "c.yaml", b"models: [unclosed\n"))], "c.yaml"),
    cli("run unknown key", lambda t: ["run", str(_config(t, **{"probes.stepz": 3}))], "probes.stepz", "unknown key"),
    cli("run eps zero", lambda t: ["run", str(_config(t, **{"probes.eps": {"l2": [0, 0.5]}}))], "probes.eps", "positive"),
    cli("run unknown model", lambda t: ["run", str(_config(t, models=[{"name": "nope_net"}]))], "nope_net"),
    cli("run into a folder of a different config",
        lambda t: (_run_folder(t), ["run", str(_config(t))])[1], "run", "different config", "--replace"),
    cli("run bad --device", lambda t: ["run", str(_config(t)), "--device", "tpu9"], "device", "tpu9"),
    cli("demo bad --executor", lambda t: ["demo", "--executor", "nope", "--output", _p(t, "demo")],
        "executor.kind", "nope"),
    cli("demo output under a file", lambda t: ["demo", "--output", str(_file(t, "afile") / "run")],
        "afile", "is a file, not a folder"),
    # ---------------------------------------------------------------- CLI: report / export-stimuli
    cli("report missing run folder", lambda t: ["report", _p(t, "norun")], "norun", "run folder not found"),
    cli("report truncated results.nc", lambda t: ["report", str(_run_folder(t, results="truncated"))],
        "results.nc", "re-run"),
    cli("report results.nc from a newer version", lambda t: ["report", str(_run_folder(t, results="newer"))],
        "results.nc", "99.0.0", "upgrade brainprobe"),
    cli("report bad --gallery-eps", lambda t: ["report", str(_run_folder(t)), "--gallery-eps", "abc"],
        "--gallery-eps", "abc"),
    cli("export-stimuli eps not a number", lambda t: ["export-stimuli", str(_run_folder(t)), "--model", "m",
                                                      "--eps", "two"], "--eps", "'two'"),
    cli("export-stimuli eps zero", lambda t: ["export-stimuli", str(_run_folder(t)), "--model", "m", "--eps", "0"],
        "--eps", "> 0"),
    cli("export-stimuli eps negative", lambda t: ["export-stimuli", str(_run_folder(t)), "--model", "m",
                                                  "--eps", "-1/255"], "--eps", "-1/255"),
    cli("export-stimuli bits 12", lambda t: ["export-stimuli", str(_run_folder(t)), "--model", "m", "--eps", "0.1",
                                             "--bits", "12"], "--bits", "12"),
    cli("export-stimuli run without kept probes", lambda t: ["export-stimuli", str(_run_folder(t)), "--model", "m",
                                                             "--eps", "0.1"], "index.json", "keep_deltas"),
    # ---------------------------------------------------------------- CLI: robustify
    cli("robustify eps not a number", lambda t: ["robustify", "mobilenet_v2", "--eps", "abc", "--steps", "1",
                                                 "--out", _p(t, "r")], "--eps", "abc"),
    cli("robustify eps inf", lambda t: ["robustify", "mobilenet_v2", "--eps", "inf", "--steps", "1",
                                        "--out", _p(t, "r")], "--eps", "finite"),
    cli("robustify no budget", lambda t: ["robustify", "mobilenet_v2", "--out", _p(t, "r")], "--steps", "--time"),
    cli("robustify unknown model", lambda t: ["robustify", "nope_net", "--steps", "1", "--out", _p(t, "r")],
        "nope_net"),
    cli("robustify evaluate unknown model", lambda t: ["robustify", "--evaluate", "nope_net"], "nope_net"),
    # ---------------------------------------------------------------- API: load_backbone
    api("load_backbone unknown", ModelError, lambda t: lambda: bp.load_backbone("nope_net"), "nope_net", "mobilenet_v2"),
    api("load_backbone missing weights", WeightsError,
        lambda t: lambda: bp.load_backbone("mobilenet_v2", weights=t / "none.pt"), "none.pt", "not found"),
    api("load_backbone garbage weights", WeightsError,
        lambda t: (lambda p: lambda: bp.load_backbone("mobilenet_v2", weights=p))(_file(t, "garbage.pt")),
        "garbage.pt", "mobilenet_v2"),
    api("load_backbone refuses pickled code", WeightsError,
        lambda t: (lambda p: lambda: bp.load_backbone("mobilenet_v2", weights=p))(_code_weights(t)),
        "weights_with_code.pt", "safely"),
    # ---------------------------------------------------------------- API: Dataset
    api("Dataset empty", DataError, lambda t: lambda: bp.Dataset(_images(0), _responses(0)), "no images"),
    api("Dataset image/response count mismatch", DataError, lambda t: lambda: bp.Dataset(_images(6), _responses(5)),
        "6 images", "5 images"),
    api("Dataset duplicate image ids", DataError,
        lambda t: lambda: bp.Dataset(_images(), _responses(), image_ids=["a", "b", "c", "a", "e", "f"]),
        "unique", "'a'"),
    api("Dataset float images outside [0, 1]", DataError,
        lambda t: lambda: bp.Dataset(_images().astype(np.float32), _responses()), "[0, 1]", "255"),
    api("Dataset NaN in images", DataError,
        lambda t: lambda: bp.Dataset(_with_nan(_images().astype(np.float32) / 255, (0, 1, 1, 0)), _responses()),
        "1 NaN or Inf", "finite"),
    api("Dataset two channels", DataError, lambda t: lambda: bp.Dataset(_images()[..., :2], _responses()),
        "channels", "got 2"),
    api("Dataset int64 images", DataError, lambda t: lambda: bp.Dataset(_images().astype(np.int64), _responses()),
        "int64", "uint8"),
    api("Dataset text responses", DataError,
        lambda t: lambda: bp.Dataset(_images(), np.full((6, 4), "high")), "responses must be numbers", "'high'"),
    api("Dataset every response NaN", DataError,
        lambda t: lambda: bp.Dataset(_images(), np.full((6, 4), np.nan)), "NaN or Inf", "24 of 24"),
    api("Dataset responses 3-D", DataError,
        lambda t: lambda: bp.Dataset(_images(), _responses().reshape(6, 2, 2)), "N x T", "(6, 2, 2)"),
    api("Dataset unknown ROI", DataError,
        lambda t: lambda: bp.Dataset(_images(), _responses()).roi_index("V9"), "'V9'", "all"),
    api("Dataset.load truncated file", DataError,
        lambda t: (lambda p: lambda: bp.Dataset.load(p))(_truncated(_dataset_file(t))), "ds.nc", "not a readable"),
    api("Dataset.save into a folder that is a file", OutputError,
        lambda t: (lambda f: lambda: bp.Dataset(_images(), _responses()).save(f / "x.nc"))(_file(t, "afile")),
        "afile", "ENOTDIR"),
    api("Dataset.save on a read-only file system", OutputError,
        lambda t: lambda: bp.Dataset(_images(), _responses()).save("/proc/brainprobe-bad-input.nc"),
        "/proc/brainprobe-bad-input.nc", marks=(_HAS_PROC,)),
    # ---------------------------------------------------------------- API: loaders
    api("load_generic images not a path or array", DataError,
        lambda t: lambda: bp.load_generic(42, _responses()), "images must be", "int"),
    api("load_generic missing images", DataError,
        lambda t: lambda: bp.load_generic(t / "none", _responses()), "none", "not found"),
    api("load_generic count mismatch", DataError,
        lambda t: lambda: bp.load_generic(_images(6), _responses(5)), "5 response rows", "6 images"),
    api("load_generic responses 1-D", DataError,
        lambda t: lambda: bp.load_generic(_images(6), np.zeros(6)), "N x T or N x R x T", "(6,)"),
    api("load_generic float images outside [0, 1]", DataError,
        lambda t: lambda: bp.load_generic(_images().astype(np.float64), _responses()), "[0, 1]", "255"),
    api("load_generic every response NaN", DataError,
        lambda t: lambda: bp.load_generic(_images(), np.full((6, 4), np.nan)), "every response is NaN"),
    api("load_generic responses .txt", DataError,
        lambda t: (lambda p: lambda: bp.load_generic(_images(), p))(_file(t, "r.txt")), "r.txt", ".npy"),
    api("load_generic corrupt .npy", DataError,
        lambda t: (lambda p: lambda: bp.load_generic(_images(), p))(_file(t, "r.npy")), "r.npy", "unreadable"),
    api("load_nsd missing root", DataError, lambda t: lambda: bp.load_nsd(t / "nsd", 1), "nsd", "not found"),
    api("load_algonauts bad subject", DataError, lambda t: lambda: bp.load_algonauts(t, 99), "99", "subj01"),
    # ---------------------------------------------------------------- API: fit_encoder
    api("fit_encoder not a Dataset", DataError, lambda t: lambda: bp.fit_encoder("mobilenet_v2", "data.nc"),
        "Dataset", "str", "load_generic"),
    api("fit_encoder unknown model", ModelError,
        lambda t: lambda: bp.fit_encoder("nope_net", bp.Dataset(_images(), _responses())), "nope_net"),
    api("fit_encoder unknown layer", ModelError,
        lambda t: lambda: bp.fit_encoder("mobilenet_v2", bp.Dataset(_images(), _responses()), layer="features.99"),
        "features.99", "valid layers"),
    api("fit_encoder single image", DataError,
        lambda t: lambda: bp.fit_encoder("mobilenet_v2", bp.Dataset(_images(1), _responses(1))), "0 test images", "3"),
    # ---------------------------------------------------------------- API: probe / minimal_eps
    api("probe eps a word", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps="abc")),
        "eps", "'abc'", "2/255"),
    api("probe eps zero", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=0)), "eps", "> 0"),
    api("probe eps negative", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=[0.1, -0.5])),
        "eps[1]", "-0.5"),
    api("probe eps NaN", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=float("nan"))),
        "eps", "finite"),
    api("probe eps inf", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=[float("inf")])),
        "eps", "finite"),
    api("probe eps None", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=None)),
        "eps", "None"),
    api("probe eps empty", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(eps=[])),
        "eps is empty"),
    api("probe zero steps", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(steps=0)),
        "steps", "got 0"),
    api("probe unknown norm", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(norm="l3")),
        "'l3'", "linf"),
    api("probe unknown ROI", ConfigError, lambda t: lambda: bp.probe(Tiny(), _x(), **_probe_kw(objective="drive:V9")),
        "'V9'", "a, b"),
    api("probe images outside [0, 1]", DataError, lambda t: lambda: bp.probe(Tiny(), _x() * 255, **_probe_kw()),
        "[0, 1]", "255"),
    api("probe NaN images", DataError,
        lambda t: lambda: bp.probe(Tiny(), _x().index_put_((torch.tensor([1]),), torch.tensor(float("nan"))),
                                   **_probe_kw()), "NaN", "image 1"),
    api("probe images without a batch axis", DataError, lambda t: lambda: bp.probe(Tiny(), _x()[0], **_probe_kw()),
        "N x 3 x H x W", "(3, 8, 8)"),
    api("probe no images", DataError, lambda t: lambda: bp.probe(Tiny(), _x()[:0], **_probe_kw()), "empty"),
    api("probe images at the wrong resolution", DataError,
        lambda t: lambda: bp.probe(Tiny(), torch.rand(2, 3, 16, 16), **_probe_kw()), "(2, 3, 16, 16)", "resolution"),
    api("minimal_eps grid a word", ConfigError,
        lambda t: lambda: bp.minimal_eps(Tiny(), _x(), norm="l2", objective="drive:a", eps_grid="abc", progress=False),
        "eps_grid", "'abc'"),
    api("minimal_eps grid with zero", ConfigError,
        lambda t: lambda: bp.minimal_eps(Tiny(), _x(), norm="l2", objective="drive:a", eps_grid=[0, 0.1],
                                         progress=False), "eps_grid[0]", "> 0"),
    api("minimal_eps grid decreasing", ConfigError,
        lambda t: lambda: bp.minimal_eps(Tiny(), _x(), norm="l2", objective="drive:a", eps_grid=[0.2, 0.1],
                                         progress=False), "increasing", "0.2"),
    api("minimal_eps zero steps", ConfigError,
        lambda t: lambda: bp.minimal_eps(Tiny(), _x(), norm="l2", objective="drive:a", eps_grid=[0.1], steps=0,
                                         progress=False), "steps >= 1"),
    # ---------------------------------------------------------------- API: analyses and findings
    api("sensitivity no probes", ConfigError, lambda t: lambda: bp.sensitivity({"m": Tiny()}, _x(), {}),
        "probes is empty", "ProbeResult"),
    api("sensitivity images outside [0, 1]", ConfigError,
        lambda t: lambda: bp.sensitivity({"m": Tiny()}, _x() * 255, {"m": None}), "[0, 1]", "rescale"),
    api("transfer no probes", ConfigError, lambda t: lambda: bp.transfer({"m": Tiny()}, _x(), {}), "probes is empty"),
    api("controversial no probes", ConfigError, lambda t: lambda: bp.controversial({"m": Tiny()}, _x(), {}),
        "controversial needs probes"),
    api("l2_linf no probes", ConfigError, lambda t: lambda: bp.l2_linf({"m": Tiny()}, _x(), {}), "probes is empty"),
    api("linearity no probes", ConfigError, lambda t: lambda: bp.linearity({"m": Tiny()}, _x(), {}), "probes is empty"),
    api("coding_axes images outside [0, 1]", ConfigError,
        lambda t: lambda: bp.coding_axes({"m": Tiny()}, _x() * 255), "[0, 1]"),
    api("semantics images outside [0, 1]", ConfigError,
        lambda t: lambda: bp.semantics(_x() * 255, {"m": None}), "[0, 1]"),
    api("discriminability not a dict", ConfigError, lambda t: lambda: bp.discriminability("scores"), "str"),
    api("findings not a dict", ConfigError, lambda t: lambda: bp.findings("results.nc"), "str", "{analysis: Dataset}"),
    api("findings empty", ConfigError, lambda t: lambda: bp.findings({}), "empty dict"),
    api("findings entry not a dict", ConfigError, lambda t: lambda: bp.findings({"sensitivity": 3}),
        "results['sensitivity']", "dict"),
    # ---------------------------------------------------------------- API: robustify, pipeline, report
    api("robustify eps a word", ConfigError,
        lambda t: lambda: bp.robustify("mobilenet_v2", eps="abc", steps=1, out_dir=t / "r"), "eps", "'abc'"),
    api("robustify eps zero", ConfigError,
        lambda t: lambda: bp.robustify("mobilenet_v2", eps=0, steps=1, out_dir=t / "r"), "eps", "positive"),
    api("robustify zero steps", ConfigError,
        lambda t: lambda: bp.robustify("mobilenet_v2", steps=0, out_dir=t / "r"), "steps", "got 0"),
    api("robustify unknown norm", ConfigError,
        lambda t: lambda: bp.robustify("mobilenet_v2", norm="l3", steps=1, out_dir=t / "r"), "'l3'", "linf"),
    api("robustify() unknown model", ModelError, lambda t: lambda: bp.robustify("nope_net", steps=1, out_dir=t / "r"),
        "nope_net"),
    api("load_config eps negative", ConfigError,
        lambda t: (lambda p: lambda: bp.load_config(p))(_config(t, **{"probes.eps": {"l2": [-0.1]}})),
        "probes.eps", "positive"),
    api("run_pipeline into a folder of a different config", ConfigError,
        lambda t: (_run_folder(t), (lambda p: lambda: bp.run_pipeline(p))(_config(t)))[1],
        "different config", "replace=True"),
    api("build_report truncated results.nc", DataError,
        lambda t: (lambda r: lambda: bp.build_report(r))(_run_folder(t, results="truncated")), "results.nc", "re-run"),
    api("build_report results.nc from a newer version", DataError,
        lambda t: (lambda r: lambda: bp.build_report(r))(_run_folder(t, results="newer")), "99.0.0", "upgrade"),
    api("export_stimuli missing run folder", DataError,
        lambda t: lambda: bp.export_stimuli(t / "norun", "m", 0.1), "norun", "run folder not found"),
    api("export_stimuli run without kept probes", DataError,
        lambda t: (lambda r: lambda: bp.export_stimuli(r, "m", 0.1))(_run_folder(t)), "index.json", "keep_deltas"),
]


# ------------------------------------------------------------------------------------- checks


def _snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root``: files by (size, mtime_ns, sha256), folders by name."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file():
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[rel] = "folder"
    return out


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: writes past `limit` bytes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def _cli_subprocess(argv: list[str], tmp: Path, fsize: int) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "BRAINPROBE_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "-m", "brainprobe", *argv], capture_output=True, text=True, cwd=tmp,
                         env=env, preexec_fn=_limit_file_size(fsize), timeout=300)
    return res.returncode, res.stdout, res.stderr


def _cli_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.name.replace(" ", "_"), marks=case.marks)


def test_the_table_is_large_and_covers_every_entry_point() -> None:
    assert len(CASES) >= 45
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
    cli_names = [c.name for c in CASES if c.kind == "cli"]
    for command in ("simulate", "data info", "models", "weights fetch", "weights check", "fit", "run", "demo",
                    "report", "export-stimuli", "robustify"):
        assert any(n.startswith(command) for n in cli_names), command
    names = " ".join(c.name for c in CASES if c.kind == "api")
    for fn in ("load_backbone", "fit_encoder", "probe", "minimal_eps", "load_generic", "load_nsd", "load_algonauts",
               "Dataset", "sensitivity", "transfer", "controversial", "coding_axes", "l2_linf", "linearity",
               "semantics", "discriminability", "findings", "robustify", "export_stimuli", "build_report"):
        assert fn in names, fn


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINPROBE_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)
    action = case.setup(tmp_path)
    before = _snapshot(tmp_path)
    if case.kind == "cli":
        if case.fsize is not None:
            code, out, err = _cli_subprocess(action, tmp_path, case.fsize)
        else:
            code, out, err = _cli_in_process(action, capsys)
        assert "Traceback" not in out + err, err
        assert code == 2, (code, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        message = lines[0]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(BrainprobeError) as info:
                action()
        assert isinstance(info.value, case.error), f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
        assert message.strip() and "\n" not in message, message
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert _snapshot(tmp_path) == before, "a file the user had changed, or a new file was left behind"
    assert not (tmp_path / "code_ran").exists()


# ------------------------------------------------------------------------------------- what now works


def test_load_generic_takes_arrays() -> None:
    """uint8 N x H x W x 3 or float [0, 1] images with N x T or N x R x T responses."""
    images, resp = _images(), _responses()
    ds = bp.load_generic(images, resp)
    assert np.array_equal(ds.stimuli, images) and np.allclose(ds.responses, resp)
    assert ds.attrs["images"] == "images array" and ds.n_targets == 4
    as_float = bp.load_generic(images.astype(np.float32) / 255.0, resp)
    assert np.array_equal(as_float.stimuli, images)
    trials = np.stack([resp, resp + 1.0], axis=1)  # N x R x T
    with_trials = bp.load_generic(images, trials)
    assert with_trials.n_repeats == 2 and np.allclose(with_trials.responses, resp + 0.5)


def test_nan_responses_follow_the_documented_masking_rule() -> None:
    """A target with a NaN (or Inf) response is dropped, with a warning that counts what and where."""
    resp = _with_nan(_with_nan(_responses(), (2, 1)), (4, 1), np.inf)
    with pytest.warns(UserWarning) as caught:
        ds = bp.load_generic(_images(), resp)
    message = " ".join(str(w.message) for w in caught)
    assert "dropped 1 of 4 targets" in message and "2 values in 2 of 6 images" in message and "t00001" in message
    assert ds.n_targets == 3 and np.isfinite(ds.responses).all()
    assert list(ds.targets["target"]) == ["t00000", "t00002", "t00003"]
    with pytest.warns(UserWarning, match="dropped 1 of 4 targets"):
        direct = bp.Dataset(_images(), resp)
    assert np.array_equal(direct.responses, ds.responses)


def test_probe_takes_fraction_strings_like_the_cli_and_configs() -> None:
    res = bp.probe(Tiny(), _x(2), **_probe_kw(eps=["1/255", 0.1]))
    assert torch.allclose(res.eps, torch.tensor([1 / 255, 0.1]))
