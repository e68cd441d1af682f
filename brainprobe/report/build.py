"""``build_report(run_dir)``: figures + report.html from results.nc and manifest.json, no recomputation."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import xarray as xr

from brainprobe.errors import BrainprobeError
from brainprobe.report._style import save_figure
from brainprobe.report.figures import FIGURES
from brainprobe.report.html import FigureItem, Section, esc, frame_table, key_value_table, render_html

_CAPTIONS = {
    "predictivity": "Held-out correlation of each encoding model's predictions with the measured responses, divided by "
    "the noise ceiling; bars are ROI medians over targets.",
    "sensitivity": "Predicted response change caused by probes of growing budget, in units of each ROI's SD across "
    "images. Fragile models rise steeply; robust models (blue) need larger budgets.",
    "minimal_eps": "Smallest budget whose probe reaches the criterion change; higher means less fragile.",
    "discriminability": "How many model pairs each score tells apart (paired bootstrap over the same images), "
    "predictivity next to sensitivity.",
    "transfer": "Probes made on one model (column) applied to another (row): the target's change in the direction "
    "the source targeted, relative to the target's own white-box change. The last row, when present, is the "
    "image-computable brain (closed-loop validation).",
    "axes": "Alignment of local coding axes (top singular subspaces of each model's Jacobian) between models at the "
    "same images: 1 = same subspace, ~0 = unrelated.",
    "l2_linf": "Each target's (voxel's) sensitivity under ℓ2 vs ℓ∞ probes; the paper reports R = .97 on NSD.",
    "linearity": "Achieved change (solid) vs the box-constrained first-order optimum (dashed) as the budget grows; "
    "dotted lines mark where they part by 10%.",
    "convergence": "How close the probes came to the best perturbation of the linearised model at the smallest "
    "budget (achieved objective / first-order bound; Shift l2: eps x top singular value of the SD-scaled Jacobian). "
    "Bars: median over probed images, ticks: each image; below the dashed line (0.95) the run under-estimates "
    "that model's sensitivity.",
}

_TITLES = {
    "predictivity": "Predictivity",
    "sensitivity": "Sensitivity curves",
    "minimal_eps": "Minimal budget",
    "discriminability": "Discriminability",
    "transfer": "Transfer",
    "axes": "Local coding axes",
    "l2_linf": "ℓ2 vs ℓ∞",
    "linearity": "Linearity",
    "convergence": "Probe convergence",
}


def _anchor(label: str) -> str:
    return "ds-" + re.sub(r"[^A-Za-z0-9_-]+", "-", label)


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 3:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, (list, tuple)) and len(value) > 8:
        out.append((prefix, f"[{len(value)} items] " + ", ".join(map(str, value[:8])) + ", …"))
    else:
        out.append((prefix, value))


def manifest_summary(run: Any) -> str:
    """HTML summary of manifest.json: top-level scalars, then each nested block folded."""
    scalars: list[tuple[str, Any]] = []
    for key in ("brainprobe_version", "config_sha256", "simulated", "dataset_labels"):
        if key in run.attrs:
            scalars.append((f"results.nc {key}", run.attrs[key]))
    blocks: list[str] = []
    for key, value in run.manifest.items():
        if isinstance(value, (dict, list)) and value:
            rows: list[tuple[str, Any]] = []
            _flatten("", value if isinstance(value, dict) else {str(i): v for i, v in enumerate(value)}, rows)
            blocks.append(f"<details><summary>{esc(key)} ({len(rows)} entries)</summary>{key_value_table(rows[:200])}</details>")
        else:
            scalars.insert(0, (key, value))
    if not run.manifest:
        blocks.append('<p class="note">manifest.json is missing from the run folder: provenance unknown.</p>')
    return key_value_table(scalars) + "\n".join(blocks)


def _summary_table(ds: xr.Dataset, max_cells: int = 60) -> pd.DataFrame | None:
    """Analyses without a figure (controversial, semantics): small variables averaged over images/targets.

    ``X_ci_low`` / ``X_ci_high`` are folded into one ``X [95% CI]`` column; rows with no finite
    value are dropped.
    """
    series = {}
    for name, da in ds.data_vars.items():
        if not np.issubdtype(da.dtype, np.number) or name.endswith(("_ci_low", "_ci_high")):
            continue
        red = da.mean([d for d in da.dims if d in ("image", "target", "row", "boot")], skipna=True)
        if red.size > max_cells or red.ndim == 0:
            continue
        series[name] = red
    if not series:
        return None
    # group variables sharing dims into one frame (the largest group wins the table)
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, da in series.items():
        groups.setdefault(tuple(da.dims), []).append(name)
    dims, names = max(groups.items(), key=lambda kv: len(kv[1]))
    frame = xr.Dataset({n: series[n] for n in names}).to_dataframe().reset_index()
    frame = frame[[c for c in frame.columns if c in dims or c in names]]
    for n in names:
        lo, hi = f"{n}_ci_low", f"{n}_ci_high"
        if lo in ds.data_vars and hi in ds.data_vars and tuple(ds[lo].dims) == dims:
            lo_v = ds[lo].to_dataframe().reset_index()[lo].to_numpy()
            hi_v = ds[hi].to_dataframe().reset_index()[hi].to_numpy()
            frame[n] = [f"{fmt(v)} [{fmt(a)}, {fmt(b)}]" if np.isfinite(v) else "–"
                        for v, a, b in zip(frame[n].to_numpy(dtype=float), lo_v, hi_v)]
    numeric = frame[[n for n in names if n in frame]].apply(pd.to_numeric, errors="coerce")
    keep = numeric.notna().any(axis=1) | frame[[n for n in names if n in frame]].apply(lambda c: c.astype(str).str.contains(r"\[")).any(axis=1)
    frame = frame[keep]
    return frame if len(frame) else None


def fmt(v: Any) -> str:
    from brainprobe.report.html import fmt_number

    return fmt_number(v)


def _figure(fn: Callable, ds: xr.Dataset, fig_dir: Path, stem: str, title: str, caption: str, notes: list[str], where: str) -> FigureItem | None:
    try:
        fig = fn(ds)
    except Exception as exc:  # noqa: BLE001 - one broken analysis must not lose the rest of the report
        msg = f"{where}: figure '{stem}' not drawn: {type(exc).__name__}: {exc}" if not isinstance(exc, BrainprobeError) else f"{where}: {exc}"
        warnings.warn(f"report: {msg}", stacklevel=3)
        notes.append(msg)
        return None
    png, _ = save_figure(fig, fig_dir, stem)
    return FigureItem(title=title, png=png.read_bytes(), caption=caption, files=f"figures/{fig_dir.name}/{stem}.png, .svg")


def _brain_text(run: Any, label: str, groups: dict[str, xr.Dataset]) -> str:
    """One line on where this dataset's responses come from (manifest first, then analysis attrs)."""
    info = (run.manifest.get("datasets", {}) or {}).get(label, {}) or {}
    brain = info.get("brain")
    if isinstance(brain, dict) and brain:
        bits = [f"backbone {brain.get('backbone')}"] + [f"{k} {v}" for k, v in brain.items()
                                                         if k in ("seed", "targets_per_roi") and v is not None]
        return "Responses from a SIMULATED image-computable brain: " + ", ".join(bits) + "."
    name = next((ds.attrs.get("brain") for ds in groups.values() if ds.attrs.get("brain") not in (None, "", "brain")), None)
    return f"Brain: {name}" if name else ""


def convergence_notes(label: str, ds: xr.Dataset | None) -> list[str]:
    """One warning per model x norm whose probes did not converge (median fraction of the first-order
    bound at the smallest budget below the threshold); none when every model converged."""
    if ds is None or "fraction_median" not in ds:
        return []
    thr = float(ds.attrs.get("threshold", 0.95))
    notes = []
    for m in ds["model"].values:
        for nm in ds["norm"].values:
            med = float(ds["fraction_median"].sel(model=m, norm=nm))
            if np.isfinite(med) and med < thr:
                eps = float(ds["eps"].sel(norm=nm)) if "eps" in ds else float("nan")
                eps_txt = f"{eps * 255:.3g}/255" if str(nm) == "linf" else f"{eps:.3g}"
                gain = (float(ds["late_gain"].sel(model=m, norm=nm).median(skipna=True))
                        if "late_gain" in ds else float("nan"))
                why = ("the last 20% of steps still added "
                       f"{gain:.1%}: raise probes.steps" if np.isfinite(gain) and gain > 0.005 else
                       "the last 20% of steps added almost nothing, so the model's curvature at this budget, not the "
                       "optimiser, is the likely limit (a smaller budget is nearer linear)")
                notes.append(
                    f"{label}: {m}'s {nm} probes did not converge: they reach a median {med:.2f} of the first-order "
                    f"bound at ε = {eps_txt} (< {thr}); {why}."
                )
    return notes


def build_report(run_dir: str | Path, *, gallery_eps: float | None = None, out: str | Path | None = None,
                 gallery_norm: str | None = None) -> Path:
    """Rebuild ``run_dir/report.html`` (and ``run_dir/figures/``) from results.nc and manifest.json.

    Nothing is recomputed: figures are drawn from the saved analyses and, for galleries, from the
    probe perturbations the run kept under ``probes/``.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``brainprobe run``.
    gallery_eps : float, optional
        Budget of the probe galleries, the same for every model; default: l2 at an RMS change of
        8/255 per pixel value (``probes_io.GALLERY_RMS``), where probes are visible. A kept budget
        uses the run's perturbations; any other is probed at report time from the cached encoders
        (a few images, cached under ``probes/<label>/gallery/``).
    gallery_norm : {"l2", "linf"}, optional
        Norm of ``gallery_eps`` (default: linf when it is <= 32/255, else l2).
    out : path, optional
        Where to write the HTML (default ``run_dir/report.html``).

    Returns
    -------
    Path
        The written report.html.
    """
    from brainprobe.report.results import load_run

    run = load_run(run_dir)
    run_dir = Path(run_dir)
    fig_root = run_dir / "figures"
    sections: list[Section] = []
    global_notes: list[str] = []
    for label in run.labels:
        groups = run.analyses[label]
        sec = Section(title=label, anchor=_anchor(label))
        if label.startswith("real-"):  # the REAL panel (brainprobe.pipeline.real_data)
            from brainprobe.report.real_data import real_section

            sections.append(real_section(label, groups, fig_root, sec))
            continue
        sec.intro = _brain_text(run, label, groups)
        sec.notes.extend(convergence_notes(label, groups.get("convergence")))
        fig_dir = fig_root / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        for analysis, figs in FIGURES.items():
            if analysis not in groups:
                continue
            for stem, fn in figs:
                item = _figure(fn, groups[analysis], fig_dir, stem, _TITLES[stem], _CAPTIONS[stem], sec.notes, f"{label}/{analysis}")
                if item is not None:
                    sec.figures.append(item)
        from brainprobe.report.probes_io import gallery_figures

        try:
            items, gallery_notes = gallery_figures(run, label, eps=gallery_eps, norm=gallery_norm)
        except BrainprobeError as exc:
            items, gallery_notes = [], [f"{label}: probe galleries not drawn: {exc}"]
        sec.notes.extend(gallery_notes)
        for i, (title, fig, caption) in enumerate(items):
            stem = f"gallery_{i}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", title.split(": ", 1)[-1])[:60]
            png, _ = save_figure(fig, fig_dir, stem)
            sec.figures.append(FigureItem(title=title, png=png.read_bytes(), caption=caption,
                                          files=f"figures/{fig_dir.name}/{stem}.png, .svg"))
        for analysis, ds in groups.items():
            if analysis in FIGURES:
                continue
            table = _summary_table(ds)
            if table is not None:
                sec.tables.append((f"{analysis} (means over images and targets)", frame_table(table)))
        sections.append(sec)
    if not run.analyses:
        global_notes.append("results.nc holds no analysis groups.")
    brains = sorted({str(b) for b in run.findings["brain"]}) if run.findings is not None and "brain" in run.findings else []
    brains = [b for b in brains if not b.startswith("REAL")]  # the REAL panel is measured cortex
    simulated_text = (
        "responses come from an image-computable simulated brain ("
        + (", ".join(brains) if brains else ", ".join(run.labels))
        + "), not from measured cortex. Findings here test the method, not the visual system."
    )
    name = run.manifest.get("name") or (run.manifest.get("config", {}) or {}).get("name") or run_dir.resolve().name
    subtitle = f"run folder {run_dir.resolve()} · brainprobe {run.attrs.get('brainprobe_version', '?')} · config {str(run.attrs.get('config_sha256', '?'))[:12]}"
    page = render_html(
        title=f"brainprobe report: {name}",
        subtitle=subtitle,
        simulated=run.simulated,
        simulated_text=simulated_text,
        findings=run.findings,
        manifest_html=manifest_summary(run),
        sections=sections,
        notes=global_notes,
    )
    target = Path(out) if out is not None else run_dir / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
