"""Validation and conversion of stimulus arrays to uint8 RGB N x H x W x 3."""

from __future__ import annotations

import warnings

import numpy as np

from brainprobe.errors import DataError


def as_rgb_uint8(images: np.ndarray, where: str = "stimuli") -> np.ndarray:
    """Convert a stack of images to uint8 RGB N x H x W x 3, or raise a one-line DataError.

    Accepted: uint8 or uint16 (scaled by 255/65535), bool, float in [0, 1]; gray N x H x W or
    N x H x W x 1 (replicated to RGB); RGBA N x H x W x 4 (alpha dropped with a warning).

    Parameters
    ----------
    images : array
        N x H x W, N x H x W x 1, N x H x W x 3 or N x H x W x 4.
    where : str
        Name used in error messages (a file or argument name).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise DataError(f"{where}: images must be N x H x W x 3 (or gray N x H x W), got shape {arr.shape}")
    channels = arr.shape[-1]
    if channels not in (1, 3, 4):
        raise DataError(f"{where}: images must have 1, 3 or 4 channels in the last axis, got {channels}")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = np.round(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            bad = ~np.isfinite(arr)
            raise DataError(
                f"{where}: float images contain {int(bad.sum())} NaN or Inf values "
                f"(in {int(bad.reshape(len(arr), -1).any(axis=1).sum())} of {len(arr)} images); give finite values in [0, 1]"
            )
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{where}: float images must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]; "
                "pass uint8 0-255 or divide by the maximum"
            )
        arr = np.round(arr * 255.0).astype(np.uint8)
    else:
        raise DataError(f"{where}: unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif channels == 4:
        warnings.warn(f"{where}: RGBA images, alpha channel dropped", stacklevel=3)
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)
