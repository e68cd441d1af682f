"""Generic loader: an image folder or array file + a responses file + an optional ROI table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainprobe._progress import progress
from brainprobe.data._io import (
    IMAGE_SUFFIXES,
    hdf5_dataset,
    open_hdf5,
    read_hdf5,
    read_image,
    require_file,
    resize_images,
)
from brainprobe.errors import DataError

_IMAGE_KEYS = ("images", "stimuli", "imgBrick")
_RESPONSE_KEYS = ("responses", "trials", "betas")


def _first_key(f: Any, keys: tuple[str, ...], key: str | None, path: Path) -> str:
    if key is not None:
        return key
    for k in keys:
        if k in f:
            return k
    raise DataError(f"{path}: none of the datasets {', '.join(keys)} found; pass the key to use")


def _read_images(path: Path, key: str | None, resolution: int | None) -> tuple[np.ndarray, list[str]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        images = [read_image(p) for p in progress(files, desc="reading images")]
        return resize_images(images, resolution, str(path)), [p.stem for p in files]
    require_file(path, "image array file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: unreadable .npy ({exc})") from None
    elif suffix in (".h5", ".hdf5"):
        with open_hdf5(path, "image array") as f:
            name = _first_key(f, _IMAGE_KEYS, key, path)
            arr = read_hdf5(hdf5_dataset(f, name, path), path)
    else:
        raise DataError(f"{path}: images must be a folder, .npy or .h5 file, got '{suffix}'")
    if resolution is not None:
        arr = resize_images(list(arr), resolution, str(path))
    return arr, [f"img{i:05d}" for i in range(len(arr))]


def _read_responses(path: Path, key: str | None) -> np.ndarray:
    require_file(path, "responses file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: unreadable .npy ({exc})") from None
    if suffix in (".h5", ".hdf5"):
        with open_hdf5(path, "responses") as f:
            name = _first_key(f, _RESPONSE_KEYS, key, path)
            return read_hdf5(hdf5_dataset(f, name, path), path)
    if suffix == ".nc":
        import xarray as xr

        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                name = key or next((k for k in _RESPONSE_KEYS if k in ds), None)
                if name is None or name not in ds:
                    raise DataError(f"{path}: no variable {key or ' / '.join(_RESPONSE_KEYS)} in the netCDF file")
                return np.asarray(ds[name].values)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: unreadable netCDF ({type(exc).__name__}: {exc})") from None
    raise DataError(f"{path}: responses must be .npy, .h5 or .nc, got '{suffix}'")


def load_generic(
    images: str | Path,
    responses: str | Path,
    *,
    rois: str | Path | None = None,
    resolution: int | None = None,
    images_key: str | None = None,
    responses_key: str | None = None,
    split: str | Path | None = None,
    source: str = "generic",
    subject: str = "",
):
    """Load user data in a simple layout as a Dataset.

    Parameters
    ----------
    images : path
        A folder of image files (sorted by name = response rows) or a ``.npy`` / ``.h5`` array
        N x H x W x 3 (HDF5 dataset ``images``, ``stimuli`` or ``imgBrick``, or ``images_key``).
    responses : path
        ``.npy``, ``.h5`` (dataset ``responses``, ``trials`` or ``betas``) or ``.nc`` (variable of
        the same names): N x T trial means, or N x R x T single trials (NaN = missing repeat).
    rois : path, optional
        CSV with one row per response column: ``roi`` and optionally ``target``, ``hemisphere``,
        ``x``, ``y``, ``z``. Default: one ROI ``all``.
    resolution : int, optional
        Resize images to this side (px); needed when they differ in size.
    split : path, optional
        Text file with one ``train`` / ``test`` per image; default a seeded random 20 % test.
    source, subject : str
        Recorded in attrs.

    Returns
    -------
    Dataset
    """
    from brainprobe.data.dataset import Dataset

    img_path, resp_path = Path(images), Path(responses)
    if not img_path.exists():
        raise DataError(f"{img_path}: images folder or file not found")
    stimuli, ids = _read_images(img_path, images_key, resolution)
    data = np.asarray(_read_responses(resp_path, responses_key), dtype=np.float64)
    if data.ndim not in (2, 3):
        raise DataError(f"{resp_path}: responses must be N x T or N x R x T, got shape {data.shape}")
    if data.shape[0] != len(stimuli):
        raise DataError(f"{resp_path}: {data.shape[0]} response rows but {len(stimuli)} images in {img_path}")
    if not np.isfinite(data).any():
        raise DataError(f"{resp_path}: every response is NaN or Inf")
    trials = data if data.ndim == 3 else None
    resp = None if data.ndim == 3 else data
    n_targets = data.shape[-1]
    targets = None
    if rois is not None:
        roi_path = require_file(Path(rois), "ROI table")
        try:
            targets = pd.read_csv(roi_path)
        except Exception as exc:
            raise DataError(f"{roi_path}: unreadable CSV ({type(exc).__name__}: {exc})") from None
        if "roi" not in targets:
            raise DataError(f"{roi_path}: ROI table needs a 'roi' column")
        if len(targets) != n_targets:
            raise DataError(f"{roi_path}: {len(targets)} rows but {n_targets} response columns in {resp_path}")
        if "target" not in targets:
            targets.insert(0, "target", [f"t{i:05d}" for i in range(n_targets)])
    split_labels = None
    if split is not None:
        split_path = require_file(Path(split), "split file")
        split_labels = [s.strip() for s in split_path.read_text().split() if s.strip()]
        if len(split_labels) != len(stimuli):
            raise DataError(f"{split_path}: {len(split_labels)} split labels but {len(stimuli)} images")
    attrs = {"source": source, "subject": subject, "simulated": False, "images": str(img_path),
             "responses": str(resp_path), "path": str(resp_path)}
    return Dataset(stimuli, resp, targets, trials=trials, image_ids=ids, split=split_labels, attrs=attrs)
