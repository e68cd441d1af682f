"""Equal-norm random perturbations: the baseline a probe must beat (white and 1/f noise)."""

from __future__ import annotations

import numpy as np
import torch

from brainprobe.errors import ConfigError

KINDS = ("white", "pink")
"""Baseline noise kinds: ``white`` (i.i.d. pixels) and ``pink`` (1/f amplitude spectrum)."""


def random_like(delta: torch.Tensor, norm: str, kind: str, seed: int = 0) -> torch.Tensor:
    """Random perturbations with the exact per-image norm of ``delta``.

    For every budget e and image n, the perturbation has the norm of ``delta[e, n]`` under
    ``norm`` (a probe that did not use its whole budget is matched at the size it used).

    - ``l2``, ``white``: uniform direction on the l2 sphere (i.i.d. Gaussian pixels, rescaled).
    - ``l2``, ``pink``: a 1/f field (Gaussian noise whose 2-D spectrum per channel is divided by
      the spatial frequency, DC removed), rescaled to the l2 norm.
    - ``linf``, ``white``: random sign x the probe's linf norm at every pixel (a corner of the box,
      like a converged linf probe).
    - ``linf``, ``pink``: a 1/f field scaled so that its largest |pixel| equals the probe's linf
      norm. The [0, 1] box is applied where the perturbation is shown, clamp(x + d, 0, 1), exactly
      as for the probes.

    Parameters
    ----------
    delta : tensor E x N x 3 x H x W
        Probe perturbations in [0, 1] pixel units.
    norm : {"l2", "linf"}
    kind : {"white", "pink"}
    seed : int

    Returns
    -------
    tensor E x N x 3 x H x W, float32 on the CPU
        Zero where ``delta[e, n]`` is zero.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown random baseline {kind!r}; use one of {list(KINDS)}")
    if norm not in ("l2", "linf"):
        raise ConfigError(f"unknown norm {norm!r}; use 'l2' or 'linf'")
    d = delta.detach().float().cpu()
    if d.ndim != 5:
        raise ConfigError(f"random_like: delta must be E x N x 3 x H x W, got shape {tuple(d.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    flat = d.flatten(2)
    if kind == "white":
        if norm == "linf":
            noise = torch.randint(0, 2, d.shape, generator=g).float() * 2 - 1
        else:
            noise = torch.randn(d.shape, generator=g)
    else:
        noise = pink_noise(d.shape, g)
    nflat = noise.flatten(2)
    if norm == "l2":
        target, size = flat.norm(dim=-1), nflat.norm(dim=-1)
    else:
        target, size = flat.abs().amax(dim=-1), nflat.abs().amax(dim=-1)
    scale = torch.where(size > 0, target / size.clamp_min(1e-30), torch.zeros_like(size))
    return (nflat * scale[..., None]).reshape(d.shape)


def pink_noise(shape: tuple[int, ...] | torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise with a 1/f amplitude spectrum over the last two axes (zero mean, unscaled).

    Parameters
    ----------
    shape : tuple (..., H, W)
    generator : torch.Generator

    Returns
    -------
    tensor of ``shape``, float32
    """
    h, w = int(shape[-2]), int(shape[-1])
    white = torch.randn(tuple(shape), generator=generator)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fy**2 + fx**2)
    amp = torch.where(f > 0, 1.0 / f.clamp_min(1e-12), torch.zeros_like(f))
    spec = torch.fft.rfft2(white) * amp
    return torch.fft.irfft2(spec, s=(h, w)).float()


def perturbation_norms(delta: torch.Tensor, norm: str) -> np.ndarray:
    """Per budget and image norm of ``delta`` (E x N x 3 x H x W) -> float64 E x N."""
    flat = delta.detach().float().cpu().flatten(2)
    out = flat.norm(dim=-1) if norm == "l2" else flat.abs().amax(dim=-1)
    return out.double().numpy()
