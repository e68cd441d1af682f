"""Semantics of probes: spatial-frequency content and the change they cause in judges, against equal-norm noise."""

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
from brainprobe.analysis._baselines import KINDS, random_like
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


class GaborEnergy(nn.Module):
    """A non-learned V1-like judge: local oriented energy of the luminance image (no training data).

    Luminance (Rec. 601) is filtered by a quadrature pair of Gabor kernels
    (``skimage.filters.gabor_kernel``) at ``frequencies`` (cycles per pixel) x ``orientations``;
    energy = sqrt(even^2 + odd^2) (a complex cell), average-pooled over ``pool`` x ``pool`` pixel
    blocks (kernels with their DC removed, reflect padding). Its output (N x features) is compared with :func:`judge_change` as a relative change.
    It judges visible structure (edges, texture), not categories: it shares nothing with any
    candidate or brain network.
    """

    def __init__(self, frequencies: tuple[float, ...] = (0.05, 0.1, 0.2), orientations: int = 4, pool: int = 8) -> None:
        super().__init__()
        from skimage.filters import gabor_kernel

        kernels = [gabor_kernel(f, theta=np.pi * o / orientations) for f in frequencies for o in range(orientations)]
        size = max(max(k.shape) for k in kernels)
        bank = np.zeros((2 * len(kernels), 1, size, size))
        for i, k in enumerate(kernels):
            r0, c0 = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
            bank[2 * i, 0, r0 : r0 + k.shape[0], c0 : c0 + k.shape[1]] = k.real
            bank[2 * i + 1, 0, r0 : r0 + k.shape[0], c0 : c0 + k.shape[1]] = k.imag
        bank -= bank.mean(axis=(-2, -1), keepdims=True)  # zero DC: blind to a uniform brightness change
        self.register_buffer("bank", torch.tensor(bank, dtype=torch.float32))
        self.pool = int(pool)
        self.frequencies, self.orientations = tuple(frequencies), int(orientations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W in [0, 1] -> pooled oriented energy, N x (filters x H/pool x W/pool)."""
        lum = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        half = self.bank.shape[-1] // 2
        lum = nn.functional.pad(lum, (half, half, half, half), mode="reflect" if min(lum.shape[-2:]) > half else "replicate")
        r = nn.functional.conv2d(lum, self.bank.to(lum.dtype))
        energy = (r[:, 0::2] ** 2 + r[:, 1::2] ** 2 + 1e-12).sqrt()
        return nn.functional.avg_pool2d(energy, self.pool, ceil_mode=True).flatten(1)


class NLPDistance(nn.Module):
    """A perceptual-distance judge: the Normalized Laplacian Pyramid Distance (Laparra et al. 2016).

    A model of early vision with no training on images of objects: a Laplacian pyramid removes
    the local mean luminance at each scale, and each coefficient is divided by a weighted sum of
    its neighbours' magnitudes (local contrast gain control), with the constants of the paper
    (fitted for redundancy reduction on natural images). Computed by plenoptic
    (``plenoptic.metric.nlpd``) on the luminance image (Rec. 601), for which it was designed.
    It shares nothing with any candidate or brain network; it judges how *visible* a change is
    to an early visual system, which is what "a probe changes the image in a way one can see"
    means before any category enters.
    """

    judge_kind = "distance"
    min_size = 48

    def distance(self, clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        """clean, perturbed: N x 3 x H x W in [0, 1] -> NLPD per image, N."""
        import plenoptic as po

        if min(clean.shape[-2:]) < self.min_size:
            raise ConfigError(f"NLPD judge: images of {clean.shape[-2]} x {clean.shape[-1]} px are too small for its "
                              f"6-scale pyramid; use >= {self.min_size} px or drop 'nlpd' from analyses.judges")

        def lum(x: torch.Tensor) -> torch.Tensor:
            return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].float()

        return po.metric.nlpd(lum(clean), lum(perturbed)).reshape(clean.shape[0])


def judge_change(judge: nn.Module, clean: torch.Tensor, perturbed: torch.Tensor, kind: str,
                 batch_size: int = 32) -> np.ndarray:
    """How much a judge's output moves under each perturbed image: M x N.

    kind ``"classifier"``: KL(p_clean || p_perturbed) in nats of the judge's logits
    (:func:`classifier_change`); ``"features"``: relative change ||f(x') - f(x)|| / ||f(x)||;
    ``"distance"``: the judge's own distance ``judge.distance(clean, perturbed)`` (e.g.
    :class:`NLPDistance`).
    clean : N x 3 x H x W; perturbed : M x N x 3 x H x W.
    """
    if kind == "classifier":
        return classifier_change(judge, clean, perturbed, batch_size)[0]
    if kind == "distance":
        out = np.empty(perturbed.shape[:2])
        with torch.no_grad():
            for m in range(perturbed.shape[0]):
                for s in range(0, clean.shape[0], batch_size):
                    out[m, s : s + batch_size] = judge.distance(clean[s : s + batch_size],
                                                                perturbed[m, s : s + batch_size]).double().numpy()
        return out
    if kind != "features":
        raise ConfigError(f"judge kind must be 'classifier', 'features' or 'distance', got {kind!r}")
    fc = forward(judge, clean, batch_size).double()
    fp = forward(judge, perturbed.reshape(-1, *clean.shape[1:]), batch_size).double()
    fp = fp.reshape(perturbed.shape[0], clean.shape[0], -1)
    return ((fp - fc[None]).norm(dim=-1) / fc.norm(dim=-1).clamp_min(1e-30)[None]).numpy()


def _judge_kind(judge: nn.Module) -> str:
    if isinstance(judge, GaborEnergy):
        return "features"
    kind = getattr(judge, "judge_kind", "")
    return kind if kind in ("features", "distance") else "classifier"


def semantics(
    images: Any,
    probes: Mapping[str, Any],
    *,
    classifier: nn.Module | None = None,
    classifier_name: str = "",
    judges: Mapping[str, nn.Module] | None = None,
    baselines: Any = KINDS,
    cutoff: float = 0.1,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    groups: Any = None,
    info: Any = None,
    models: Mapping[str, nn.Module] | None = None,
    batch_size: int = 32,
) -> xr.Dataset:
    """Semantic measures of each model's probes against equal-norm noise, per norm and budget.

    - ``low_freq_share``: energy share below ``cutoff`` cycles/pixel (:func:`low_frequency_share`);
      ``noise_low_freq_share`` the same for equal-norm white and 1/f noise
      (:func:`brainprobe.analysis._baselines.random_like`, one draw per probe); white noise sits
      at ``white_noise_share`` (attr).
    - judges (``judges``: name -> module; ``classifier`` is one more, named ``classifier_name``):
      ``judge_change`` = how much each judge's output moves under the probe (KL in nats for a
      classifier, relative feature change for a non-learned judge such as :class:`GaborEnergy`,
      see :func:`judge_change`), ``judge_noise_change`` the same under the equal-norm noises, and
      ``judge_ratio`` = mean probe change / mean change under the stronger of the noises (> 1: the
      probe moves the judge more than noise of the same size). A judge is only meaningful when it
      shares no training or architecture with the candidates and the brain: say which.
    - with ``classifier``: also ``kl`` and ``top1_flip`` (as before).

    groups : sequence of N labels, optional
        One label per probed image (e.g. the photo each crop was cut from); bootstraps resample
        groups (cluster bootstrap) instead of single images.

    Returns
    -------
    xarray.Dataset
        per-image variables (model, norm, eps, image) and their means with bootstrap CIs
        (``*_mean``, ``*_ci_low``, ``*_ci_high``) (model, norm, eps); ``noise_low_freq_share``
        (noise, model, norm, eps, image); ``judge_change`` (judge, model, norm, eps, image),
        ``judge_noise_change`` (noise, judge, model, norm, eps, image), ``judge_ratio`` (+ CI)
        (judge, model, norm, eps); ``lf_excess`` (+ CI) (noise, model, norm, eps): probe share
        minus noise share.
    """
    x = as_images(images)
    n, h, w_ = x.shape[0], x.shape[2], x.shape[3]
    by_model = organise(probes)
    names = list(by_model)
    norms = sorted({nm for d in by_model.values() for nm in d})
    grids = {(k, nm): eps_array(d[nm]) for k, d in by_model.items() for nm in d}
    all_eps = np.unique(np.concatenate(list(grids.values())))
    kinds = list(baselines)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"semantics: unknown noise baselines {bad}; use some of {list(KINDS)}")
    all_judges: dict[str, nn.Module] = dict(judges or {})
    if classifier is not None:
        cname = classifier_name or type(classifier).__name__
        if cname in all_judges:
            raise ConfigError(f"semantics: judge name {cname!r} is given twice (classifier and judges)")
        all_judges[cname] = classifier
    jnames = list(all_judges)
    shape = (len(names), len(norms), len(all_eps), n)
    share = np.full(shape, np.nan)
    nshare = np.full((len(kinds),) + shape, np.nan)
    kl = np.full(shape, np.nan)
    flip = np.full(shape, np.nan)
    jch = np.full((len(jnames),) + shape, np.nan)
    jnoise = np.full((len(kinds), len(jnames)) + shape, np.nan)
    from brainprobe.analysis._transfer import baseline_seed

    for mi, name in enumerate(progress(names, desc="semantics")):
        for ni, nm in enumerate(norms):
            if nm not in by_model[name]:
                continue
            pr = by_model[name][nm]
            delta = pr.delta.detach().float().cpu()
            pos = np.searchsorted(all_eps, grids[(name, nm)])
            share[mi, ni, pos] = low_frequency_share(delta, cutoff)
            noises = [random_like(delta, nm, kind, baseline_seed(seed, name, nm, kind)) for kind in kinds]
            for q, noise in enumerate(noises):
                nshare[q, mi, ni, pos] = low_frequency_share(noise, cutoff)
            if not all_judges:
                continue
            moved = probed_images(x, delta).reshape(delta.shape)
            noisy = [probed_images(x, noise).reshape(delta.shape) for noise in noises]
            for ji, (jn, judge) in enumerate(all_judges.items()):
                kind = _judge_kind(judge)
                if judge is classifier:
                    k_, f_ = classifier_change(classifier, x, moved, batch_size)
                    kl[mi, ni, pos], flip[mi, ni, pos] = k_, f_
                    jch[ji, mi, ni, pos] = k_
                else:
                    jch[ji, mi, ni, pos] = judge_change(judge, x, moved, kind, batch_size)
                for q, nz in enumerate(noisy):
                    jnoise[q, ji, mi, ni, pos] = judge_change(judge, x, nz, kind, batch_size)
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
    if kinds:
        data["noise_low_freq_share"] = (("noise",) + d4, nshare)
        ex = share[None] - nshare
        lo, hi = ci(boot_means(ex, wts), level)
        data["lf_excess"] = (("noise",) + d3, ex.mean(-1))
        data["lf_excess_ci_low"] = (("noise",) + d3, lo)
        data["lf_excess_ci_high"] = (("noise",) + d3, hi)
    if jnames:
        data["judge_change"] = (("judge",) + d4, jch)
        if kinds:
            data["judge_noise_change"] = (("noise", "judge") + d4, jnoise)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = jch.mean(-1) / jnoise.mean(-1).max(0)
                b_ratio = boot_means(jch, wts) / boot_means(jnoise, wts).max(0)
            lo, hi = ci(b_ratio, level)
            data["judge_ratio"] = (("judge",) + d3, ratio)
            data["judge_ratio_ci_low"] = (("judge",) + d3, lo)
            data["judge_ratio_ci_high"] = (("judge",) + d3, hi)
    coords: dict[str, Any] = {"model": names, "norm": norms, "eps": all_eps, "image": np.arange(n)}
    if kinds:
        coords["noise"] = kinds
    if jnames:
        coords["judge"] = jnames
        coords["judge_kind"] = ("judge", [_judge_kind(all_judges[j]) for j in jnames])
    if groups is not None:
        coords["group"] = ("image", np.asarray(groups).astype(str))
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
            "judges": ", ".join(jnames),
            "kl_units": "nats",
            "n_boot": int(n_boot),
            "ci_level": float(level),
            "seed": int(seed),
        },
    )
