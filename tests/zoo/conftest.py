"""Zoo test fixtures: real photos that packages ship (no network)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch


def foolbox_imagenet() -> list[tuple[np.ndarray, int]]:
    """foolbox's 20 ImageNet photos as (uint8 H x W x 3, class index) pairs."""
    import foolbox
    from PIL import Image

    folder = Path(foolbox.__file__).parent / "data"
    files = sorted(folder.glob("imagenet_*.jpg"))
    assert len(files) == 20, files
    out = []
    for f in files:
        label = int(re.fullmatch(r"imagenet_\d+_(\d+)\.jpg", f.name).group(1))  # type: ignore[union-attr]
        out.append((np.asarray(Image.open(f).convert("RGB")), label))
    return out


def to_tensor(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 H x W x 3 photos -> float N x 3 x size x size in [0, 1] (bilinear, antialiased)."""
    from PIL import Image

    arr = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    return torch.from_numpy(arr.copy()).permute(0, 3, 1, 2).float() / 255


def photo_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (1/3 to full side) of foolbox, scikit-image and scikit-learn photos.

    Returns
    -------
    Tensor
        float N x 3 x size x size in [0, 1].
    """
    import skimage.data
    import sklearn.datasets

    photos = [im for im, _ in foolbox_imagenet()]
    photos += [getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")]
    photos += list(sklearn.datasets.load_sample_images().images)
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(p[y : y + side, x : x + side])
    return to_tensor(crops, size)


@pytest.fixture(scope="session")
def imagenet_photos() -> list[tuple[np.ndarray, int]]:
    """foolbox's 20 labelled ImageNet photos."""
    return foolbox_imagenet()


@pytest.fixture(scope="session")
def images():
    """Helpers: ``images.to_tensor(list, size)`` and ``images.crops(n, size, seed)``."""

    class _Images:
        to_tensor = staticmethod(to_tensor)
        crops = staticmethod(photo_crops)

    return _Images()
