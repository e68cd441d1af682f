"""Generic loader: an image folder or array file + a responses file + an optional ROI table."""

from __future__ import annotations

from collections.abc import Sequence
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


def _images_input(images: Any, key: str | None, resolution: int | None) -> tuple[np.ndarray, list[str], str]:
    """Images from a path (folder or array file) or an in-memory array -> (stack, ids, label for messages)."""
    if isinstance(images, (str, Path)):
        img_path = Path(images)
        if not img_path.exists():
            raise DataError(f"{img_path}: images folder or file not found")
        stimuli, ids = _read_images(img_path, key, resolution)
        return stimuli, ids, str(img_path)
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        from brainprobe.data._images import as_rgb_uint8

        arr = as_rgb_uint8(np.asarray(images), where="load_generic images array")
        if resolution is not None:
            arr = resize_images(list(arr), resolution, "load_generic images array")
        return arr, [f"img{i:05d}" for i in range(len(arr))], "images array"
    raise DataError(
        f"load_generic: images must be a folder, a .npy/.h5 path or an array N x H x W x 3, got {type(images).__name__}"
    )


def _responses_input(responses: Any, key: str | None) -> tuple[np.ndarray, str]:
    """Responses from a path (.npy/.h5/.nc) or an in-memory array -> (float64 array, label for messages)."""
    if isinstance(responses, (str, Path)):
        raw, label = _read_responses(Path(responses), key), str(responses)
    elif isinstance(responses, np.ndarray) or hasattr(responses, "__array__"):
        raw, label = responses, "responses array"
    else:
        raise DataError(
            f"load_generic: responses must be a .npy/.h5/.nc path or an array N x T (or N x R x T), "
            f"got {type(responses).__name__}"
        )
    try:
        return np.asarray(raw, dtype=np.float64), label
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label}: responses must be numbers ({exc})") from None


def load_generic(
    images: str | Path | np.ndarray,
    responses: str | Path | np.ndarray,
    *,
    rois: str | Path | None = None,
    resolution: int | None = None,
    images_key: str | None = None,
    responses_key: str | None = None,
    split: str | Path | None = None,
    source: str = "generic",
    subject: str = "",
    groups: str | Path | Sequence[str] | np.ndarray | None = None,
):
    """Load user data in a simple layout as a Dataset.

    Parameters
    ----------
    images : path or array
        A folder of image files (sorted by name = response rows), a ``.npy`` / ``.h5`` array file
        N x H x W x 3 (HDF5 dataset ``images``, ``stimuli`` or ``imgBrick``, or ``images_key``), or
        an in-memory array N x H x W x 3: uint8 0-255 or float in [0, 1] (gray N x H x W too).
    responses : path or array
        ``.npy``, ``.h5`` (dataset ``responses``, ``trials`` or ``betas``) or ``.nc`` (variable of
        the same names), or an in-memory array: N x T trial means, or N x R x T single trials
        (NaN = missing repeat). A target with a NaN/Inf trial mean is dropped with a warning
        (the Dataset masking rule); a DataError when none is left.
    rois : path, optional
        CSV with one row per response column: ``roi`` and optionally ``target``, ``hemisphere``,
        ``x``, ``y``, ``z``. Default: one ROI ``all``.
    resolution : int, optional
        Resize images to this side (px); needed when they differ in size.
    split : path, optional
        Text file with one ``train`` / ``test`` per image; default a seeded random 20 % of the
        groups to test. A given split must keep every group on one side.
    groups : path or sequence of str, optional
        One group label per image (e.g. the photo each crop was cut from): images of a group stay
        on one side of the split and are resampled together by bootstraps. A sequence of N
        labels, a ``.csv`` file with a column ``group`` (one row per image, in image order) or a
        text file with one label per line. Default: each image its own group.
    source, subject : str
        Recorded in attrs.

    Returns
    -------
    Dataset
    """
    from brainprobe.data.dataset import Dataset

    stimuli, ids, img_path = _images_input(images, images_key, resolution)
    data, resp_path = _responses_input(responses, responses_key)
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
    group_labels = _read_groups(groups, len(stimuli))
    attrs = {"source": source, "subject": subject, "simulated": False, "images": str(img_path),
             "responses": str(resp_path), "path": str(resp_path)}
    return Dataset(stimuli, resp, targets, trials=trials, image_ids=ids, split=split_labels, attrs=attrs,
                   groups=group_labels)


def _read_groups(groups: str | Path | Sequence[str] | np.ndarray | None, n: int) -> np.ndarray | None:
    """Group labels (n,) from a sequence, a CSV with a ``group`` column or a one-per-line text file."""
    if groups is None:
        return None
    if isinstance(groups, (str, Path)):
        path = require_file(Path(groups), "groups file")
        if path.suffix.lower() == ".csv":
            try:
                table = pd.read_csv(path, dtype=str, keep_default_na=False)
            except Exception as exc:
                raise DataError(f"{path}: unreadable CSV ({type(exc).__name__}: {exc})") from None
            if "group" not in table:
                raise DataError(f"{path}: groups CSV needs a 'group' column (one row per image, in image order)")
            labels = table["group"].to_numpy(dtype=object)
        else:
            labels = np.asarray([ln.strip() for ln in path.read_text().splitlines() if ln.strip()], dtype=object)
        where = str(path)
    else:
        labels = np.asarray([str(g) for g in np.asarray(groups, dtype=object).ravel()], dtype=object)
        where = "groups"
    if labels.shape[0] != n:
        raise DataError(f"{where}: {labels.shape[0]} group labels but {n} images; give one label per image")
    if any(str(g) == "" for g in labels):
        raise DataError(f"{where}: empty group label; give every image a group")
    return labels
