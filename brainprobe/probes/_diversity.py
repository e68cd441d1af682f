"""Input diversity (Xie et al. 2019): a random resize and pad of the perturbed image each step."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diverse(x: torch.Tensor, generator: torch.Generator, p: float, shrink: float = 0.9) -> torch.Tensor:
    """With probability ``p``, shrink ``x`` (B x C x H x W) to a random size in [shrink*H, H) and zero-pad
    it back to H x W at a random offset; otherwise return ``x``. Differentiable; same transform for the batch.
    """
    if float(torch.rand((), generator=generator)) >= p:
        return x
    h, w = x.shape[-2:]
    lo_h, lo_w = max(1, int(round(shrink * h))), max(1, int(round(shrink * w)))
    nh = int(torch.randint(lo_h, h + 1, (), generator=generator)) if lo_h < h else h
    nw = int(torch.randint(lo_w, w + 1, (), generator=generator)) if lo_w < w else w
    small = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    top = int(torch.randint(0, h - nh + 1, (), generator=generator))
    left = int(torch.randint(0, w - nw + 1, (), generator=generator))
    return F.pad(small, (left, w - nw - left, top, h - nh - top))
