"""Conversions between stored images (uint8, N x H x W x 3) and model inputs (float, N x 3 x H x W)."""

from __future__ import annotations

import numpy as np
import torch


def to_float_tensor(images: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 RGB images (N x H x W x 3, 0..255) -> float32 tensor N x 3 x H x W in [0, 1].

    A float tensor already shaped N x 3 x H x W is returned as float32 unchanged.
    """
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"float images must be N x 3 x H x W, got shape {tuple(images.shape)}")
        return images.to(device=device, dtype=torch.float32)
    arr = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"uint8 images must be N x H x W x 3, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"stored images must be uint8, got {arr.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    return t.to(device) if device is not None else t


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float tensor N x 3 x H x W in [0, 1] -> uint8 N x H x W x 3 (rounded to nearest)."""
    x = images.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
