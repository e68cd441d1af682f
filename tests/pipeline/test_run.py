"""Integration: a tiny real study (simulated brain, two small models, 64 px) run end to end.

One reference run is shared by the module; every other run of the same config (from cache,
after a kill -9, with a corrupted shard, with a fresh cache, on Ray) must give a results.nc
byte-identical to it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from brainprobe.pipeline import run_pipeline
from brainprobe.pipeline.config import RunConfig

from .conftest import tiny_config, write_config

N_FITS, N_PROBE_SHARDS = 2, 8  # 2 models; 2 models x 2 norms x 2 chunks of 4 images


def _env(home: Path) -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINPROBE_HOME", str(home))
    mp.setenv("BRAINPROBE_PROGRESS", "0")
    return mp


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.getbasetemp() / "brainprobe-home"
    h.mkdir(exist_ok=True)
    return h


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, home: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("reference")
    cfg = tiny_config(base)
    mp = _env(home)
    try:
        run_dir = run_pipeline(RunConfig.model_validate(cfg))
    finally:
        mp.undo()
    return {"base": base, "cfg": cfg, "run_dir": run_dir, "bytes": (run_dir / "results.nc").read_bytes()}


def _differences(a: Path, b: Path) -> list[str]:
    """Variables that differ between two results.nc files (for a readable failure message)."""
    import numpy as np
    import xarray as xr

    out = []
    ta, tb = xr.open_datatree(a, engine="h5netcdf"), xr.open_datatree(b, engine="h5netcdf")
    try:
        for node in ta.subtree:
            if not node.has_data:
                continue
            da, db = node.to_dataset(inherit=False), tb[node.path].to_dataset(inherit=False)
            for v in da.variables:
                x, y = da[v].values, db[v].values
                same = np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
                if not same:
                    diff = np.nanmax(np.abs(x - y)) if x.dtype.kind in "fc" else "?"
                    out.append(f"{node.path}:{v} (max abs diff {diff})")
            if da.attrs != db.attrs:
                out.append(f"{node.path}: attrs")
    finally:
        ta.close()
        tb.close()
    return out


def _assert_identical(run_dir: Path, reference: dict[str, Any]) -> None:
    got = (run_dir / "results.nc").read_bytes()
    if got != reference["bytes"]:
        diffs = _differences(reference["run_dir"] / "results.nc", run_dir / "results.nc")
        pytest.fail(f"results.nc differs from the reference run: {diffs[:10]}")


def _manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "manifest.json").read_text())


def _run(cfg: dict[str, Any], home: Path) -> Path:
    mp = _env(home)
    try:
        return run_pipeline(RunConfig.model_validate(cfg))
    finally:
        mp.undo()


def _with(cfg: dict[str, Any], base: Path, **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(cfg))
    out["output"] = {"dir": str(base / "run"), "cache_dir": str(base / "cache"), "report": False}
    for k, v in changes.items():
        out[k] = v
    return out


def test_run_folder_contents(reference: dict[str, Any]) -> None:
    run_dir: Path = reference["run_dir"]
    for name in ("manifest.json", "results.nc", "report.html", "tables/findings.csv", "probes/index.json"):
        assert (run_dir / name).is_file(), name
    man = _manifest(run_dir)
    assert man["stages"]["data"] == {"computed": 1, "cached": 0, "seconds": man["stages"]["data"]["seconds"]}
    assert man["stages"]["fit"]["computed"] == N_FITS
    assert man["stages"]["probes"]["computed"] == N_PROBE_SHARDS
    assert man["stages"]["transfer"]["computed"] == N_PROBE_SHARDS
    assert man["threads"] == 1 and man["seed"] == 0 and man["device"] == "cpu"
    assert man["image_chunk"] == 4 and len(man["datasets"]["sim-efficientnet_lite0"]["probe_chunks"]) == 2
    for m in ("mobilenet_v2", "efficientnet_lite0"):
        assert len(man["models"][m]["weights_sha256"]) == 64
    assert man["versions"]["torch"] and man["config"]["probes"]["steps"] == 3
    import xarray as xr

    tree = xr.open_datatree(run_dir / "results.nc", engine="h5netcdf")
    try:
        assert tree.attrs["simulated"] == 1 and tree.attrs["dataset_labels"] == "sim-efficientnet_lite0"
        groups = set(tree["sim-efficientnet_lite0"].children)
        assert {"predictivity", "sensitivity"} <= groups
        assert "findings" in tree.children
        sens = tree["sim-efficientnet_lite0/sensitivity"].to_dataset()
        assert list(sens["model"].values) == ["mobilenet_v2", "efficientnet_lite0"]
        assert float(sens["curve"].sel(norm="l2").max()) > 0
    finally:
        tree.close()
    index = json.loads((run_dir / "probes" / "index.json").read_text())
    entry = index["datasets"]["sim-efficientnet_lite0"]
    import numpy as np

    delta = np.load(run_dir / "probes" / entry["models"]["mobilenet_v2"]["norms"]["l2"]["file"])
    assert delta.dtype == np.float16 and delta.shape[:2] == (2, 2)  # E x keep_deltas
    norms = np.sqrt((delta.astype(np.float64) ** 2).reshape(2, 2, -1).sum(-1))
    assert np.all(norms <= np.array([0.1, 0.5])[:, None] * 1.01)


def test_cache_hit_recomputes_nothing(reference: dict[str, Any], home: Path) -> None:
    cfg = reference["cfg"]
    run_dir = _run(cfg, home)
    stages = _manifest(run_dir)["stages"]
    for stage in ("data", "fit", "probes", "transfer", "analyses", "report"):
        assert stages[stage]["computed"] == 0, (stage, stages)
    assert stages["probes"]["cached"] == N_PROBE_SHARDS and stages["fit"]["cached"] == N_FITS
    _assert_identical(run_dir, reference)


def test_changing_one_model_recomputes_only_what_depends_on_it(reference: dict[str, Any], home: Path,
                                                             tmp_path: Path) -> None:
    shutil.copytree(reference["base"] / "cache", tmp_path / "cache")
    models = [{"name": "mobilenet_v2", "layer": "features.10"}, {"name": "efficientnet_lite0", "layer": "_blocks.4"}]
    cfg = _with(reference["cfg"], tmp_path, models=models)
    stages = _manifest(_run(cfg, home))["stages"]
    assert stages["data"] == {**stages["data"], "computed": 0, "cached": 1}
    assert (stages["fit"]["computed"], stages["fit"]["cached"]) == (1, 1)
    half = N_PROBE_SHARDS // 2
    assert (stages["probes"]["computed"], stages["probes"]["cached"]) == (half, half)
    # every transfer shard involves the changed model (as source or as receiver)
    assert stages["transfer"]["computed"] == N_PROBE_SHARDS


def test_corrupted_shard_is_detected_and_recomputed(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    shutil.copytree(reference["base"] / "cache", tmp_path / "cache")
    shard = sorted((tmp_path / "cache" / "probes").iterdir())[0]
    f = shard / "delta.npy"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    cfg = _with(reference["cfg"], tmp_path)
    with pytest.warns(UserWarning, match="fails its checksum"):
        run_dir = _run(cfg, home)
    stages = _manifest(run_dir)["stages"]
    assert (stages["probes"]["computed"], stages["probes"]["cached"]) == (1, N_PROBE_SHARDS - 1)
    assert stages["transfer"]["computed"] == 0
    _assert_identical(run_dir, reference)


@pytest.mark.slow
def test_same_seed_fresh_cache_identical(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    run_dir = _run(_with(reference["cfg"], tmp_path), home)
    assert _manifest(run_dir)["stages"]["probes"]["computed"] == N_PROBE_SHARDS
    _assert_identical(run_dir, reference)


@pytest.mark.slow
def test_kill_9_during_probes_then_resume(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    cfg = _with(reference["cfg"], tmp_path)
    path = write_config(tmp_path / "config.yaml", cfg)
    env = {**os.environ, "BRAINPROBE_HOME": str(home), "BRAINPROBE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "brainprobe", "run", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    probes = tmp_path / "cache" / "probes"
    done: list[Path] = []
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            done = [p for p in probes.glob("*") if not p.name.startswith(".")] if probes.is_dir() else []
            if len(done) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = [p for p in probes.glob("*") if not p.name.startswith(".")]
    assert 2 <= len(finished) < N_PROBE_SHARDS, "the kill must land during the probes stage"
    assert not (tmp_path / "run" / "results.nc").exists()
    res = subprocess.run([sys.executable, "-m", "brainprobe", "run", str(path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"run folder {(tmp_path / 'run').resolve()}" in res.stdout
    stages = _manifest(tmp_path / "run")["stages"]
    assert stages["probes"]["cached"] >= len(finished) and stages["probes"]["computed"] <= N_PROBE_SHARDS - len(finished)
    assert not list(probes.glob(".tmp-*"))
    _assert_identical(tmp_path / "run", reference)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_local_cluster_bitwise_identical(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = _with(reference["cfg"], tmp_path, executor={"kind": "ray", "address": None, "workers": 2})
    run_dir = _run(cfg, home)
    man = _manifest(run_dir)
    assert man["executor"]["kind"] == "ray" and man["stages"]["probes"]["computed"] == N_PROBE_SHARDS
    _assert_identical(run_dir, reference)


@pytest.mark.slow
def test_other_thread_count_agrees_within_one_percent(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    """threads change the last bits of every stage (so they are part of every cache key); summaries agree."""
    import numpy as np
    import xarray as xr

    run_dir = _run(_with(reference["cfg"], tmp_path, threads=2), home)
    man = _manifest(run_dir)
    assert man["threads"] == 2 and man["stages"]["fit"]["computed"] == N_FITS
    label = "sim-efficientnet_lite0"
    for group, var in (("sensitivity", "curve"), ("sensitivity", "auc"), ("transfer", "transfer")):
        a = xr.load_dataset(reference["run_dir"] / "results.nc", group=f"{label}/{group}", engine="h5netcdf")[var]
        b = xr.load_dataset(run_dir / "results.nc", group=f"{label}/{group}", engine="h5netcdf")[var]
        x, y = a.values, b.values
        ok = np.isfinite(x)
        assert ok.any()
        # 1% relative; transfer ratios live on a 0..1 scale, so near-zero ones get 0.005 absolute
        np.testing.assert_allclose(y[ok], x[ok], rtol=0.01, atol=0.005, err_msg=f"{group}.{var}")


@pytest.mark.slow
def test_every_analysis_and_finding(reference: dict[str, Any], home: Path, tmp_path: Path) -> None:
    """All analyses on the tiny study (reusing its probes from the cache); findings per brain."""
    import pandas as pd
    import xarray as xr

    shutil.copytree(reference["base"] / "cache", tmp_path / "cache")
    analyses = {"n_boot": 50, "axes_images": 2, "contrast_images": 3, "classifier": "efficientnet_lite1"}
    run_dir = _run(_with(reference["cfg"], tmp_path, analyses=analyses), home)
    stages = _manifest(run_dir)["stages"]
    assert stages["probes"]["computed"] == 0 and stages["analyses"]["computed"] == 1
    tree = xr.open_datatree(run_dir / "results.nc", engine="h5netcdf")
    try:
        groups = set(tree["sim-efficientnet_lite0"].children)
    finally:
        tree.close()
    expected = {"predictivity", "sensitivity", "discriminability", "transfer", "controversial", "axes", "l2_linf",
                "linearity", "semantics"}
    assert expected <= groups, expected - groups
    table = pd.read_csv(run_dir / "tables" / "findings.csv")
    assert set(table["brain"]) == {"sim-efficientnet_lite0"}
    assert len(table) >= 5 and {"finding", "statistic", "value", "ci_low", "ci_high", "held"} <= set(table.columns)
    # both models are standard: the robust findings must say they are untestable, not claim anything
    robust = table[table["finding"].str.contains("robust")]
    assert len(robust) and not robust["held"].astype(bool).any()
