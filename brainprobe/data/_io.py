"""File readers shared by the loaders; each failure is a one-line DataError naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brainprobe.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; check the path (brainprobe never downloads data)")
    return path


def open_hdf5(path: Path, what: str) -> Any:
    """An open read-only h5py.File, or DataError for missing / truncated / non-HDF5 files."""
    import h5py

    require_file(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} as HDF5, file truncated or corrupt ({exc})") from None


def hdf5_dataset(f: Any, name: str, path: Path) -> Any:
    if name not in f:
        raise DataError(f"{path}: HDF5 dataset '{name}' missing (has: {', '.join(list(f.keys())[:8]) or 'nothing'})")
    return f[name]


def read_hdf5(ds: Any, path: Path, index: Any = slice(None)) -> np.ndarray:
    """ds[index] with truncated-file errors turned into DataError."""
    try:
        return np.asarray(ds[index])
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: reading '{ds.name}' failed, file truncated or corrupt ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """One image file as an array (H x W x C or H x W), or DataError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("P", "LA", "PA"):
                im = im.convert("RGBA")
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.uint16)
            elif im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}); replace or remove the file") from None


def resize_images(images: list[np.ndarray], resolution: int | None, where: str) -> np.ndarray:
    """Stack images, resizing each to resolution x resolution (Lanczos) when resolution is given."""
    from PIL import Image

    from brainprobe.data._images import as_rgb_uint8

    if resolution is None:
        shapes = {im.shape[:2] for im in images}
        if len(shapes) > 1:
            raise DataError(
                f"{where}: images differ in size ({sorted(shapes)[:3]}...); pass resolution= to resize them"
            )
        return np.stack(images)
    out = []
    for im in images:
        rgb = as_rgb_uint8(im[None], where=where)[0]
        if rgb.shape[:2] != (resolution, resolution):
            rgb = np.asarray(Image.fromarray(rgb).resize((resolution, resolution), Image.Resampling.LANCZOS))
        out.append(rgb)
    return np.stack(out)
