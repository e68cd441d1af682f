"""Local coding axes: top right singular vectors of each model's pixel Jacobian, and their alignment."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from brainprobe._progress import progress
from brainprobe.analysis._common import (
    TargetSpec,
    as_images,
    boot_means,
    boot_weights,
    ci,
    model_device,
    model_info,
    roi_sets,
)
from brainprobe.errors import ConfigError


def _outputs(model: nn.Module, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    y = model(x)
    return y.index_select(1, idx.to(y.device))


def jacobian(model: nn.Module, images: torch.Tensor, idx: Any) -> torch.Tensor:
    """Exact Jacobian of the selected outputs w.r.t. the pixels: N x T_sel x P (one VJP per target)."""
    dev = model_device(model)
    idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    x = images.to(dev).clone().requires_grad_(True)
    y = _outputs(model, x, idx_t)
    rows = []
    for t in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, t].sum(), x, retain_graph=t + 1 < y.shape[1])
        rows.append(g.flatten(1).detach().double().cpu())
    return torch.stack(rows, dim=1)


def local_axes(
    model: nn.Module,
    images: Any,
    targets: TargetSpec = None,
    *,
    k: int = 3,
    method: Literal["auto", "exact", "randomized"] = "auto",
    oversample: int = 10,
    power_iters: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k right singular vectors of d responses[targets] / d pixels at each image.

    These are the model's local coding axes (its most effective pixel directions, the
    eigendistortions of Berardino et al. 2017 for a Euclidean response metric).

    Parameters
    ----------
    model : nn.Module
    images : tensor N x 3 x H x W in [0, 1]
    targets : target spec (default: all outputs)
    k : int
        Number of axes.
    method : {"auto", "exact", "randomized"}
        ``exact``: full Jacobian by one vector-Jacobian product per target, then SVD.
        ``randomized``: Halko et al. (2011) range finder on J^T with ``k + oversample`` VJPs and
        ``power_iters`` power iterations (Jacobian-vector products by double backward); for many
        targets. ``auto``: exact when there are <= 4 (k + oversample) targets.

    Returns
    -------
    axes : tensor N x k x 3 x H x W (float64, orthonormal over pixels)
    singular_values : tensor N x k (response units per unit l2 pixel change)
    """
    from brainprobe.analysis._common import resolve

    x = as_images(images)
    n_out = _n_outputs(model, x)
    idx = resolve(model, targets, n_out)
    t, p = len(idx), int(np.prod(x.shape[1:]))
    k_eff = min(k, t, p)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if method == "auto":
        method = "exact" if t <= 4 * (k + oversample) else "randomized"
    if method == "exact":
        jac = jacobian(model, x, idx)  # N x T x P
        _, s, vh = torch.linalg.svd(jac, full_matrices=False)
        v, s = vh[:, :k_eff], s[:, :k_eff]
    elif method == "randomized":
        v, s = _randomized(model, x, idx, k_eff, oversample, power_iters, seed)
    else:
        raise ConfigError(f"axes method must be 'auto', 'exact' or 'randomized', got {method!r}")
    return v.reshape(x.shape[0], k_eff, *x.shape[1:]), s


def _n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1].to(model_device(model))).shape[1])


def _randomized(
    model: nn.Module, x: torch.Tensor, idx: np.ndarray, k: int, oversample: int, power_iters: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomised SVD of each image's J (T x P) from products with J^T (VJPs) and J (JVPs)."""
    dev = model_device(model)
    idx_t = torch.as_tensor(idx, dtype=torch.long)
    n, t = x.shape[0], len(idx)
    ell = min(k + oversample, t)
    gen = torch.Generator().manual_seed(seed)
    omega = torch.randn(n, t, ell, generator=gen, dtype=torch.float64)
    xr_ = x.to(dev).clone().requires_grad_(True)
    y = _outputs(model, xr_, idx_t)  # N x T

    def jt(u: torch.Tensor, create: bool = False) -> torch.Tensor:  # u: N x T -> J^T u: N x P
        (g,) = torch.autograd.grad(y, xr_, grad_outputs=u.to(y.dtype).to(dev), retain_graph=True, create_graph=create)
        return g.flatten(1)

    def j(v: torch.Tensor) -> torch.Tensor:  # v: N x P -> J v: N x T (double backward)
        u = torch.zeros_like(y, requires_grad=True)
        g = jt(u, create=True)
        (jv,) = torch.autograd.grad(g, u, grad_outputs=v.to(g.dtype).to(dev), retain_graph=True)
        return jv.detach().double().cpu()

    def jt_cols(u: torch.Tensor) -> torch.Tensor:  # N x T x L -> N x P x L
        return torch.stack([jt(u[:, :, c]).detach().double().cpu() for c in range(u.shape[2])], dim=2)

    def j_cols(v: torch.Tensor) -> torch.Tensor:  # N x P x L -> N x T x L
        return torch.stack([j(v[:, :, c]) for c in range(v.shape[2])], dim=2)

    q, _ = torch.linalg.qr(jt_cols(omega))  # N x P x L: range of J^T
    for _ in range(power_iters):
        q, _ = torch.linalg.qr(jt_cols(j_cols(q)))
    b = j_cols(q)  # N x T x L = J Q
    _, s, wh = torch.linalg.svd(b, full_matrices=False)
    v = torch.einsum("npl,nkl->nkp", q, wh[:, :k])
    return v, s[:, :k]


def subspace_alignment(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean squared cosine of the principal angles between row spaces of orthonormal ``a``, ``b``.

    a, b : ... x k x P with orthonormal rows. Returns ... : ||a b^T||_F^2 / k, in [0, 1]; 1 for the
    same subspace, about k / P for random subspaces.
    """
    a_ = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double()
    b_ = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).double()
    m = a_ @ b_.transpose(-1, -2)
    return (m**2).sum(dim=(-1, -2)).div(min(a_.shape[-2], b_.shape[-2])).numpy()


def coding_axes(
    models: Mapping[str, nn.Module],
    images: Any,
    *,
    rois: TargetSpec = None,
    k: int = 3,
    method: Literal["auto", "exact", "randomized"] = "auto",
    brain: nn.Module | None = None,
    brain_name: str = "brain",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    batch_size: int = 4,
) -> xr.Dataset:
    """Alignment of local coding axes between models (and with an image-computable brain).

    At each image and for each ROI, each model's top-k right singular subspace of the Jacobian
    of its ROI responses w.r.t. the pixels (:func:`local_axes`); alignment of two models at an
    image = mean squared cosine of the principal angles between their subspaces
    (:func:`subspace_alignment`), 1 = same axes, ``chance`` = k / P for random subspaces.

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``alignment_image`` (roi, model_a, model_b, image); ``alignment``, ``alignment_ci_low/high``
        (roi, model_a, model_b): mean over images with bootstrap CI; ``singular_values`` (model, roi,
        image, component); ``chance`` (roi); with a brain, ``brain_alignment`` (+ CI) (model, roi)
        and the brain as one more entry of model / model_a / model_b.
    """
    x = as_images(images)
    n, p = x.shape[0], int(np.prod(x.shape[1:]))
    members: dict[str, nn.Module] = dict(models)
    if brain is not None:
        if brain_name in members:
            raise ConfigError(f"brain_name {brain_name!r} is also a model name; pick another")
        members[brain_name] = brain
    names = list(members)
    first = members[names[0]]
    n_out = _n_outputs(first, x)
    sets = roi_sets(first, n_out, rois)
    roi_names = list(sets)
    kmax = max(min(k, len(v)) for v in sets.values())
    for name, model in members.items():
        if _n_outputs(model, x[:1]) != n_out:
            raise ConfigError(f"model {name!r} has a different number of targets than {names[0]!r}; they must share targets")
    sv = np.full((len(names), len(roi_names), n, kmax), np.nan)
    align = np.zeros((len(roi_names), len(names), len(names), n))
    jobs = [(ri, roi, mi, name) for ri, roi in enumerate(roi_names) for mi, name in enumerate(names)]
    axes: dict[str, torch.Tensor] = {}  # one ROI at a time: models x images x k x P in float32
    for ri, roi, mi, name in progress(jobs, desc="coding axes"):
        chunks_v, chunks_s = [], []
        for start in range(0, n, batch_size):
            v, s = local_axes(members[name], x[start : start + batch_size], sets[roi].tolist(), k=k, method=method,
                              seed=seed + start)
            chunks_v.append(v.flatten(2).float())
            chunks_s.append(s)
        axes[name] = torch.cat(chunks_v)
        s_all = torch.cat(chunks_s).numpy()
        sv[mi, ri, :, : s_all.shape[1]] = s_all
        if mi == len(names) - 1:
            for i, a in enumerate(names):
                for j in range(i, len(names)):
                    align[ri, i, j] = align[ri, j, i] = subspace_alignment(axes[a], axes[names[j]])
            axes.clear()
    w = boot_weights(n, n_boot, seed, groups=groups)
    lo, hi = ci(boot_means(align, w), level)
    table = model_info(members, info)
    if brain is not None and table.loc[brain_name, "architecture"] == "unknown":
        table.loc[brain_name, "architecture"] = "brain"
    data: dict[str, Any] = {
        "alignment_image": (("roi", "model_a", "model_b", "image"), align),
        "alignment": (("roi", "model_a", "model_b"), align.mean(-1)),
        "alignment_ci_low": (("roi", "model_a", "model_b"), lo),
        "alignment_ci_high": (("roi", "model_a", "model_b"), hi),
        "singular_values": (("model", "roi", "image", "component"), sv),
        "chance": (("roi",), np.array([min(k, len(sets[r])) / p for r in roi_names])),
    }
    if brain is not None:
        bi = names.index(brain_name)
        data["brain_alignment"] = (("model", "roi"), align[:, :, bi].mean(-1).T)
        data["brain_alignment_ci_low"] = (("model", "roi"), lo[:, :, bi].T)
        data["brain_alignment_ci_high"] = (("model", "roi"), hi[:, :, bi].T)
    return xr.Dataset(
        data,
        coords={
            "roi": roi_names,
            "model": names,
            "model_a": names,
            "model_b": names,
            "image": np.arange(n),
            "component": np.arange(kmax),
            "training": ("model", table.loc[names, "training"].to_numpy(dtype=str)),
            "architecture": ("model", table.loc[names, "architecture"].to_numpy(dtype=str)),
        },
        attrs={
            "analysis": "axes",
            "k": int(k),
            "method": str(method),
            "n_pixels": int(p),
            "has_brain": int(brain is not None),
            "brain": brain_name if brain is not None else "",
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
