"""Stimulus export: probe images as lossless PNG + each image's predicted change per ROI under every model.

What is written is what is measured: after writing, every PNG is read back and shown to every
model (and to the simulated brain when the run has one); the CSVs hold those re-evaluated
numbers, the budget the written probe actually uses and the fraction of the probed model's
objective it keeps. Probes keeping less than 90% are flagged.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from brainprobe.errors import ConfigError, DataError
from brainprobe.report.lattice import LEVELS, ObjectiveEvaluator, lattice_probe, on_lattice
from brainprobe.report.pngio import from_levels, read_png, to_levels, write_png

KEEP_THRESHOLD = 0.9
"""Probes whose written version keeps less than this fraction of the objective are flagged."""


def _roi_groups(model: nn.Module, n_targets: int) -> dict[str, np.ndarray]:
    targets = getattr(model, "targets", None)
    if isinstance(targets, pd.DataFrame) and "roi" in targets and len(targets) == n_targets:
        rois = targets["roi"].astype(str).to_numpy()
        return {r: np.flatnonzero(rois == r) for r in dict.fromkeys(rois)}
    return {"all": np.arange(n_targets)}


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _forward(model: nn.Module, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """model(x) in batches on the model's device, float32 on the CPU."""
    dev = _device(model)
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)])


def _budget(delta: torch.Tensor, norm: str) -> np.ndarray:
    flat = delta.double().flatten(1)
    return (flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)).numpy()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def export_probe_images(
    images: np.ndarray | torch.Tensor,
    delta: torch.Tensor | np.ndarray,
    *,
    source: str,
    models: Mapping[str, nn.Module],
    norm: str,
    eps: float,
    objective: Any,
    out: str | Path,
    bits: int = 8,
    quantise: bool = True,
    steps: int = 10,
    image_ids: Sequence[str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    threshold: float = KEEP_THRESHOLD,
) -> pd.DataFrame:
    """Write probe images of ``source`` as PNG files and re-evaluate them under every model.

    Parameters
    ----------
    images : uint8 N x H x W x 3, or float N x 3 x H x W on the 8-bit lattice
        Clean images.
    delta : float N x 3 x H x W
        Continuous probes of model ``source`` at budget ``eps`` (pixel units in [0, 1]).
    source : str
        Name of the probed model; must be a key of ``models``.
    models : dict name -> nn.Module
        Every model to evaluate the written images under (encoders, the simulated brain).
    norm, eps, objective
        As used for the probe run (the objective decides the lattice refinement and the kept
        fraction).
    out : path
        Output folder (created): ``clean/<id>.png``, ``probes/<id>.png``, ``changes.csv``,
        ``probes.csv``, ``export.json``.
    bits : {8, 16}
        Bits per channel of the PNG files.
    quantise : bool
        True: project onto the lattice inside the ball and run ``steps`` lattice PGD steps
        (quantisation-aware probes). False: plain rounding of ``x + delta`` to the nearest level,
        which can exceed the budget (reported).
    steps : int
        Lattice PGD steps when ``quantise``.
    image_ids : list of N str, optional
        Names of the images (file stems); default ``img000`` ...
    provenance : dict, optional
        Recorded in export.json (run folder, config hash, ...).
    threshold : float
        Flag probes keeping less than this fraction of their objective.

    Returns
    -------
    pandas.DataFrame
        One row per image (the content of ``probes.csv``): ``image, file, norm, eps,
        budget_used, budget_ratio, objective_continuous, objective_written, objective_rounded,
        kept, flagged``.
    """
    if bits not in LEVELS:
        raise ConfigError(f"bits must be 8 or 16, got {bits}")
    if source not in models:
        raise ConfigError(f"source model {source!r} is not among the models {sorted(models)}")
    if isinstance(images, np.ndarray) or (isinstance(images, torch.Tensor) and images.dtype == torch.uint8):
        from brainprobe._images import to_float_tensor

        x = to_float_tensor(np.asarray(images))
    else:
        x = images.detach().float().cpu()
    if not on_lattice(x, 255):
        raise DataError("export: clean images must be 8-bit images (uint8, or float k/255); got values off that lattice")
    delta = torch.as_tensor(np.asarray(delta, dtype=np.float32) if isinstance(delta, np.ndarray) else delta).float().cpu()
    if delta.shape != x.shape:
        raise DataError(f"export: delta has shape {tuple(delta.shape)}, images {tuple(x.shape)}; they must match")
    n = x.shape[0]
    ids = [str(i) for i in image_ids] if image_ids is not None else [f"img{i:03d}" for i in range(n)]
    if len(ids) != n:
        raise DataError(f"export: {len(ids)} image ids for {n} images")
    for m in models.values():
        m.eval()
    source_model = models[source]
    levels = LEVELS[bits]
    t0 = time.perf_counter()
    dev = _device(source_model)
    lat = lattice_probe(source_model, x.to(dev), delta.to(dev), norm=norm, eps=eps, objective=objective, bits=bits,
                        steps=steps if quantise else 0)
    lat.delta, lat.value_continuous, lat.value_rounded = lat.delta.cpu(), lat.value_continuous.cpu(), lat.value_rounded.cpu()
    if quantise:
        written_float = x + lat.delta
    else:
        written_float = x + delta
    pixels = to_levels(written_float, bits)
    clean_pixels = to_levels(x, 8)

    out = Path(out)
    (out / "probes").mkdir(parents=True, exist_ok=True)
    (out / "clean").mkdir(parents=True, exist_ok=True)
    files = []
    for i, name in enumerate(ids):
        stem = _safe(name)
        write_png(out / "clean" / f"{stem}.png", clean_pixels[i])
        files.append(write_png(out / "probes" / f"{stem}.png", pixels[i]))

    # re-evaluate what is on disk, not what is in memory
    written_px = np.stack([read_png(f) for f in files])
    clean_px = np.stack([read_png(out / "clean" / f"{_safe(name)}.png") for name in ids])
    written, clean = from_levels(written_px), from_levels(clean_px)
    # budget from the integer levels in float64 (exact up to one division)
    used_delta = torch.from_numpy(written_px.astype(np.float64) / levels - clean_px.astype(np.float64) / 255)
    budget = _budget(used_delta.permute(0, 3, 1, 2), norm)
    ev = ObjectiveEvaluator(source_model, clean.to(dev), objective)
    v_written, _ = ev.value((written - clean).to(dev))
    v_written = v_written.cpu()
    v_cont = lat.value_continuous.numpy()
    v_w = v_written.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(v_cont > 0, v_w / v_cont, np.nan)
    summary = pd.DataFrame(
        {
            "image": ids,
            "file": [str(f.relative_to(out)) for f in files],
            "model": source,
            "norm": norm,
            "eps": float(eps),
            "budget_used": budget,
            "budget_ratio": budget / float(eps) if eps > 0 else np.nan,
            "objective_continuous": v_cont,
            "objective_written": v_w,
            "objective_rounded": lat.value_rounded.numpy(),
            "kept": kept,
            "flagged": ~(kept >= threshold),
            # plain rounding can leave the ball (e.g. linf 0.5/255 -> 1/255): say so separately
            "over_budget": budget > float(eps) * (1 + 1e-6) + 1e-12,
        }
    )
    rows = []
    for name, model in models.items():
        y0 = _forward(model, clean).numpy()
        y1 = _forward(model, written).numpy()
        for roi, idx in _roi_groups(model, y0.shape[1]).items():
            c0, c1 = y0[:, idx].mean(axis=1), y1[:, idx].mean(axis=1)
            for i in range(n):
                rows.append({"image": ids[i], "file": summary["file"][i], "model": name, "roi": roi,
                             "clean": float(c0[i]), "probed": float(c1[i]), "change": float(c1[i] - c0[i])})
    changes = pd.DataFrame(rows)
    summary.to_csv(out / "probes.csv", index=False)
    changes.to_csv(out / "changes.csv", index=False)
    meta = {
        "source_model": source,
        "models": list(models),
        "norm": norm,
        "eps": float(eps),
        "objective": getattr(objective, "name", str(objective)),
        "bits": bits,
        "levels": levels,
        "quantise": bool(quantise),
        "lattice_steps": int(steps if quantise else 0),
        "threshold": threshold,
        "n_images": n,
        "n_flagged": int(summary["flagged"].sum()),
        "n_over_budget": int(summary["over_budget"].sum()),
        "median_kept": float(np.nanmedian(kept)) if np.isfinite(kept).any() else None,
        "max_budget_ratio": float(np.max(budget) / eps) if eps > 0 else None,
        "seconds": round(time.perf_counter() - t0, 2),
        "provenance": dict(provenance or {}),
        "files": {"clean": "clean/", "probes": "probes/", "summary": "probes.csv", "changes": "changes.csv"},
    }
    (out / "export.json").write_text(json.dumps(meta, indent=1, default=str))
    if meta["n_flagged"]:
        hint = " (try --bits 16)" if bits == 8 else ""
        warnings.warn(
            f"export check: {meta['n_flagged']} of {n} {source} probes keep < {threshold:.0%} of their objective "
            f"after writing{hint}; see {out / 'probes.csv'}",
            stacklevel=2,
        )
    if meta["n_over_budget"]:
        warnings.warn(
            f"export check: {meta['n_over_budget']} of {n} {source} probes use more than their budget after rounding "
            f"(up to {meta['max_budget_ratio']:.2f} x eps); use the lattice-aware export (--quantise) or --bits 16",
            stacklevel=2,
        )
    return summary


def export_stimuli(
    run_dir: str | Path,
    model: str,
    eps: float,
    out: str | Path | None = None,
    *,
    norm: str | None = None,
    dataset: str | None = None,
    bits: int = 8,
    quantise: bool = True,
    steps: int = 10,
    device: str = "cpu",
) -> list[Path]:
    """Export the kept probes of ``model`` at budget ``eps`` from a run folder.

    Reads ``run_dir/probes/`` (written when the config sets ``probes.keep_deltas``), the run's
    fitted encoders and, for simulated data, rebuilds the brain; see
    :func:`export_probe_images` for what is written.

    Parameters
    ----------
    run_dir : path
    model : str
        A model of the run.
    eps : float
        One of the run's budgets for ``norm`` (nearest within 1%).
    out : path, optional
        Default ``run_dir/stimuli/<model>_<norm>_eps<eps>``; one sub-folder per dataset label.
    norm : {"l2", "linf"}, optional
        Needed when the run used both and ``eps`` is in both grids.
    dataset : str, optional
        Dataset label (default: every label of the run).
    bits, quantise, steps : see :func:`export_probe_images`.

    Returns
    -------
    list of Path
        The output folders, one per dataset label.
    """
    from brainprobe.pipeline import stages

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found; pass the folder `brainprobe run` wrote")
    index_path = run_dir / "probes" / "index.json"
    if not index_path.is_file():
        raise DataError(f"{index_path}: no kept probes; set probes.keep_deltas > 0 in the config and re-run")
    index = json.loads(index_path.read_text())
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    labels = list(index.get("datasets", {}))
    if dataset is not None:
        if dataset not in labels:
            raise ConfigError(f"--dataset {dataset!r} is not in the run; choose one of {labels}")
        labels = [dataset]
    outputs = []
    for label in labels:
        entry = index["datasets"][label]
        if model not in entry["models"]:
            raise ConfigError(f"model {model!r} has no kept probes in {label}; choose one of {sorted(entry['models'])}")
        norms = entry["models"][model]["norms"]
        chosen = None
        for nm, info in norms.items():
            if norm is not None and nm != norm:
                continue
            grid = np.asarray(info["eps"], dtype=float)
            hit = np.flatnonzero(np.isclose(grid, eps, rtol=0.01, atol=0))
            if hit.size:
                if chosen is not None:
                    raise ConfigError(f"eps {eps} is in both the l2 and linf grids; pass --norm")
                chosen = (nm, info, int(hit[0]))
        if chosen is None:
            grids = {nm: info["eps"] for nm, info in norms.items()}
            raise ConfigError(f"eps {eps} is not a budget of {model} in this run (grids {grids}); pick one of those")
        nm, info, e_idx = chosen
        delta = np.load(run_dir / "probes" / info["file"], mmap_mode="r")[e_idx].astype(np.float32)
        images = np.load(run_dir / "probes" / entry["images"])
        cache_dir = manifest.get("cache_dir")
        ds_info = manifest.get("datasets", {}).get(label, {})
        models: dict[str, nn.Module] = {}
        for name, m_info in entry["models"].items():
            path = Path(m_info["encoder"])
            if not path.is_file():
                raise DataError(f"{path}: fitted encoder of {name} not found (cache cleared?); re-run `brainprobe run` to refit")
            models[name] = torch.load(path, map_location=device, weights_only=False).eval()
        if ds_info.get("brain"):
            models["brain"] = stages.make_brain(ds_info["brain"]).to(device).eval()
        objective: Any = entry.get("objective", "shift")
        if cache_dir and ds_info.get("data_key"):
            objective = stages.make_objective(objective, stages.load_dataset(cache_dir, ds_info["data_key"]))
        target = Path(out) if out is not None else run_dir / "stimuli" / f"{_safe(model)}_{nm}_eps{float(info['eps'][e_idx]):.4g}"
        folder = target / _safe(label) if len(labels) > 1 or out is None else target
        export_probe_images(
            images, delta, source=model, models=models, norm=nm, eps=float(info["eps"][e_idx]), objective=objective,
            out=folder, bits=bits, quantise=quantise, steps=steps, image_ids=entry.get("image_ids"),
            provenance={"run_dir": str(run_dir.resolve()), "dataset": label,
                        "config_sha256": manifest.get("config_sha256"), "brainprobe_version": manifest.get("brainprobe_version")},
        )
        outputs.append(folder)
    return outputs
