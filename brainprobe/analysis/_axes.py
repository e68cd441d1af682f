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


EXACT_MAX_TARGETS = 256
"""``local_axes(method="auto")`` computes the exact Jacobian up to this many targets."""
EXACT_MAX_BYTES = 2**30
"""... and while the float64 Jacobians of one batch of images fit in this many bytes."""


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
        targets. ``auto``: exact when there are <= ``EXACT_MAX_TARGETS`` targets and the
        Jacobians fit in ``EXACT_MAX_BYTES``, else randomized. A JVP by double backward costs
        several VJPs, so the randomized method only wins for many targets: on MobileNetV2
        (``features.10`` + a 100-target readout, 64 px, 8 images, one thread) exact took 4.2 s,
        randomized 16.8 s (oversample 10, 2 power iterations) and 6.8 s (5, 1), with the
        randomized top singular values 0.1-3% low.

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
        fits = x.shape[0] * t * p * 8 <= EXACT_MAX_BYTES
        method = "exact" if (t <= EXACT_MAX_TARGETS and fits) or t <= 4 * (k + oversample) else "randomized"
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


def mismatched_alignment(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per image i, the mean alignment of ``a``'s axes at image i with ``b``'s at every other image j.

    The mismatched-image null: what two models' local axes share at *different* images (image-
    independent structure such as a preference for low spatial frequencies). Symmetrised:
    ``null[i] = mean over j != i of (align(a_i, b_j) + align(a_j, b_i)) / 2``.

    Parameters
    ----------
    a, b : tensor N x k x P, orthonormal rows per image (N >= 2)

    Returns
    -------
    ndarray N, in [0, 1]
    """
    n = a.shape[0]
    if n < 2:
        raise ConfigError("the mismatched-image null needs >= 2 images")
    a_, b_ = a.double(), b.double()
    m = torch.einsum("ikp,jlp->ijkl", a_, b_).pow(2).sum(dim=(-1, -2)) / min(a_.shape[1], b_.shape[1])  # N x N
    off = ~torch.eye(n, dtype=torch.bool)
    sym = (m + m.T) / 2
    return (sym * off).sum(1).div(n - 1).numpy()


class _Whitened(nn.Module):
    """``model(x) / scale``: responses in units of a per-output SD (noise-whitened when ``scale`` is a noise SD)."""

    def __init__(self, model: nn.Module, scale: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("inv", torch.as_tensor(1.0 / np.asarray(scale, dtype=np.float64), dtype=torch.float32))
        self.targets = getattr(model, "targets", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y * self.inv.to(y.device, y.dtype)


def _output_scale(model: nn.Module, name: str, x: torch.Tensor, noise_sd: np.ndarray | None, n_out: int,
                  batch_size: int) -> tuple[np.ndarray, str]:
    """Per-output scale used to whiten ``model``: the brain's trial-noise SD, else the model's own SD."""
    from brainprobe.analysis._common import forward, model_sd

    if noise_sd is not None:
        return noise_sd, "brain trial-noise SD"
    clean = forward(model, x, batch_size).double().numpy() if getattr(model, "response_sd", None) is None else \
        np.zeros((2, n_out))
    has_own = getattr(model, "response_sd", None) is not None
    return model_sd(model, clean, f"coding axes: outputs of {name}"), (
        "model response_sd" if has_own else "SD of the model's outputs on the axes images")


def calibrate_batchnorm(net: nn.Module, images: torch.Tensor, batch_size: int = 16) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on ``images`` (N x 3 x H x W), in place.

    Only the BatchNorm layers run in training mode: dropout and drop-connect stay off, so the
    statistics do not depend on the global random state (EfficientNet's drop-connect made the
    random-network null differ between runs of the same seed). Cumulative average over batches.
    """
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            net(images[start : start + batch_size])
    return net.eval()


def random_encoder(encoder: nn.Module, dataset: Any, *, seed: int = 0, n_calibration: int = 64,
                   device: Any = None) -> nn.Module:
    """The random-network null of an Encoder: same architecture, random weights, its own ridge readout.

    The encoder's backbone is rebuilt from its zoo spec with random initial weights
    (``spec.builder()`` under ``torch.manual_seed(seed)``); its BatchNorm statistics are re-estimated
    on up to ``n_calibration`` training images of ``dataset`` (random-init running statistics are
    0 / 1, which would make the activations explode or vanish with depth); then a fresh encoder is
    fitted with :func:`brainprobe.encoding.fit_encoder` on the same dataset, layers and pooling.
    Its own readout, not the trained readout on random features: the trained readout's weights
    index channels of the trained network, which mean nothing in a random one, so it would test a
    random projection, not "the architecture fitted to the same data without learned features".

    Returns
    -------
    Encoder (random features, fitted readout); ``training_kind`` = ``"random"``.
    """
    from brainprobe._images import to_float_tensor
    from brainprobe.encoding import fit_encoder
    from brainprobe.zoo import get_spec
    from brainprobe.zoo.backbone import Backbone, disable_inplace, freeze

    name = getattr(encoder, "backbone_name", None)
    bb = getattr(encoder, "_backbone", None)
    if not isinstance(name, str) or bb is None:
        raise ConfigError(f"random_encoder needs a fitted Encoder (with a zoo backbone), got {type(encoder).__name__}")
    spec = get_spec(name)
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        net = disable_inplace(spec.builder())
    rnd = Backbone(spec, net, bb.preprocess, f"random-init-seed{seed}", "")
    train = np.flatnonzero(np.asarray(dataset.split) == "train")[:n_calibration]
    calib = to_float_tensor(np.asarray(dataset.stimuli)[train])
    calibrate_batchnorm(rnd, calib)
    freeze(rnd)
    if device is not None:
        rnd.to(device)
    layers = list(getattr(encoder, "layers", []))
    enc = fit_encoder(rnd, dataset, layer=layers if len(layers) > 1 else layers[0], pooling=encoder.pooling,
                      device=device, n_boot=10, cache=False, seed=seed)
    enc.training_kind = "random"  # type: ignore[attr-defined]
    return enc


def coding_axes(
    models: Mapping[str, nn.Module],
    images: Any,
    *,
    rois: TargetSpec = None,
    k: int = 3,
    method: Literal["auto", "exact", "randomized"] = "auto",
    oversample: int = 10,
    power_iters: int = 2,
    brain: nn.Module | None = None,
    brain_name: str = "brain",
    noise_sd: Any = None,
    whiten: bool = True,
    random_models: Mapping[str, nn.Module] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    batch_size: int = 4,
) -> xr.Dataset:
    """Alignment of local coding axes between models (and with an image-computable brain), against nulls.

    At each image and for each ROI, each model's top-k right singular subspace of the Jacobian
    of its ROI responses w.r.t. the pixels (:func:`local_axes`), with the responses in whitened
    units; alignment of two models at an image = mean squared cosine of the principal angles
    between their subspaces (:func:`subspace_alignment`), 1 = same axes, ``chance`` = k / P.

    Whitening (``whiten=True``): every output is divided by ``noise_sd`` (the brain's trial-noise
    SD per target, diagonal noise covariance) when given, for every model and the brain alike, so
    "most effective direction" means most detectable above trial noise; else each model by its own
    per-output SD (``response_sd`` where it has one, else across these images).

    Nulls:

    - mismatched images (:func:`mismatched_alignment`): A's axes at image i vs B's at j != i; what
      the two share regardless of the image. ``excess`` = matched / mismatched - 1 (0: no more
      than image-independent structure), a ratio of means, with its bootstrap CI.
    - random networks (``random_models``: model name -> a randomly initialised network of the
      same architecture, e.g. :func:`random_encoder`): the brain alignment of the random
      counterpart (``random_brain_alignment``) says how much of a model's alignment its
      architecture alone gives.

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        ``alignment_image``, ``mismatched_image`` (roi, model_a, model_b, image); ``alignment``,
        ``mismatched``, ``excess`` (+ ``_ci_low/high``) (roi, model_a, model_b); ``singular_values``
        (model, roi, image, component); ``chance`` (roi); with a brain, ``brain_alignment``,
        ``brain_mismatched``, ``brain_excess`` (+ CI) (model, roi), per-image
        ``brain_alignment_image``, ``brain_mismatched_image`` (model, roi, image), and the brain as
        one more entry of model / model_a / model_b; with ``random_models`` (and a brain)
        ``random_brain_alignment``, ``random_brain_excess`` (+ CI) (model, roi; NaN where a model
        has no random counterpart).
    """
    x = as_images(images)
    n, p = x.shape[0], int(np.prod(x.shape[1:]))
    if n < 2:
        raise ConfigError(f"coding axes need >= 2 images for the mismatched-image null, got {n}")
    members: dict[str, nn.Module] = dict(models)
    if brain is not None:
        if brain_name in members:
            raise ConfigError(f"brain_name {brain_name!r} is also a model name; pick another")
        members[brain_name] = brain
    randoms = {f"{m} (random init)": net for m, net in (random_models or {}).items()}
    unknown = [m for m in (random_models or {}) if m not in models]
    if unknown:
        raise ConfigError(f"random_models given for {unknown}, which are not among the models {list(models)}")
    names = list(members)
    first = members[names[0]]
    n_out = _n_outputs(first, x)
    sets = roi_sets(first, n_out, rois)
    roi_names = list(sets)
    kmax = max(min(k, len(v)) for v in sets.values())
    everyone = {**members, **randoms}
    for name, model in everyone.items():
        if _n_outputs(model, x[:1]) != n_out:
            raise ConfigError(f"model {name!r} has a different number of targets than {names[0]!r}; they must share targets")
    nsd = None
    if noise_sd is not None:
        nsd = np.asarray(noise_sd, dtype=np.float64).reshape(-1)
        if nsd.shape != (n_out,) or not (np.isfinite(nsd).all() and (nsd > 0).all()):
            raise ConfigError(f"coding axes: noise_sd must hold {n_out} positive finite values (one per target), "
                              f"got shape {nsd.shape}")
    units = "raw outputs"
    if whiten:
        wrapped = {}
        for name, model in everyone.items():
            scale, units = _output_scale(model, name, x, nsd, n_out, batch_size)
            wrapped[name] = _Whitened(model, scale).to(model_device(model))
        everyone = wrapped
    all_names = list(everyone)
    sv = np.full((len(all_names), len(roi_names), n, kmax), np.nan)
    align = np.zeros((len(roi_names), len(all_names), len(all_names), n))
    mism = np.zeros_like(align)
    for ri, roi in enumerate(roi_names):
        axes: dict[str, torch.Tensor] = {}  # one ROI at a time: images x k x P in float32
        done_by_net: dict[int, str] = {}  # random counterparts shared by an architecture's models: compute once
        for mi, name in enumerate(progress(all_names, desc=f"coding axes {roi}")):
            net_id = id(everyone[name]) if not whiten else id(everyone[name].model)
            if name in randoms and net_id in done_by_net:
                axes[name] = axes[done_by_net[net_id]]
                sv[mi, ri] = sv[all_names.index(done_by_net[net_id]), ri]
                continue
            if name in randoms:
                done_by_net[net_id] = name
            chunks_v, chunks_s = [], []
            for start in range(0, n, batch_size):
                v, s = local_axes(everyone[name], x[start : start + batch_size], sets[roi].tolist(), k=k,
                                  method=method, oversample=oversample, power_iters=power_iters, seed=seed + start)
                chunks_v.append(v.flatten(2).float())
                chunks_s.append(s)
            axes[name] = torch.cat(chunks_v)
            s_all = torch.cat(chunks_s).numpy()
            sv[mi, ri, :, : s_all.shape[1]] = s_all
        for i, a in enumerate(all_names):
            for j in range(i, len(all_names)):
                align[ri, i, j] = align[ri, j, i] = subspace_alignment(axes[a], axes[all_names[j]])
                mism[ri, i, j] = mism[ri, j, i] = mismatched_alignment(axes[a], axes[all_names[j]])
    w = boot_weights(n, n_boot, seed, groups=groups)
    b_al, b_mm = boot_means(align, w), boot_means(mism, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = align.mean(-1) / mism.mean(-1) - 1
        b_ex = b_al / b_mm - 1
    lo, hi = ci(b_al, level)
    mlo, mhi = ci(b_mm, level)
    elo, ehi = ci(b_ex, level)
    keep = [all_names.index(m) for m in names]  # the random counterparts are reported apart
    ix = np.ix_(range(len(roi_names)), keep, keep)
    table = model_info(members, info)
    if brain is not None and table.loc[brain_name, "architecture"] == "unknown":
        table.loc[brain_name, "architecture"] = "brain"
    pair = ("roi", "model_a", "model_b")
    data: dict[str, Any] = {
        "alignment_image": (pair + ("image",), align[ix]),
        "mismatched_image": (pair + ("image",), mism[ix]),
        "alignment": (pair, align.mean(-1)[ix]),
        "alignment_ci_low": (pair, lo[ix]),
        "alignment_ci_high": (pair, hi[ix]),
        "mismatched": (pair, mism.mean(-1)[ix]),
        "mismatched_ci_low": (pair, mlo[ix]),
        "mismatched_ci_high": (pair, mhi[ix]),
        "excess": (pair, excess[ix]),
        "excess_ci_low": (pair, elo[ix]),
        "excess_ci_high": (pair, ehi[ix]),
        "singular_values": (("model", "roi", "image", "component"), sv[keep]),
        "chance": (("roi",), np.array([min(k, len(sets[r])) / p for r in roi_names])),
    }
    if brain is not None:
        bi = all_names.index(brain_name)
        mr = ("model", "roi")
        data["brain_alignment_image"] = (mr + ("image",), align[:, keep, bi].transpose(1, 0, 2))
        data["brain_mismatched_image"] = (mr + ("image",), mism[:, keep, bi].transpose(1, 0, 2))
        for key, val, l_, h_ in (("brain_alignment", align.mean(-1), lo, hi), ("brain_mismatched", mism.mean(-1), mlo, mhi),
                                 ("brain_excess", excess, elo, ehi)):
            data[key] = (mr, val[:, keep, bi].T)
            data[f"{key}_ci_low"] = (mr, l_[:, keep, bi].T)
            data[f"{key}_ci_high"] = (mr, h_[:, keep, bi].T)
        if randoms:
            rnd = {key: np.full((len(names), len(roi_names)), np.nan) for key in
                   ("random_brain_alignment", "random_brain_alignment_ci_low", "random_brain_alignment_ci_high",
                    "random_brain_excess", "random_brain_excess_ci_low", "random_brain_excess_ci_high")}
            for m in random_models or {}:
                ri_ = all_names.index(f"{m} (random init)")
                mi_ = names.index(m)
                for key, val in (("random_brain_alignment", align.mean(-1)), ("random_brain_alignment_ci_low", lo),
                                 ("random_brain_alignment_ci_high", hi), ("random_brain_excess", excess),
                                 ("random_brain_excess_ci_low", elo), ("random_brain_excess_ci_high", ehi)):
                    rnd[key][mi_] = val[:, ri_, bi]
            data.update({key: (("model", "roi"), val) for key, val in rnd.items()})
    coords: dict[str, Any] = {
        "roi": roi_names,
        "model": names,
        "model_a": names,
        "model_b": names,
        "image": np.arange(n),
        "component": np.arange(kmax),
        "training": ("model", table.loc[names, "training"].to_numpy(dtype=str)),
        "architecture": ("model", table.loc[names, "architecture"].to_numpy(dtype=str)),
    }
    if groups is not None:
        coords["group"] = ("image", np.asarray(groups).astype(str))
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "analysis": "axes",
            "k": int(k),
            "method": str(method),
            "oversample": int(oversample),
            "power_iters": int(power_iters),
            "n_pixels": int(p),
            "n_images": int(n),
            "units": units if whiten else "raw outputs",
            "has_brain": int(brain is not None),
            "brain": brain_name if brain is not None else "",
            "random_models": ", ".join(random_models or {}),
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
