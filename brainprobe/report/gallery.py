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


def white_noise_like(delta: np.ndarray, norm: str, seed: int = 0) -> np.ndarray:
    """Seeded white noise of the same size as each probe in its norm: N x 3 x H x W.

    l2: Gaussian pixels scaled to each probe's l2 norm; linf: random signs times each probe's
    max |delta| (PGD-linf probes sit at +-eps almost everywhere, so their l2 norms match too).
    """
    d = np.asarray(delta, dtype=np.float32)
    rng = np.random.default_rng(seed)
    flat = d.reshape(len(d), -1)
    if norm == "linf":
        size = np.abs(flat).max(axis=1)
        z = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=flat.shape) * size[:, None]
    else:
        z = rng.standard_normal(flat.shape).astype(np.float32)
        z *= (np.linalg.norm(flat, axis=1) / np.maximum(np.linalg.norm(z, axis=1), 1e-30))[:, None]
    return z.reshape(d.shape).astype(np.float32)


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
    noise=None,
    noise_change: np.ndarray | None = None,
):
    """One row per image: clean, amplified perturbation, perturbed image, change per ROI.

    With ``noise``: also the equal-norm white noise, amplified by the same gain, and the noisy
    image, and the noise's change beside the probe's (grey bars).

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
    noise : float N x 3 x H x W, optional
        An equal-norm white-noise perturbation per image.
    noise_change : float N x R, optional
        The predicted change the noise causes.

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
    z = _hwc(noise) if noise is not None else None
    nz_change = np.asarray(noise_change, dtype=float) if noise_change is not None else None
    n_img = 3 if z is None else 5
    fig, axes = plt.subplots(n, n_img + 1, figsize=(2.25 * n_img + 2.3, 2.4 * n + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * n_img + [1.35]})
    both = change[:n] if nz_change is None else np.concatenate([change[:n], nz_change[:n]])
    lim = float(np.nanmax(np.abs(both))) if both.size else 1.0
    lim = lim if lim > 0 else 1.0
    for i in range(n):
        amp_max = float(np.abs(d[i]).max())
        gain = 0.5 / amp_max if amp_max > 0 else 1.0
        panels = [(clean[i], "image", ""), (np.clip(0.5 + gain * d[i], 0, 1), "probe (amplified)",
                                            f"×{gain:.0f}, max |δ| = {amp_max * 255:.2f}/255"),
                  (perturbed[i], "image + probe", "not amplified")]
        if z is not None:
            z_max = float(np.abs(z[i]).max())
            panels += [(np.clip(0.5 + gain * z[i], 0, 1), "noise (amplified)", f"×{gain:.0f}, same norm"),
                       (np.clip(clean[i] + z[i], 0, 1), "image + noise", f"max |δ| = {z_max * 255:.2f}/255")]
        for j, (img, label, xlabel) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if i == 0:
                ax.set_title(label, fontsize=8)
            if xlabel:
                ax.set_xlabel(xlabel, fontsize=7)
        ax = axes[i, n_img]
        vals = change[i]
        ypos = np.arange(len(rois))
        height = 0.8 if nz_change is None else 0.4
        ax.barh(ypos - (0 if nz_change is None else 0.2), vals, height=height,
                color=["#238b45" if v >= 0 else "#6a51a3" for v in vals], label="probe")
        if nz_change is not None:
            ax.barh(ypos + 0.2, nz_change[i], height=height, color="0.6", label="noise")
            if i == 0:
                ax.legend(fontsize=6, loc="lower right", frameon=False)
        ax.set_yticks(ypos, list(rois), fontsize=7)
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
