"""``run_pipeline``: data -> fit -> probes -> transfer -> analyses -> results.nc, tables, report."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from brainprobe.config import load_yaml_model
from brainprobe.pipeline.cache import Cache
from brainprobe.pipeline.config import RunConfig
from brainprobe.pipeline.executors import make_executor
from brainprobe.pipeline.plan import Entry, data_plan, fill_plan
from brainprobe.pipeline.stages import data_task, fit_task, load_dataset, probe_images, probe_task, transfer_task
from brainprobe.pipeline.validate import validate_config

TASKS = {"data": data_task, "fit": fit_task, "probes": probe_task, "transfer": transfer_task}


def load_config(path: str | Path) -> RunConfig:
    """Read and check a run config (schema, model and layer names, data paths, output folder).

    Raises
    ------
    ConfigError
        One line naming the file, the key and what to do; nothing is written.
    """
    config = load_yaml_model(path, RunConfig)
    validate_config(config, str(path))
    return config


class StageLog:
    """Per stage: entries computed, entries found in the cache, seconds spent."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = defaultdict(lambda: {"computed": 0, "cached": 0, "seconds": 0.0})
        self.parts: dict[str, dict[str, float]] = {}

    def add(self, stage: str, computed: int, cached: int, seconds: float) -> None:
        s = self.stages[stage]
        s["computed"] += computed
        s["cached"] += cached
        s["seconds"] = round(s["seconds"] + seconds, 3)

    def add_part(self, stage: str, part: str, seconds: float) -> None:
        """Seconds of one part of a stage (e.g. one analysis on one dataset), shown under ``parts``."""
        parts = self.parts.setdefault(stage, {})
        parts[part] = round(parts.get(part, 0.0) + seconds, 3)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in self.stages.items()}
        for stage, parts in self.parts.items():
            out.setdefault(stage, {"computed": 0, "cached": 0, "seconds": 0.0})["parts"] = dict(parts)
        return out


def run_stage(stage: str, entries: list[Entry], cache: Cache, executor: Any, log: StageLog) -> None:
    """Compute the entries that are missing or corrupt; the others are cache hits."""
    t0 = time.perf_counter()
    todo = [e for e in entries if not cache.valid(stage, e.key)]
    # the same content can be planned twice (e.g. two runs' identical shards); compute it once
    unique = list({e.key: e for e in todo}.values())
    if unique:
        executor.map(TASKS[stage], [e.task for e in unique], desc=f"{stage} ({len(unique)} to compute)")
    log.add(stage, len(unique), len(entries) - len(todo), time.perf_counter() - t0)


def check_run_folder(config: RunConfig, source: str, *, replace: bool = False) -> None:
    """Refuse an output folder that holds the results of another config (nothing is written).

    A folder whose ``manifest.json`` records the same ``config_sha256`` is resumed / re-used; one
    written by a different config, or holding ``results.nc`` / ``report.html`` without a readable
    manifest, raises unless ``replace`` is True.

    Raises
    ------
    ConfigError
        One line naming the folder, both config hashes and what to do.
    """
    import json

    from brainprobe.errors import ConfigError
    from brainprobe.pipeline.outputs import config_sha256

    run_dir = Path(config.output.dir)
    if replace or not run_dir.is_dir():
        return
    manifest = run_dir / "manifest.json"
    mine = config_sha256(config)
    try:
        theirs = json.loads(manifest.read_text()).get("config_sha256") if manifest.is_file() else None
    except (OSError, ValueError, AttributeError):
        theirs = "unreadable manifest"
    if theirs is None and not any((run_dir / f).exists() for f in ("results.nc", "report.html")):
        return  # empty folder, or a first run that stopped before writing its outputs
    if theirs != mine:
        raise ConfigError(
            f"{run_dir}: output.dir holds the results of a different config (config sha256 {str(theirs)[:12]}, "
            f"{source} has {mine[:12]}); choose another output.dir (--output), or pass --replace "
            "(run_pipeline(..., replace=True)) to overwrite them"
        )


def run_pipeline(config: RunConfig | str | Path, *, source: str | None = None, replace: bool = False) -> Path:
    """Run a whole study and return its run folder.

    Parameters
    ----------
    config
        A RunConfig or the path of a YAML config.
    source
        Name of the config in error messages (default: the path, or ``config``).
    replace
        Overwrite the outputs of a different config in ``output.dir`` (default: refuse with a
        ConfigError before anything is written; a re-run of the same config resumes).

    Returns
    -------
    Path
        The run folder: ``manifest.json``, ``results.nc``, ``tables/*.csv``, ``figures/``,
        ``report.html`` and, when ``probes.keep_deltas`` > 0, ``probes/``.
    """
    import torch

    if not isinstance(config, RunConfig):
        source = source or str(config)
        config = load_config(config)
    else:
        validate_config(config, source or "config")
    check_run_folder(config, source or "config", replace=replace)
    started = time.time()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    run_dir = Path(config.output.dir)
    cache = Cache(config.cache_dir)
    log = StageLog()
    executor = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        cache.root.mkdir(parents=True, exist_ok=True)
        cache.clean_temporaries()
        gpus = config.executor.gpus_per_shard
        if gpus is None:
            gpus = 1.0 if config.device == "cuda" else 0.0
        executor = make_executor(config.executor.kind, address=config.executor.address,
                                 workers=config.executor.workers, threads=config.threads, gpus=gpus)
        root = str(cache.root.resolve())
        plans = data_plan(config, root)
        run_stage("data", [p.data for p in plans], cache, executor, log)
        chunks_of = {}
        datasets = {}
        for p in plans:
            ds = load_dataset(root, p.data.key)
            datasets[p.label] = ds
            idx = [int(i) for i in probe_images(ds, config.probes.n_images)]
            k = config.probes.image_chunk
            chunks_of[p.label] = [idx[i : i + k] for i in range(0, len(idx), k)]
        fill_plan(config, plans, chunks_of)
        run_stage("fit", [e for p in plans for e in p.fits.values()], cache, executor, log)
        run_stage("probes", [e for p in plans for e in p.probes], cache, executor, log)
        run_stage("transfer", [e for p in plans for e in p.transfers], cache, executor, log)
    finally:
        if executor is not None:
            executor.close()
    try:
        from brainprobe.pipeline.analyses import run_analyses
        from brainprobe.pipeline.outputs import keep_deltas, write_outputs

        results = run_analyses(config, plans, datasets, cache, log)
        if config.real_data is not None:  # the REAL panel (docs/real_data.md)
            from brainprobe.pipeline.real_data import run_real_data

            run_real_data(config, results, cache, log)
        if config.probes.keep_deltas:
            keep_deltas(config, plans, datasets, root, run_dir)
        write_outputs(config, plans, datasets, results, run_dir, log, started, source)
    finally:
        torch.set_num_threads(threads_before)
    return run_dir
