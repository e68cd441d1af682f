"""Semantics of probes: spatial-frequency content and the change they cause in an ImageNet classifier."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    as_images,
    boot_means,
    boot_weights,
    ci,
    eps_array,
    forward,
    organise,
    probed_images,
)
from brainprobe.errors import ConfigError


def low_frequency_share(delta: torch.Tensor | np.ndarray, cutoff: float = 0.1) -> np.ndarray:
    """Share of each perturbation's energy below a radial spatial frequency.

    Parameters
    ----------
    delta : ... x 3 x H x W
    cutoff : float
        Radial frequency in cycles per pixel (Nyquist = 0.5).

    Returns
    -------
    ... : sum of |FFT2(delta)|^2 (over channels) at sqrt(fx^2 + fy^2) < cutoff over the total; NaN
    for an all-zero perturbation. White noise gives about the share of frequency bins below the
    cutoff (pi cutoff^2 for cutoff <= 0.5), see :func:`white_noise_share`.
    """
    if not 0 < cutoff <= np.sqrt(0.5):
        raise ConfigError(f"cutoff must be in (0, 0.707] cycles per pixel, got {cutoff}")
    d = torch.as_tensor(np.asarray(delta) if not isinstance(delta, torch.Tensor) else delta).double()
    power = torch.fft.fft2(d).abs().pow(2).sum(dim=-3)  # ... x H x W
    low = _low_mask(d.shape[-2], d.shape[-1], cutoff)
    total = power.sum(dim=(-2, -1))
    share = (power * low).sum(dim=(-2, -1)) / total
    return torch.where(total > 0, share, torch.full_like(share, float("nan"))).numpy()


def _low_mask(h: int, w: int, cutoff: float) -> torch.Tensor:
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    return (torch.sqrt(fx**2 + fy**2) < cutoff).double()


def white_noise_share(h: int, w: int, cutoff: float) -> float:
    """Expected low-frequency share of white noise: share of the FFT bins below ``cutoff``."""
    return float(_low_mask(h, w, cutoff).mean())


def classifier_change(
    classifier: nn.Module, clean: torch.Tensor, perturbed: torch.Tensor, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """KL(p_clean || p_perturbed) in nats and top-1 flips of a classifier (logits) per image.

    clean : N x 3 x H x W; perturbed : M x N x 3 x H x W (M probe sets of the same images).
    Returns kl (M x N) and flip (M x N, bool).
    """
    lc = forward(classifier, clean, batch_size).double()
    lp = forward(classifier, perturbed.reshape(-1, *clean.shape[1:]), batch_size).double()
    lp = lp.reshape(perturbed.shape[0], clean.shape[0], -1)
    logp = torch.log_softmax(lc, -1)[None]
    logq = torch.log_softmax(lp, -1)
    kl = (logp.exp() * (logp - logq)).sum(-1).clamp_min(0)
    flip = lc.argmax(-1)[None] != lp.argmax(-1)
    return kl.numpy(), flip.numpy()


def semantics(
    images: Any,
    probes: Mapping[str, Any],
    *,
    classifier: nn.Module | None = None,
    classifier_name: str = "",
    cutoff: float = 0.1,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    models: Mapping[str, nn.Module] | None = None,
    batch_size: int = 32,
) -> xr.Dataset:
    """Semantic measures of each model's probes, per norm and budget.

    - ``low_freq_share``: energy share below ``cutoff`` cycles/pixel (:func:`low_frequency_share`);
      compare with ``white_noise_share`` (attr): above it = smoother than noise.
    - with ``classifier`` (an independent ImageNet classifier mapping [0, 1] images to logits,
      e.g. ``brainprobe.zoo.load_backbone("mobilenet_v2")``): ``kl`` = KL(p_clean || p_probe) in
      nats and ``top1_flip`` = whether its top-1 class changed.

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        per-image variables (model, norm, eps, image) and their means with bootstrap CIs
        (``*_mean``, ``*_ci_low``, ``*_ci_high``) (model, norm, eps).
    """
    x = as_images(images)
    n, h, w_ = x.shape[0], x.shape[2], x.shape[3]
    by_model = organise(probes)
    names = list(by_model)
    norms = sorted({nm for d in by_model.values() for nm in d})
    grids = {(k, nm): eps_array(d[nm]) for k, d in by_model.items() for nm in d}
    all_eps = np.unique(np.concatenate(list(grids.values())))
    shape = (len(names), len(norms), len(all_eps), n)
    share = np.full(shape, np.nan)
    kl = np.full(shape, np.nan)
    flip = np.full(shape, np.nan)
    for mi, name in enumerate(progress(names, desc="semantics")):
        for ni, nm in enumerate(norms):
            if nm not in by_model[name]:
                continue
            pr = by_model[name][nm]
            pos = np.searchsorted(all_eps, grids[(name, nm)])
            share[mi, ni, pos] = low_frequency_share(pr.delta.detach().cpu(), cutoff)
            if classifier is not None:
                moved = probed_images(x, pr.delta).reshape(pr.delta.shape)
                k_, f_ = classifier_change(classifier, x, moved, batch_size)
                kl[mi, ni, pos] = k_
                flip[mi, ni, pos] = f_
    wts = boot_weights(n, n_boot, seed, groups=groups)
    data: dict[str, Any] = {}
    d4, d3 = ("model", "norm", "eps", "image"), ("model", "norm", "eps")
    variables = {"low_freq_share": share}
    if classifier is not None:
        variables.update(kl=kl, top1_flip=flip)
    for key, val in variables.items():
        lo, hi = ci(boot_means(val, wts), level)
        data[key] = (d4, val)
        data[f"{key}_mean"] = (d3, val.mean(-1))
        data[f"{key}_ci_low"] = (d3, lo)
        data[f"{key}_ci_high"] = (d3, hi)
    coords: dict[str, Any] = {"model": names, "norm": norms, "eps": all_eps, "image": np.arange(n)}
    if models is not None or info is not None:
        from brainprobe.analysis._common import model_info

        table = model_info({k: (models or {}).get(k) for k in names}, info)
        coords["training"] = ("model", table["training"].to_numpy(dtype=str))
        coords["architecture"] = ("model", table["architecture"].to_numpy(dtype=str))
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "analysis": "semantics",
            "cutoff_cycles_per_pixel": float(cutoff),
            "white_noise_share": white_noise_share(h, w_, cutoff),
            "classifier": classifier_name or (type(classifier).__name__ if classifier is not None else ""),
            "kl_units": "nats",
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
