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


GALLERY_RMS = 8 / 255
"""Default gallery budget: l2 with an RMS change of 8/255 per pixel value (eps = 8/255 * sqrt(3 H W),
6.95 at 128 px), where probes are visible without amplification; the same for every model."""
GALLERY_STEPS = 10
"""PGD steps of the gallery probes computed at report time."""
GALLERY_IMAGES = 2
"""Kept images shown (and probed at report time) per gallery."""


def visible_budget(images: np.ndarray, eps: float | None, norm: str | None) -> tuple[str, float]:
    """(norm, eps) of the galleries: the default visible l2 budget (:data:`GALLERY_RMS`), or ``eps``
    in ``norm`` (without a norm: linf when eps <= 32/255, else l2)."""
    if eps is None:
        h, w = images.shape[1:3]
        return (norm or "l2"), (GALLERY_RMS * float(np.sqrt(3 * h * w)) if (norm or "l2") == "l2" else GALLERY_RMS)
    return (norm or ("linf" if eps <= 32 / 255 else "l2")), float(eps)


def report_time_probes(run_dir: str | Path, entry: dict[str, Any], label: str, model: str, encoder: Any,
                       images: np.ndarray, norm: str, eps: float) -> np.ndarray:
    """Probes of ``images`` (uint8 K x H x W x 3) at a budget the run did not keep: float32 K x 3 x H x W.

    Made with the run's objective (``index.json``), :data:`GALLERY_STEPS` PGD steps and seed 0 on
    the cached encoder, and cached under ``probes/<label>/gallery/`` so a rebuild computes nothing.
    """
    from brainprobe._images import to_float_tensor
    from brainprobe.probes import Shift, parse_objective, probe

    folder = Path(run_dir) / "probes" / label / "gallery"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
    path = folder / f"{safe}.{norm}.{eps:.6g}.k{len(images)}.s{GALLERY_STEPS}.npy"
    if path.is_file():
        return np.load(path).astype(np.float32)
    name = str(entry.get("objective") or "shift")
    objective = Shift() if name == "shift" else parse_objective(name)
    result = probe(encoder, to_float_tensor(images), norm=norm, eps=[eps], objective=objective, steps=GALLERY_STEPS,
                   seed=0, progress=False, checks=False, convergence=False)
    delta = result.delta[0].detach().float().cpu().numpy()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, delta.astype(np.float16))
    tmp.replace(path)
    return delta


def gallery_figures(run: Any, label: str, *, eps: float | None = None, norm: str | None = None,
                    max_images: int = GALLERY_IMAGES) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """Probe galleries of dataset ``label``, one per model, all at the same budget: ``([(title, figure, caption)], notes)``.

    The budget is :func:`visible_budget` (default: l2 at an RMS of 8/255, visible to the eye). The
    run's kept perturbations are used when it is one of their budgets; otherwise the few gallery
    probes are made now from the cached encoders (:func:`report_time_probes`). Each gallery shows
    the kept images, the probe amplified and not (the probe image), an equal-norm white noise
    perturbation beside it (amplified and not), and each ROI's predicted change under both.

    Raises
    ------
    DataError
        The run kept no perturbations (nor images) for ``label``.
    """
    from brainprobe.report.gallery import probe_gallery, white_noise_like

    index = read_index(run.run_dir)
    entry = index.get("datasets", {}).get(label)
    if entry is None:
        raise DataError(f"{run.run_dir / 'probes'}: no kept probes for {label}")
    items, notes = [], []
    for model in entry["models"]:
        try:
            images = np.load(Path(run.run_dir) / "probes" / entry["images"])[:max_images]
            nm, e = visible_budget(images, eps, norm)
            encoder = load_encoder(entry, model)
            kept = entry["models"][model]["norms"].get(nm)
            hit = np.flatnonzero(np.isclose(np.asarray(kept["eps"], dtype=float), e, rtol=0.01, atol=0)) if kept else []
            if len(hit):
                images, delta = load_kept(run.run_dir, entry, model, nm, int(hit[0]))
                images, delta, source = images[:max_images], delta[:max_images], "kept by the run"
            else:
                delta, source = report_time_probes(run.run_dir, entry, label, model, encoder, images, nm, e), (
                    f"made at report time ({GALLERY_STEPS} PGD steps on the cached encoder)")
            noise = white_noise_like(delta, nm, seed=0)
            change, rois = roi_change(encoder, images, delta)
            noise_change, _ = roi_change(encoder, images, noise)
        except (DataError, OSError, ValueError, KeyError) as exc:
            notes.append(f"{label}: gallery of {model} not drawn: {exc}")
            continue
        fig = probe_gallery(images, delta, change, rois, model=model, eps=e, norm=nm, change_unit="response units",
                            max_images=max_images, noise=noise, noise_change=noise_change)
        eps_txt = f"{e * 255:.3g}/255" if nm == "linf" else f"{e:.3g}"
        caption = (f"{model}'s own {nm} probes (objective {entry.get('objective', '?')}) at ε = {eps_txt}, the same budget "
                   f"for every model ({source}): clean image, the probe amplified and not (image + probe), equal-norm "
                   "white noise amplified by the same gain and not, and the ROI-mean change the encoder predicts for the "
                   "probe (coloured) and the noise (grey).")
        items.append((f"Probe gallery: {model} ({nm}, ε = {eps_txt})", fig, caption))
    return items, notes
