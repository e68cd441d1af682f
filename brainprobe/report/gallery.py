"""Probe galleries: image, amplified perturbation, perturbed image, predicted change per ROI."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from brainprobe.report._style import NORM_LABEL, eps_scale, finish, mpl


def _hwc(images) -> np.ndarray:
    """N x H x W x 3 float in [0, 1] from uint8 N x H x W x 3 or float N x 3 x H x W."""
    arr = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.ndim == 4 and arr.shape[1] == 3:
        arr = arr.transpose(0, 2, 3, 1)
    return arr.astype(np.float32)


def probe_gallery(
    images,
    delta,
    change: np.ndarray,
    rois: Sequence[str],
    *,
    model: str,
    eps: float,
    norm: str,
    change_unit: str = "ROI SDs",
    max_images: int = 4,
):
    """One row per image: clean, amplified perturbation, perturbed image, change per ROI.

    Parameters
    ----------
    images : uint8 N x H x W x 3 or float N x 3 x H x W in [0, 1]
        Clean images.
    delta : float N x 3 x H x W
        Probe perturbations in [0,1] pixel units.
    change : float N x R
        Predicted response change per ROI caused by each probe (``change_unit``).
    rois : list of R str
    model, eps, norm : identify the probes in the title.
    max_images : int
        At most this many rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = mpl()
    clean = _hwc(images)
    d = _hwc(delta)
    n = min(len(clean), max_images)
    change = np.asarray(change, dtype=float)
    perturbed = np.clip(clean[:n] + d[:n], 0, 1)
    fig, axes = plt.subplots(n, 4, figsize=(9.0, 2.4 * n + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.35]})
    lim = float(np.nanmax(np.abs(change[:n]))) if change.size else 1.0
    lim = lim if lim > 0 else 1.0
    for i in range(n):
        amp_max = float(np.abs(d[i]).max())
        gain = 0.5 / amp_max if amp_max > 0 else 1.0
        panels = [(clean[i], "image"), (np.clip(0.5 + gain * d[i], 0, 1), f"perturbation ×{gain:.0f}"), (perturbed[i], "image + probe")]
        for j, (img, label) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if i == 0:
                ax.set_title(label if j != 1 else "perturbation (amplified)", fontsize=8)
            if j == 1:
                ax.set_xlabel(f"×{gain:.0f}, max |δ| = {amp_max * 255:.2f}/255", fontsize=7)
        ax = axes[i, 3]
        vals = change[i]
        ax.barh(np.arange(len(rois)), vals, color=["#238b45" if v >= 0 else "#6a51a3" for v in vals])
        ax.set_yticks(np.arange(len(rois)), list(rois), fontsize=7)
        ax.set_xlim(-1.1 * lim, 1.1 * lim)
        ax.axvline(0, color="0.4", lw=0.6)
        ax.invert_yaxis()
        if i == 0:
            ax.set_title("predicted change per ROI", fontsize=8)
        ax.set_xlabel(f"change ({change_unit})", fontsize=7)
        ax.set_ylabel("ROI", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    scale, _ = eps_scale(norm)
    eps_txt = f"{eps * scale:.3g}" + ("/255" if norm == "linf" else "")
    fig.suptitle(f"Probes on {model}: {NORM_LABEL.get(norm, norm)} ε = {eps_txt}", fontsize=10)
    finish(fig)
    return fig
