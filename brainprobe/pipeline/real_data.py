"""The REAL panel of a run: RSA of the candidate models with human / monkey IT, and its fragility.

On the shipped 92-image set (Kriegeskorte et al. 2008) or an RDM-benchmark folder, off unless the
run config has a ``real_data:`` section. Results go to results.nc as groups
``/real-<benchmark>/rsa`` and ``/real-<benchmark>/fragility`` and add REAL rows to the findings
table (same columns as :func:`brainprobe.analysis.findings`). Cached like every stage: the key is
the section, the models and their weights, the seed and the thread count.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from brainprobe.analysis._findings import COLUMNS

BRAIN = "REAL human IT ({name})"


def label_of(benchmark: str) -> str:
    """Dataset label of the REAL panel in results.nc, e.g. ``real-kriegeskorte92``."""
    from pathlib import Path

    return f"real-{Path(str(benchmark)).name}"


def real_data_panel(models: list[str], section: Any, *, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """RSA table and fragility curves of ``models`` on the section's benchmark.

    Parameters
    ----------
    models : zoo names (the run's candidates unless ``section.models`` is set).
    section : ``RealDataConfig`` (brainprobe.pipeline.config).

    Returns
    -------
    dict
        ``{"rsa": xarray.Dataset, "fragility": xarray.Dataset}`` (fragility only when
        ``section.fragility``); see :func:`brainprobe.analysis.rsa_benchmark` and
        :func:`brainprobe.analysis.rsa_fragility` (no timings inside, so equal inputs give equal
        files; the stage's seconds go to the run's stage log).
    """
    from brainprobe.analysis import rsa_benchmark, rsa_fragility
    from brainprobe.data import load_rdm_benchmark
    from brainprobe.zoo import load_backbone

    bench = load_rdm_benchmark(section.benchmark)
    backbones = {m: load_backbone(m, device=device) for m in models}  # loaded once for both analyses
    layers = {m: section.layers for m in models} if section.layers else None
    rsa = rsa_benchmark(backbones, bench, layers=layers, method="corr", resolution=section.resolution,
                        pooling=section.pooling, n_boot=section.n_boot, seed=seed, device=device)
    out = {"rsa": rsa}
    if section.fragility:
        out["fragility"] = rsa_fragility(backbones, bench, rsa=rsa, norms=section.norms, eps=section.eps,
                                         directions=section.directions, steps=section.steps,
                                         resolution=section.resolution, pooling=section.pooling, device=device)
    return out


def _row(finding: str, brain: str, statistic: str, value: float = np.nan, lo: float = np.nan, hi: float = np.nan,
         held: bool = False, note: str = "") -> dict[str, Any]:
    return {"finding": finding, "brain": brain, "statistic": statistic, "value": float(value), "ci_low": float(lo),
            "ci_high": float(hi), "held": bool(held), "note": note}


def _subject_boot(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap over subjects (last axis) of the subject mean: values (..., S) -> (n_boot, ...)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[-1], size=(n_boot, values.shape[-1]))
    return np.stack([values[..., i].mean(axis=-1) for i in idx])


def _movement(frag: Any) -> tuple[np.ndarray, str]:
    """Per model and subject: how far the largest budget of the first norm moves the score.

    raise - lower when both directions ran, else |clean - perturbed|. Returns (M x S, description).
    """
    norm = str(frag["norm"].values[0])
    eps = frag["eps"].sel(norm=norm).values
    k = int(np.nanargmax(eps))
    sub = frag["score_subject"].sel(norm=norm, eps_index=k)  # model, direction, subject
    dirs = [str(d) for d in frag["direction"].values]
    if "raise" in dirs and "lower" in dirs:
        move = (sub.sel(direction="raise") - sub.sel(direction="lower")).values
        what = f"range of the score (raised - lowered) at {norm} eps {eps[k]:.4g}"
    else:
        move = np.abs(frag["clean_score_subject"].values - sub.isel(direction=0).values)
        what = f"|change| of the score ({dirs[0]}) at {norm} eps {eps[k]:.4g}"
    return move, what


def real_findings(rsa: Any, frag: Any | None, *, name: str = "kriegeskorte92", n_boot: int = 1000,
                  seed: int = 0) -> Any:
    """REAL rows of the findings table (columns of :func:`brainprobe.analysis.findings`).

    1. ``real: models tie on human-IT RSA`` -- the spread (max - min over models) of the
       best-layer RSA, with a paired bootstrap CI over stimuli and subjects (rsatoolbox); held
       when the spread's upper CI bound is below the width of the lower noise ceiling's 95% CI
       (the models cannot be told apart at the precision the data allow).
    2. ``real: models differ in the fragility of their human-IT RSA`` -- the spread over models of
       how far the largest budget moves the score, CI by bootstrap over subjects; held when the
       CI excludes 0.
    3. ``real: robust copies' human-IT RSA is less fragile`` -- mean over architectures with a
       standard and a robust copy of (standard - robust) movement; held when the CI is above 0.
    """
    import pandas as pd

    brain = BRAIN.format(name=name)
    rows = []
    models = [str(m) for m in rsa["model"].values]
    point = rsa["rsa_human_best"].values
    lo_nc = (float(rsa["noise_ceiling_lower_ci_low"]), float(rsa["noise_ceiling_lower_ci_high"]))
    width = lo_nc[1] - lo_nc[0]
    if len(models) < 2:
        rows.append(_row("real: models tie on human-IT RSA", brain, "max - min RSA over models",
                         note="one model: nothing to compare, not held"))
    else:
        spread = float(point.max() - point.min())
        if "rsa_human_best_boot" in rsa:
            b = rsa["rsa_human_best_boot"].values
            b = b[np.isfinite(b).all(axis=1)]
            s = b.max(axis=1) - b.min(axis=1)
            ci = np.percentile(s, [2.5, 97.5])
        else:
            ci = np.array([np.nan, np.nan])
        top, bottom = models[int(point.argmax())], models[int(point.argmin())]
        rows.append(_row(
            "real: models tie on human-IT RSA", brain, "max - min RSA (Pearson, best layer) over models",
            spread, ci[0], ci[1], held=bool(np.isfinite(ci[1]) and ci[1] < width),
            note=(f"{top} {point.max():.3f} vs {bottom} {point.min():.3f}; lower noise ceiling "
                  f"{float(rsa['noise_ceiling_lower']):.3f} (95% CI {lo_nc[0]:.3f}-{lo_nc[1]:.3f}, width {width:.3f}); "
                  "held when the spread's CI lies below that width; CI: rsatoolbox bootstrap over stimuli and subjects")))
    if frag is None:
        rows.append(_row("real: models differ in the fragility of their human-IT RSA", brain, "",
                         note="fragility not computed (real_data.fragility: false): not held"))
        rows.append(_row("real: robust copies' human-IT RSA is less fragile", brain, "",
                         note="fragility not computed: not held"))
        return pd.DataFrame(rows, columns=COLUMNS)
    move, what = _movement(frag)
    fmodels = [str(m) for m in frag["model"].values]
    mean_move = move.mean(axis=1)
    boot = _subject_boot(move, n_boot, seed)  # n_boot x M
    if len(fmodels) < 2:
        rows.append(_row("real: models differ in the fragility of their human-IT RSA", brain, what,
                         note="one model: nothing to compare, not held"))
    else:
        i, j = int(mean_move.argmax()), int(mean_move.argmin())
        d = boot[:, i] - boot[:, j]
        ci = np.percentile(d, [2.5, 97.5])
        rows.append(_row(
            "real: models differ in the fragility of their human-IT RSA", brain, f"max - min over models of the {what}",
            mean_move[i] - mean_move[j], ci[0], ci[1], held=bool(ci[0] > 0),
            note=(f"most fragile {fmodels[i]} {mean_move[i]:.3f}, least {fmodels[j]} {mean_move[j]:.3f}; CI: bootstrap "
                  f"over the {move.shape[1]} subjects (coarse); the model RDM is optimised, human IT's RDM held fixed")))
    training = [str(t) for t in frag["training"].values]
    arch = [str(a) for a in frag["architecture"].values]
    pairs = []
    for a in dict.fromkeys(arch):
        std = [k for k in range(len(fmodels)) if arch[k] == a and training[k] == "standard"]
        rob = [k for k in range(len(fmodels)) if arch[k] == a and training[k] in ("robustified", "adversarial")]
        if std and rob:
            pairs.append((std[0], rob[0]))
    if not pairs:
        rows.append(_row("real: robust copies' human-IT RSA is less fragile", brain, what,
                         note="no architecture with both a standard and a robust copy: untestable, not held"))
    else:
        diff = np.mean([boot[:, s] - boot[:, r] for s, r in pairs], axis=0)
        value = float(np.mean([mean_move[s] - mean_move[r] for s, r in pairs]))
        ci = np.percentile(diff, [2.5, 97.5])
        detail = "; ".join(f"{fmodels[s]} {mean_move[s]:.3f} vs {fmodels[r]} {mean_move[r]:.3f}" for s, r in pairs)
        rows.append(_row(
            "real: robust copies' human-IT RSA is less fragile", brain,
            f"mean over {len(pairs)} architecture(s) of standard - robust {what}", value, ci[0], ci[1],
            held=bool(ci[0] > 0), note=f"{detail}; CI: bootstrap over subjects"))
    return pd.DataFrame(rows, columns=COLUMNS)


def real_data_key(config: Any, models: list[str]) -> str:
    """Cache key of the REAL panel: its section, the models and their weights, seed, threads, version."""
    from brainprobe import __version__
    from brainprobe._hashing import sha256_json
    from brainprobe.pipeline.plan import weights_id

    files = {m.name: str(m.weights.resolve()) for m in config.models if m.weights}
    weights = {name: weights_id(name, files.get(name)) for name in models}
    return sha256_json({"stage": "real_data", "version": __version__,
                        "section": config.real_data.model_dump(mode="json"), "models": models, "weights": weights,
                        "seed": config.seed, "threads": config.threads, "device": config.device})


def run_real_data(config: Any, results: dict[str, Any], cache: Any, log: Any) -> None:
    """Add the REAL panel to ``results`` (in place): ``results[label] = {"rsa", "fragility"}`` and
    REAL rows appended to ``results["findings"]``. Cached in ``cache`` under stage ``real_data``."""
    import pandas as pd
    import xarray as xr

    from brainprobe.pipeline.outputs import _clean
    from brainprobe.pipeline.stages import resolve_device

    section = config.real_data
    if section is None:
        return
    models = list(section.models) if section.models else [m.name for m in config.models]
    key = real_data_key(config, models)
    t0 = time.perf_counter()
    computed = not cache.valid("real_data", key)
    if computed:
        groups = real_data_panel(models, section, seed=config.seed, device=resolve_device(config.device))
        with cache.writer("real_data", key) as tmp:
            for name, ds in groups.items():
                _clean(ds).to_netcdf(tmp / f"{name}.nc", engine="h5netcdf")
    entry = cache.path("real_data", key)
    groups = {p.stem: xr.load_dataset(p, engine="h5netcdf") for p in sorted(entry.glob("*.nc"))}
    log.add("real_data", int(computed), int(not computed), time.perf_counter() - t0)
    label = label_of(section.benchmark)
    results[label] = groups
    rows = real_findings(groups["rsa"], groups.get("fragility"), name=label.removeprefix("real-"),
                         n_boot=config.analyses.n_boot, seed=config.seed)
    findings = results.get("findings")
    results["findings"] = rows if findings is None else pd.concat([findings, rows], ignore_index=True)
