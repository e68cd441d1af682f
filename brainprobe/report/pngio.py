"""Lossless PNG files of RGB images at 8 or 16 bits per channel (pypng), and reading them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brainprobe.errors import DataError


def to_levels(images: torch.Tensor, bits: int) -> np.ndarray:
    """float N x 3 x H x W in [0, 1] -> integer levels N x H x W x 3 (uint8 or uint16), rounded."""
    levels = {8: 255, 16: 65535}[bits]
    dtype = np.uint8 if bits == 8 else np.uint16
    k = (images.detach().double().clamp(0, 1) * levels).round()
    return k.permute(0, 2, 3, 1).cpu().numpy().astype(dtype)


def from_levels(pixels: np.ndarray) -> torch.Tensor:
    """uint8 or uint16 N x H x W x 3 -> float32 N x 3 x H x W in [0, 1] (k / 255 or k / 65535)."""
    levels = 255.0 if pixels.dtype == np.uint8 else 65535.0
    t = torch.from_numpy(np.ascontiguousarray(pixels).astype(np.float64) / levels)
    return t.permute(0, 3, 1, 2).float().contiguous()


def write_png(path: str | Path, pixels: np.ndarray) -> Path:
    """Write one H x W x 3 uint8 or uint16 image as an RGB PNG (8 or 16 bits per channel)."""
    import png

    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs H x W x 3 uint8/uint16 pixels, got {pixels.dtype} {pixels.shape}")
    h, w, _ = pixels.shape
    bits = 8 if pixels.dtype == np.uint8 else 16
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        png.Writer(width=w, height=h, greyscale=False, alpha=False, bitdepth=bits, compression=9).write(
            f, pixels.reshape(h, w * 3).tolist()
        )
    tmp.replace(path)
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Read an RGB PNG written by :func:`write_png`: H x W x 3 uint8 or uint16, exact values."""
    import png

    try:
        with open(path, "rb") as f:
            w, h, rows, info = png.Reader(file=f).asDirect()
            if info.get("greyscale") or info.get("alpha") or info.get("planes") != 3:
                raise DataError(f"{path}: expected an RGB PNG without alpha")
            dtype = np.uint8 if info["bitdepth"] <= 8 else np.uint16
            return np.vstack([np.asarray(r, dtype=dtype) for r in rows]).reshape(h, w, 3)
    except (OSError, png.Error) as exc:
        raise DataError(f"{path}: cannot read PNG ({exc})") from None
