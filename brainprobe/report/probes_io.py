"""Probe perturbations kept in a run folder (``probes/``): galleries and stimulus export read them.

Layout (written by the pipeline when ``probes.keep_deltas`` > 0): ``probes/index.json`` and,
per dataset label, ``images.npy`` (uint8 K x H x W x 3) and ``<model>.<norm>.npy`` (float16
E x K x 3 x H x W), with each model's budgets and fitted-encoder path in the index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from brainprobe.errors import DataError


def read_index(run_dir: str | Path) -> dict[str, Any]:
    """``probes/index.json`` of a run; DataError when the run kept no perturbations."""
    path = Path(run_dir) / "probes" / "index.json"
    if not path.is_file():
        raise DataError(f"{path}: no probe perturbations kept; set probes.keep_deltas > 0 in the config and re-run")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}); re-run to rewrite it") from None


def choose_budget(norms: dict[str, Any], eps: float | None, norm: str | None = None) -> tuple[str, int, float]:
    """(norm, index, eps) of a kept budget: ``eps`` within 1% (in ``norm`` if given), else a default.

    The default is the middle budget of the linf grid (or of the l2 grid when linf is absent).
    """
    if eps is not None:
        hits = []
        for nm, info in norms.items():
            if norm is not None and nm != norm:
                continue
            grid = np.asarray(info["eps"], dtype=float)
            idx = np.flatnonzero(np.isclose(grid, eps, rtol=0.01, atol=0))
            if idx.size:
                hits.append((nm, int(idx[0]), float(grid[idx[0]])))
        if not hits:
            grids = {nm: info["eps"] for nm, info in norms.items()}
            raise DataError(f"eps {eps:g} is not a kept budget (grids {grids}); pick one of those")
        if len(hits) > 1:
            raise DataError(f"eps {eps:g} is a budget of both norms; choose the norm")
        return hits[0]
    nm = norm or ("linf" if "linf" in norms else next(iter(norms)))
    if nm not in norms:
        raise DataError(f"no kept {nm} probes; kept norms: {sorted(norms)}")
    grid = list(norms[nm]["eps"])
    i = len(grid) // 2
    return nm, i, float(grid[i])


def load_kept(run_dir: str | Path, entry: dict[str, Any], model: str, norm: str, e_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean uint8 K x H x W x 3, delta float32 K x 3 x H x W) of one model, norm and budget."""
    root = Path(run_dir) / "probes"
    info = entry["models"][model]["norms"][norm]
    try:
        images = np.load(root / entry["images"])
        delta = np.load(root / info["file"], mmap_mode="r")[e_idx].astype(np.float32)
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"{root}: kept probes of {model} ({norm}) unreadable ({exc}); re-run the pipeline") from None
    return images, delta


def load_encoder(entry: dict[str, Any], model: str, device: str = "cpu") -> Any:
    """The fitted encoder the run cached for ``model`` (path recorded in the index)."""
    import torch

    path = Path(entry["models"][model]["encoder"])
    if not path.is_file():
        raise DataError(f"{path}: fitted encoder of {model} not found (cache cleared?); re-run `brainprobe run` to refit")
    return torch.load(path, map_location=device, weights_only=False).eval()


def roi_change(model: Any, images: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """ROI-mean response change ``model(x + delta) - model(x)``: K x R, and the R ROI names."""
    import torch

    from brainprobe._images import to_float_tensor

    x = to_float_tensor(images)
    d = torch.from_numpy(np.ascontiguousarray(delta))
    with torch.no_grad():
        y0 = model(x).double().numpy()
        y1 = model((x + d).clamp(0, 1)).double().numpy()
    targets = getattr(model, "targets", None)
    if targets is None or "roi" not in targets:
        return (y1 - y0).mean(axis=1, keepdims=True), ["all"]
    rois = targets["roi"].astype(str).to_numpy()
    names = list(dict.fromkeys(rois))
    return np.stack([(y1 - y0)[:, rois == r].mean(axis=1) for r in names], axis=1), names


def gallery_figures(run: Any, label: str, *, eps: float | None = None, max_images: int = 4) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """Probe galleries of dataset ``label``, one per model: ``([(title, figure, caption)], notes)``.

    Each gallery shows the kept images, the amplified perturbation, the probe image and each
    ROI's predicted change (a forward pass of the kept images through the cached encoder).

    Raises
    ------
    DataError
        The run kept no perturbations for ``label``.
    """
    from brainprobe.report.gallery import probe_gallery

    index = read_index(run.run_dir)
    entry = index.get("datasets", {}).get(label)
    if entry is None:
        raise DataError(f"{run.run_dir / 'probes'}: no kept probes for {label}")
    items, notes = [], []
    for model in entry["models"]:
        try:
            norm, e_idx, e = choose_budget(entry["models"][model]["norms"], eps)
            images, delta = load_kept(run.run_dir, entry, model, norm, e_idx)
            change, rois = roi_change(load_encoder(entry, model), images, delta)
        except DataError as exc:
            notes.append(f"{label}: gallery of {model} not drawn: {exc}")
            continue
        fig = probe_gallery(images, delta, change, rois, model=model, eps=e, norm=norm,
                            change_unit="response units", max_images=max_images)
        eps_txt = f"{e * 255:.3g}/255" if norm == "linf" else f"{e:.3g}"
        caption = (f"{model}'s own {norm} probes (objective {entry.get('objective', '?')}) at ε = {eps_txt}: clean image, "
                   "perturbation amplified to be visible, probe image, and the ROI-mean change the encoder predicts.")
        items.append((f"Probe gallery: {model} ({norm}, ε = {eps_txt})", fig, caption))
    return items, notes
