"""``run_validation``: simulate brains -> fit every candidate x readout -> score criteria -> recovery, power, report.

Stages are cached in the pipeline's content-addressed store (``brainprobe.pipeline.cache``):
``validate_data`` (one SIMULATED dataset per brain and seed), ``validate_fit`` (one encoder per
brain x candidate x readout) and ``validate_scores`` (every criterion's scores per brain x
readout). A re-run of an unchanged config reads them back; only the bootstraps are recomputed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from brainprobe._version import __version__
from brainprobe.validation.config import ValidationConfig, check_validation_config, load_validation_config

STAGE_VERSIONS = {"validate_data": 1, "validate_fit": 1, "validate_scores": 2}


def quick_config(config: ValidationConfig) -> ValidationConfig:
    """A few-minute version of ``config``: first two brain families, one seed, fewer images and budgets."""
    data = config.model_dump()
    brains = data["brains"][:2]
    for b in brains:
        b["seeds"] = b["seeds"][:1]
        b["targets_per_roi"] = min(b["targets_per_roi"], 8)
    cands = list(dict.fromkeys([b["backbone"] for b in brains] + data["candidates"]))[:3]
    data.update(brains=brains, candidates=cands, n_images=48, n_boot=100,
                probes={**data["probes"], "n_images": 4, "eps": data["probes"]["eps"][-1:], "steps": 3},
                axes_images=2, power={**data["power"], "n_sim": 100})
    data["output"]["dir"] = Path(str(data["output"]["dir"]) + "-quick")
    return ValidationConfig.model_validate(data)


def config_sha256(config: ValidationConfig) -> str:
    from brainprobe._hashing import sha256_json

    return sha256_json(config.model_dump(mode="json", exclude={"output"}))


def run_validation(config: ValidationConfig | str | Path | None = None, *, source: str | None = None,
                   replace: bool = False, quick: bool = False, echo: Any = None) -> Path:
    """Run a validation and return its run folder.

    Parameters
    ----------
    config
        A ValidationConfig, the path of a YAML config, or None for the shipped default.
    quick
        Shrink the config (:func:`quick_config`) for a first look in a few minutes.
    echo : callable, optional
        Called with progress lines (e.g. ``typer.echo``).

    Returns
    -------
    Path
        Run folder: ``manifest.json``, ``results.nc`` (groups ``/validation/recovery``,
        ``/validation/confusion``, ``/validation/controversial``, ``/validation/power``),
        ``tables/recovery.csv``, ``confusion.csv``, ``controversial.csv``, ``power.csv``,
        ``recovery.txt`` and ``report.html``.
    """
    import torch

    from brainprobe.errors import ConfigError
    from brainprobe.pipeline.cache import Cache
    from brainprobe.validation.power import power_analysis
    from brainprobe.validation.recovery import controversial_recovery, recovery

    say = echo or (lambda s: None)
    if not isinstance(config, ValidationConfig):
        source = source or str(config or "default validate.yaml")
        config = load_validation_config(config)
    else:
        check_validation_config(config, source or "config")
    if quick:
        config = quick_config(config)
    run_dir = Path(config.output.dir)
    mine = config_sha256(config)
    manifest = run_dir / "manifest.json"
    if manifest.is_file() and not replace:
        try:
            theirs = json.loads(manifest.read_text()).get("config_sha256")
        except (OSError, ValueError):
            theirs = "unreadable"
        if theirs != mine:
            raise ConfigError(f"{run_dir}: output.dir holds the results of a different validation config; choose "
                              "another output.dir (--output) or pass --replace")
    started = time.time()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    cache = Cache(config.cache_dir)
    log: dict[str, dict[str, float]] = {}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        cache.root.mkdir(parents=True, exist_ok=True)
        instances = _instances(config, cache, log, say)
    finally:
        torch.set_num_threads(threads_before)
    t0 = time.perf_counter()
    rec, conf = recovery(instances, list(config.criteria), n_boot=config.n_boot, seed=config.seed)
    cont = controversial_recovery(instances, n_boot=config.n_boot, seed=config.seed) \
        if "controversial" in config.criteria else None
    power = power_analysis(instances, config, seed=config.seed) if cont is not None else None
    log["recovery"] = {"computed": 1, "cached": 0, "seconds": round(time.perf_counter() - t0, 3)}
    groups = {"recovery": rec, "confusion": conf}
    if cont is not None:
        groups.update(controversial=cont, power=power)
    _write(config, groups, run_dir, log, started, source, mine)
    return run_dir


def _instances(config: ValidationConfig, cache: Any, log: dict[str, dict[str, float]], say: Any) -> list[Any]:
    from brainprobe.validation.recovery import Instance

    out = []
    for b in config.brains:
        for s in b.seeds:
            data_key, dataset = _data(config, b, s, cache, log)
            brain = _brain(b, s, config.device).scale_from(dataset)
            for ro in config.readouts:
                fits = {c: _fit(config, data_key, dataset, c, ro, cache, log) for c in config.candidates}
                scores = _scores(config, b, s, ro, data_key, fits, brain, dataset, cache, log)
                say(f"  scored brain {b.label} seed {s}, readout {ro}")
                out.append(Instance(b.label, b.form, s, ro, b.backbone, scores))
    return out


def _tick(log: dict[str, dict[str, float]], stage: str, computed: bool, t0: float) -> None:
    e = log.setdefault(stage, {"computed": 0, "cached": 0, "seconds": 0.0})
    e["computed" if computed else "cached"] += 1
    e["seconds"] = round(e["seconds"] + time.perf_counter() - t0, 3)


_BRAINS: dict[Any, Any] = {}


def _brain(b: Any, seed: int, device: str) -> Any:
    from brainprobe.data import SimulatedBrain
    from brainprobe.pipeline.stages import resolve_device

    key = (b.backbone, b.form, seed, b.targets_per_roi, device)
    if key not in _BRAINS:
        if len(_BRAINS) > 4:
            _BRAINS.pop(next(iter(_BRAINS)))
        _BRAINS[key] = SimulatedBrain(b.backbone, form=b.form, seed=seed, targets_per_roi=b.targets_per_roi,
                                      device=resolve_device(device)).eval()
    return _BRAINS[key]


def _data(config: ValidationConfig, b: Any, seed: int, cache: Any, log: Any) -> tuple[str, Any]:
    from brainprobe.data import Dataset, sample_stimuli, simulate_dataset
    from brainprobe.pipeline.cache import make_key

    t0 = time.perf_counter()
    inputs = {"brain": b.model_dump(mode="json", exclude={"seeds"}), "seed": seed, "n_images": config.n_images,
              "resolution": config.resolution, "repeats": config.repeats, "nc": list(config.noise_ceiling),
              "test_fraction": config.test_fraction, "stimuli_seed": config.seed, "version": __version__}
    key = make_key("validate_data", STAGE_VERSIONS["validate_data"], inputs)
    hit = cache.valid("validate_data", key)
    if not hit:
        stimuli, prov = sample_stimuli(config.n_images, config.resolution, split="eval", seed=config.seed)
        ds = simulate_dataset(_brain(b, seed, config.device), stimuli, repeats=config.repeats, seed=seed,
                              noise_ceiling=tuple(config.noise_ceiling), test_fraction=config.test_fraction,
                              groups=prov["photo"].astype(str).to_numpy())
        with cache.writer("validate_data", key) as tmp:
            ds.save(tmp / "dataset.nc")
    dataset = Dataset.load(cache.path("validate_data", key) / "dataset.nc")
    _tick(log, "validate_data", not hit, t0)
    return key, dataset


def _fit(config: ValidationConfig, data_key: str, dataset: Any, candidate: str, readout: str, cache: Any,
         log: Any) -> str:
    import inspect

    import torch

    from brainprobe.encoding import fit_encoder
    from brainprobe.errors import ConfigError
    from brainprobe.pipeline.cache import make_key
    from brainprobe.pipeline.stages import resolve_device
    from brainprobe.zoo import get_spec

    t0 = time.perf_counter()
    inputs = {"data": data_key, "candidate": candidate, "readout": readout, "cv": config.encoding_cv,
              "seed": config.seed, "version": __version__}
    key = make_key("validate_fit", STAGE_VERSIONS["validate_fit"], inputs)
    hit = cache.valid("validate_fit", key)
    if not hit:
        kwargs: dict[str, Any] = {}
        if "readout" in inspect.signature(fit_encoder).parameters:
            kwargs["readout"] = readout
        elif readout != "ridge":
            raise ConfigError(f"readout {readout!r}: this brainprobe's fit_encoder has no readout= option")
        enc = fit_encoder(candidate, dataset, layer=list(get_spec(candidate).default_layers), cv=config.encoding_cv,
                          seed=config.seed, n_boot=100, device=resolve_device(config.device), **kwargs)
        with cache.writer("validate_fit", key) as tmp:
            torch.save(enc.cpu().eval(), tmp / "encoder.pt")
    _tick(log, "validate_fit", not hit, t0)
    return key


def _scores(config: ValidationConfig, b: Any, seed: int, readout: str, data_key: str, fits: dict[str, str],
            brain: Any, dataset: Any, cache: Any, log: Any) -> Any:
    import torch
    import xarray as xr

    from brainprobe.pipeline.cache import make_key
    from brainprobe.pipeline.outputs import _clean
    from brainprobe.validation.criteria import brain_scores

    t0 = time.perf_counter()
    p = config.probes
    inputs = {"data": data_key, "fits": fits, "criteria": list(config.criteria), "probes": p.model_dump(mode="json"),
              "axes": [config.axes_images, config.axes_k], "noise_z": config.noise_z, "seed": config.seed,
              "threads": config.threads, "version": __version__}
    key = make_key("validate_scores", STAGE_VERSIONS["validate_scores"], inputs)
    hit = cache.valid("validate_scores", key)
    if not hit:
        encoders = {c: torch.load(cache.path("validate_fit", k) / "encoder.pt", weights_only=False).eval()
                    for c, k in fits.items()}
        ds = brain_scores(brain, b.backbone, encoders, dataset, criteria=list(config.criteria), norm=p.norm,
                          eps=list(p.eps), steps=p.steps, n_images=p.n_images, axes_images=config.axes_images,
                          axes_k=config.axes_k, noise_z=config.noise_z, batch_size=p.batch_size, seed=config.seed)
        ds.attrs.update(brain=b.label, brain_seed=seed, readout=readout)
        with cache.writer("validate_scores", key) as tmp:
            _clean(ds).to_netcdf(tmp / "scores.nc", engine="h5netcdf")
    out = xr.load_dataset(cache.path("validate_scores", key) / "scores.nc", engine="h5netcdf")
    _tick(log, "validate_scores", not hit, t0)
    return out


def _write(config: ValidationConfig, groups: dict[str, Any], run_dir: Path, log: dict[str, Any], started: float,
           source: str | None, sha: str) -> None:
    import os
    import uuid

    import xarray as xr

    from brainprobe.pipeline.cache import write_bytes_atomic
    from brainprobe.pipeline.outputs import _clean, _versions
    from brainprobe.validation.recovery import format_recovery, recovery_frame

    path = run_dir / "results.nc"
    root = xr.Dataset(attrs={"brainprobe_version": __version__, "config_sha256": sha, "simulated": 1,
                             "title": f"brainprobe validation {config.name} (SIMULATED brains)",
                             "config": json.dumps(config.model_dump(mode="json", exclude={"output"}), sort_keys=True),
                             "seed": config.seed, "threads": config.threads})
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        root.to_netcdf(tmp, mode="w", engine="h5netcdf")
        for name, ds in groups.items():
            _clean(ds).to_netcdf(tmp, mode="a", group=f"validation/{name}", engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    tables = run_dir / "tables"
    tables.mkdir(exist_ok=True)
    write_bytes_atomic(tables / "recovery.csv", recovery_frame(groups["recovery"]).to_csv(index=False).encode())
    write_bytes_atomic(tables / "confusion.csv",
                       groups["confusion"]["share"].to_dataframe().reset_index().to_csv(index=False).encode())
    if "controversial" in groups:
        c = groups["controversial"]
        write_bytes_atomic(tables / "controversial.csv",
                           c[["share", "ci_low", "ci_high", "n_controversial", "n_decided"]].to_dataframe().reset_index()
                           .dropna(subset=["share"]).to_csv(index=False).encode())
        write_bytes_atomic(tables / "power.csv", groups["power"]["images_needed"].to_dataframe().reset_index()
                           .to_csv(index=False).encode())
    text = format_recovery(groups["recovery"], groups.get("controversial"))
    write_bytes_atomic(run_dir / "recovery.txt", (text + "\n").encode())
    man = {"name": config.name, "config_source": source, "config_sha256": sha,
           "config": config.model_dump(mode="json"), "brainprobe_version": __version__, "versions": _versions(),
           "simulated": True, "stages": log, "started": started, "seconds": round(time.time() - started, 1)}
    write_bytes_atomic(run_dir / "manifest.json", json.dumps(man, indent=2, default=str).encode())
    if config.output.report:
        from brainprobe.report.validation import validation_report

        validation_report(run_dir)
