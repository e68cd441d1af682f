"""The stimulus library: natural photos with a fixed train / eval split, and seeded random crops.

Photos come from ``brainprobe/assets/stimuli/photos.csv``: photos vendored in
``assets/stimuli/photos/`` (freely licensed, see ``assets/stimuli/LICENSES.md``) and photos that
installed packages ship (scikit-image, scikit-learn, matplotlib, foolbox), read in place.
``split="train"`` photos are for robustifying backbones only; ``split="eval"`` photos (foolbox's
ImageNet photos among them) are for stimuli and evaluation, so robustified models never saw them.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainprobe._paths import ASSETS
from brainprobe.errors import DataError

LIBRARY_DIR = ASSETS / "stimuli"
_SPLITS = ("train", "eval", "all")


def _package_dir(package: str) -> Path:
    """The folder holding a package's shipped photos (found without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"stimulus library: package '{package}' is not installed; pip install {package}")
    root = Path(list(spec.submodule_search_locations)[0])
    sub = {"skimage": "data", "sklearn": "datasets/images", "matplotlib": "mpl-data/sample_data", "foolbox": "data"}
    return root / sub[package]


@functools.lru_cache(maxsize=1)
def _catalogue() -> pd.DataFrame:
    table = pd.read_csv(LIBRARY_DIR / "photos.csv", dtype=str, keep_default_na=False)
    paths = []
    for row in table.itertuples():
        if row.kind == "vendored":
            paths.append(str(LIBRARY_DIR / row.file))
        else:
            paths.append(str(_package_dir(row.source.split(":", 1)[1]) / row.file))
    table["path"] = paths
    return table


def library_photos(split: str = "eval") -> pd.DataFrame:
    """The library's photos of one split.

    Parameters
    ----------
    split : {"train", "eval", "all"}
        ``train``: for robustify only; ``eval``: for stimuli and evaluation.

    Returns
    -------
    pandas.DataFrame
        One row per photo: ``photo`` (id), ``kind`` (vendored / package), ``source``,
        ``file``, ``original``, ``license``, ``attribution``, ``split``, ``path`` (absolute).
    """
    if split not in _SPLITS:
        raise DataError(f"unknown stimulus split '{split}'; use one of {', '.join(_SPLITS)}")
    table = _catalogue()
    if split != "all":
        table = table[table["split"] == split]
    return table.reset_index(drop=True).copy()


@functools.lru_cache(maxsize=256)
def _read_photo(path: str) -> np.ndarray:
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: library photo missing; reinstall brainprobe or the package that ships it")
    with Image.open(p) as im:
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    arr.setflags(write=False)
    return arr


def load_photo(photo: str) -> np.ndarray:
    """One library photo by id as uint8 H x W x 3 (read-only, cached)."""
    table = _catalogue()
    row = table[table["photo"] == photo]
    if row.empty:
        raise DataError(f"unknown library photo '{photo}'; see library_photos('all')")
    return _read_photo(row["path"].iloc[0])


def _balanced_choice(n_photos: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n photo indices using each photo equally often (+-1), in random order."""
    reps = -(-n // n_photos)
    idx = np.concatenate([rng.permutation(n_photos) for _ in range(reps)])[:n]
    return idx


def random_crops(
    photos: Sequence[str] | Sequence[np.ndarray],
    n: int,
    resolution: int,
    *,
    seed: int = 0,
    scale: tuple[float, float] = (0.35, 1.0),
    flip: bool = True,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Seeded random square crops of photos, resized to ``resolution`` px, with provenance.

    Each crop's side is ``u * min(H, W)`` with ``u ~ Uniform(scale)``, at a uniform random
    position; with ``flip`` half the crops are mirrored left-right. Photos are used equally
    often (+-1). Resizing uses Pillow's antialiased Lanczos filter.

    Parameters
    ----------
    photos : sequence of library photo ids or of uint8 H x W x 3 arrays
    n : int
        Number of crops.
    resolution : int
        Output side in px.
    seed : int
    scale : (float, float)
        Range of the crop side as a fraction of the photo's short side, in (0, 1].
    flip : bool
    names : sequence of str, optional
        Names of array photos for the provenance table (default ``photo0``...).

    Returns
    -------
    images : uint8 array, n x resolution x resolution x 3
    provenance : pandas.DataFrame
        Per crop: ``photo``, ``x0``, ``y0``, ``size`` (crop box in photo px), ``flip`` (bool).
    """
    from PIL import Image

    if n < 1 or resolution < 8:
        raise DataError(f"need n >= 1 crops of resolution >= 8 px, got n={n}, resolution={resolution}")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise DataError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    if len(photos) == 0:
        raise DataError("no photos to crop")
    if isinstance(photos[0], str):
        names = list(photos)  # type: ignore[arg-type]
        arrays = [load_photo(p) for p in photos]  # type: ignore[arg-type]
    else:
        arrays = [np.asarray(p) for p in photos]
        names = list(names) if names is not None else [f"photo{i}" for i in range(len(arrays))]
    rng = np.random.default_rng(seed)
    which = _balanced_choice(len(arrays), n, rng)
    out = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    rows = []
    for k, i in enumerate(which):
        arr = arrays[i]
        h, w = arr.shape[:2]
        side = max(8, int(round(rng.uniform(*scale) * min(h, w))))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        mirrored = bool(flip and rng.random() < 0.5)
        crop = Image.fromarray(arr).resize(
            (resolution, resolution), Image.Resampling.LANCZOS, box=(x0, y0, x0 + side, y0 + side)
        )
        img = np.asarray(crop, dtype=np.uint8)
        out[k] = img[:, ::-1] if mirrored else img
        rows.append({"photo": names[i], "x0": x0, "y0": y0, "size": side, "flip": mirrored})
    return out, pd.DataFrame(rows)


def sample_stimuli(
    n: int, resolution: int, *, split: str = "eval", seed: int = 0, scale: tuple[float, float] = (0.35, 1.0)
) -> tuple[np.ndarray, pd.DataFrame]:
    """n seeded random crops of the library's ``split`` photos at ``resolution`` px.

    Returns
    -------
    images : uint8 array, n x resolution x resolution x 3
    provenance : pandas.DataFrame
        ``photo``, ``x0``, ``y0``, ``size``, ``flip`` per stimulus, plus ``license`` and
        ``source`` of its photo.
    """
    if split == "all":
        raise DataError("sample_stimuli needs split 'eval' (stimuli) or 'train' (robustify only)")
    table = library_photos(split)
    images, prov = random_crops(table["photo"].tolist(), n, resolution, seed=seed, scale=scale)
    meta = table.set_index("photo")[["source", "license"]]
    prov = prov.join(meta, on="photo")
    return images, prov
