"""The run folder: results.nc, tables/*.csv, kept probe perturbations, manifest.json, report.html."""

from __future__ import annotations

import html
import json
import os
import platform
import subprocess
import time
import uuid
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from brainprobe._hashing import sha256_json
from brainprobe._version import __version__
from brainprobe.pipeline.cache import write_bytes_atomic
from brainprobe.pipeline.config import RunConfig, SimulatedDataset
from brainprobe.pipeline.plan import DatasetPlan, model_info, weights_id
from brainprobe.pipeline.stages import ENCODER_FILE, STAGE_VERSIONS, load_shard, resolve_device

PACKAGES = ("brainprobe", "torch", "torchvision", "numpy", "scipy", "xarray", "h5netcdf", "h5py", "himalaya",
            "pandas", "scikit-learn", "pydantic", "ray")


def config_sha256(config: RunConfig) -> str:
    """sha256 of what determines the results: the config without ``output`` and ``executor``."""
    return sha256_json(config.model_dump(mode="json", exclude={"output", "executor"}))


# ---------------------------------------------------------------------------------- results.nc


def write_results(config: RunConfig, results: dict[str, Any], path: Path) -> None:
    """Write results.nc: groups ``/{label}/{analysis}`` and ``/findings``, atomically.

    ``results`` maps dataset label -> {analysis name -> xarray.Dataset}, plus ``"findings"`` ->
    pandas DataFrame. Equal inputs give byte-identical files (no timestamps are stored).
    """
    import xarray as xr

    labels = [k for k in results if k != "findings"]
    science = config.model_dump(mode="json", exclude={"output", "executor"})
    weights = {m.name: weights_id(m.name, str(m.weights.resolve()) if m.weights else None) for m in config.models}
    versions = {k: v for k, v in _versions().items() if k in ("python", "brainprobe", "torch", "numpy", "xarray",
                                                             "himalaya", "scipy")}
    root = xr.Dataset(attrs={
        "brainprobe_version": __version__,
        "config_sha256": config_sha256(config),
        "simulated": int(isinstance(config.dataset, SimulatedDataset)),
        "dataset_labels": ",".join(labels),
        "title": f"brainprobe results of run {config.name}",
        "config": json.dumps(science, sort_keys=True),
        "seed": config.seed,
        "threads": config.threads,
        "device": resolve_device(config.device),
        "weights_sha256": json.dumps(weights, sort_keys=True),
        "versions": json.dumps(versions, sort_keys=True),
    })
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        root.to_netcdf(tmp, mode="w", engine="h5netcdf")
        for label in labels:
            for name, ds in results[label].items():
                _clean(ds).to_netcdf(tmp, mode="a", group=f"{label}/{name}", engine="h5netcdf")
        findings = results.get("findings")
        if findings is not None:
            fds = xr.Dataset.from_dataframe(findings.reset_index(drop=True).rename_axis("row"))
            _clean(fds).to_netcdf(tmp, mode="a", group="findings", engine="h5netcdf")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _clean(ds: Any) -> Any:
    """netCDF-safe copy: object columns as str, bool as int8, attrs as plain types."""
    ds = ds.copy()
    for name in list(ds.variables):
        v = ds[name]
        if v.dtype == object:
            ds[name] = v.astype(str)
        elif v.dtype == bool:
            ds[name] = v.astype(np.int8)
    ds.attrs = {k: _plain(v) for k, v in ds.attrs.items() if not k.startswith("_")}
    for name in ds.variables:
        ds[name].attrs = {k: _plain(v) for k, v in ds[name].attrs.items()}
    return ds


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, np.integer, np.floating)) for x in v):
        return list(v)
    return json.dumps(v, default=str)


# -------------------------------------------------------------------------------------- tables


def write_tables(results: dict[str, Any], out: Path) -> list[Path]:
    """One CSV per analysis and set of dims (per-image and per-target variables left out), plus findings."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    findings = results.get("findings")
    if findings is not None:
        p = out / "findings.csv"
        write_bytes_atomic(p, findings.to_csv(index=False).encode())
        written.append(p)
    for label, groups in results.items():
        if label == "findings":
            continue
        for name, ds in groups.items():
            by_dims: dict[tuple[str, ...], list[str]] = {}
            for var in ds.data_vars:
                dims = ds[var].dims
                if "image" in dims or "target" in dims or not dims:
                    continue
                by_dims.setdefault(tuple(dims), []).append(str(var))
            for i, (dims, names) in enumerate(sorted(by_dims.items())):
                frame = ds[names].to_dataframe().reset_index()
                suffix = "" if len(by_dims) == 1 else f".{'-'.join(dims)}"
                p = out / f"{label}.{name}{suffix}.csv"
                write_bytes_atomic(p, frame.to_csv(index=False).encode())
                written.append(p)
    return written


# ----------------------------------------------------------------------------- kept perturbations


def keep_deltas(config: RunConfig, plans: list[DatasetPlan], datasets: dict[str, Any], cache_root: str,
                run_dir: Path) -> None:
    """Copy the first ``probes.keep_deltas`` probed images' perturbations (fp16) into ``probes/``.

    Layout (documented in docs/results.md): ``probes/index.json``; per dataset label
    ``probes/<label>/images.npy`` (uint8 K x H x W x 3) and ``probes/<label>/<model>.<norm>.npy``
    (float16 E x K x 3 x H x W).
    """
    k = config.probes.keep_deltas
    root = run_dir / "probes"
    index: dict[str, Any] = {"format": 1, "datasets": {}}
    for plan in plans:
        ds = datasets[plan.label]
        folder = root / plan.label
        folder.mkdir(parents=True, exist_ok=True)
        shards: dict[tuple[str, str], list[Any]] = {}
        for e in plan.probes:
            shards.setdefault((e.model, e.norm), []).append(e)
        image_idx: list[int] = []
        entry: dict[str, Any] = {"models": {}}
        for (model, norm), entries in sorted(shards.items()):
            parts, idx = [], []
            for e in sorted(entries, key=lambda e: e.chunk):
                if len(idx) >= k:
                    break
                take = min(k - len(idx), len(e.task["images"]))
                parts.append(np.asarray(load_shard(cache_root, "probes", e.key, "delta", mmap=True)[:, :take]))
                idx += e.task["images"][:take]
            delta = np.concatenate(parts, axis=1).astype(np.float16)
            name = f"{model}.{norm}.npy"
            _save_npy(folder / name, delta)
            image_idx = idx
            fit = plan.fits[model]
            entry["models"].setdefault(model, {"encoder": str(Path(cache_root) / "fit" / fit.key / ENCODER_FILE),
                                               "norms": {}})
            entry["models"][model]["norms"][norm] = {"file": f"{plan.label}/{name}",
                                                    "eps": [float(x) for x in config.probes.eps[norm]]}
        stimuli = np.asarray(ds.stimuli)[np.asarray(image_idx, dtype=int)]
        _save_npy(folder / "images.npy", stimuli)
        entry["images"] = f"{plan.label}/images.npy"
        entry["image_index"] = [int(i) for i in image_idx]
        entry["image_ids"] = [str(x) for x in np.asarray(ds.image_ids)[np.asarray(image_idx, dtype=int)]]
        entry["objective"] = config.probes.objective
        index["datasets"][plan.label] = entry
    write_bytes_atomic(root / "index.json", json.dumps(index, indent=1).encode())


def _save_npy(path: Path, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------------------- manifest


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
    return res.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def manifest(config: RunConfig, plans: list[DatasetPlan], log: Any, started: float, source: str | None,
             report: dict[str, Any]) -> dict[str, Any]:
    import torch

    device = resolve_device(config.device)
    models = {}
    for m in config.models:
        info = model_info(m.name)
        models[m.name] = {**info, "weights_sha256": weights_id(m.name, str(m.weights.resolve()) if m.weights else None),
                          "layer": plans[0].fits[m.name].task["model"]["layer"] if plans else m.layer}
    datasets = {}
    for p in plans:
        chunks = {}
        for e in p.probes:
            chunks.setdefault(e.chunk, e.task["images"])
        datasets[p.label] = {
            "data_key": p.data.key,
            "brain": p.brain,
            "probe_chunks": [chunks[c] for c in sorted(chunks)],
            "fit_keys": {k: e.key for k, e in p.fits.items()},
        }
    return {
        "brainprobe_version": __version__,
        "config_source": source,
        "config": config.model_dump(mode="json"),
        "config_sha256": config_sha256(config),
        "seed": config.seed,
        "threads": config.threads,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
        "executor": config.executor.model_dump(mode="json"),
        "image_chunk": config.probes.image_chunk,
        "probe_batch_size": config.probes.batch_size,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "models": models,
        "datasets": datasets,
        "stage_versions": STAGE_VERSIONS,
        "stages": log.as_dict(),
        "cache_dir": str(Path(config.cache_dir).resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 2),
        "report": report,
    }


# ------------------------------------------------------------------------------------------ report


def write_report(run_dir: Path) -> dict[str, Any]:
    """report.html by brainprobe.report.build_report; a minimal findings page when it is unavailable."""
    try:
        from brainprobe.report import build_report  # type: ignore[attr-defined]
    except ImportError:
        build_report = None
    if build_report is not None:
        try:
            build_report(run_dir)
            return {"builder": "brainprobe.report.build_report"}
        except Exception as err:  # noqa: BLE001 - keep the computed results; say loudly what failed
            warnings.warn(f"report check: build_report failed ({type(err).__name__}: {err}); "
                          "wrote a minimal report.html instead", stacklevel=2)
            minimal_report(run_dir)
            return {"builder": "minimal", "error": f"{type(err).__name__}: {err}"}
    minimal_report(run_dir)
    return {"builder": "minimal"}


def minimal_report(run_dir: Path) -> Path:
    """A small self-contained report.html: findings table and the run's CSV tables."""
    import pandas as pd

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>brainprobe report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.sim{background:#fd5;padding:6px}</style>",
             "</head><body><h1>brainprobe report</h1>"]
    man = run_dir / "manifest.json"
    if man.is_file():
        m = json.loads(man.read_text())
        if m.get("config", {}).get("dataset", {}).get("kind") == "simulated":
            parts.append("<p class='sim'><b>SIMULATED</b> data: responses come from image-computable model brains.</p>")
    tables = run_dir / "tables"
    findings = tables / "findings.csv"
    if findings.is_file():
        parts.append("<h2>Findings</h2>" + pd.read_csv(findings).to_html(index=False))
    for csv in sorted(tables.glob("*.csv")) if tables.is_dir() else []:
        if csv.name != "findings.csv":
            frame = pd.read_csv(csv)
            parts.append(f"<h3>{html.escape(csv.stem)}</h3>" + frame.head(40).to_html(index=False))
    parts.append("</body></html>")
    path = run_dir / "report.html"
    write_bytes_atomic(path, "\n".join(parts).encode())
    return path


def write_outputs(config: RunConfig, plans: list[DatasetPlan], datasets: dict[str, Any], results: dict[str, Any],
                  run_dir: Path, log: Any, started: float, source: str | None) -> None:
    """results.nc, tables, manifest.json and report.html; the report is rebuilt only when results changed."""
    from brainprobe._hashing import sha256_file

    path = run_dir / "results.nc"
    before = sha256_file(path) if path.is_file() else None
    write_results(config, results, path)
    write_tables(results, run_dir / "tables")
    previous = _read_json(run_dir / "manifest.json").get("report", {})
    unchanged = before == sha256_file(path) and (run_dir / "report.html").is_file() and previous.get("builder")
    # the report reads the manifest: write it first, then again with the report's outcome
    man = manifest(config, plans, log, started, source, previous if unchanged else {})
    write_bytes_atomic(run_dir / "manifest.json", json.dumps(man, indent=1, default=str).encode())
    t0 = time.perf_counter()
    if not config.output.report:
        report: dict[str, Any] = {"builder": None}
        log.add("report", 0, 0, 0.0)
    elif unchanged:
        report = previous
        log.add("report", 0, 1, 0.0)
    else:
        report = write_report(run_dir)
        log.add("report", 1, 0, time.perf_counter() - t0)
    man = manifest(config, plans, log, started, source, report)
    write_bytes_atomic(run_dir / "manifest.json", json.dumps(man, indent=1, default=str).encode())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
