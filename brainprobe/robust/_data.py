"""Training images for robustify: random crops, flips and colour jitter of source photos.

The sampler holds the source photos (uint8, any sizes) and draws augmented batches from its
own :class:`torch.Generator`, so a batch sequence is fixed by the seed and can be resumed
from a saved generator state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from brainprobe.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image_folder(folder: str | Path) -> list[np.ndarray]:
    """Read every image file in ``folder`` (recursively) as uint8 RGB H x W x 3 arrays.

    Raises
    ------
    DataError
        The folder does not exist or holds no readable image.
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found; pass a folder of .png/.jpg training images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found; add training photos")
    photos = []
    for path in files:
        try:
            with Image.open(path) as im:
                photos.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except OSError as exc:
            raise DataError(f"{path}: not a readable image ({exc}); remove it or fix it") from None
    return photos


def as_photo_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate uint8 RGB photos given as an N x H x W x 3 array or a list of H x W x 3 arrays."""
    photos = list(images) if not isinstance(images, np.ndarray) or images.ndim == 4 else None
    if photos is None or not photos:
        raise DataError("training images: give a non-empty uint8 array N x H x W x 3 or a list of H x W x 3 photos")
    for i, p in enumerate(photos):
        p = np.asarray(p)
        if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
            raise DataError(
                f"training image {i}: expected uint8 H x W x 3 RGB, got {p.dtype} {p.shape}; convert it first"
            )
        if min(p.shape[:2]) < 8:
            raise DataError(f"training image {i}: {p.shape[0]} x {p.shape[1]} px is too small (need >= 8 px)")
    return [np.ascontiguousarray(p) for p in photos]


class CropSampler:
    """Random-resized crops (+ horizontal flips and colour jitter) of a fixed set of photos.

    Parameters
    ----------
    photos
        uint8 RGB photos, each H x W x 3 (sizes may differ).
    resolution
        Side of the square crops, pixels.
    scale
        Range of the crop area as a fraction of the photo area.
    jitter
        Maximum relative change of brightness, contrast and saturation (0 disables).
    seed
        Seed of the sampler's own generator.
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        resolution: int,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        jitter: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.photos = [torch.from_numpy(np.array(p, dtype=np.uint8)).permute(2, 0, 1).contiguous() for p in photos]
        self.resolution = int(resolution)
        self.scale = scale
        self.jitter = float(jitter)
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def _crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of a random crop with area in ``scale`` and aspect 3/4..4/3."""
        area = h * w
        for _ in range(10):
            target = area * self._uniform(*self.scale)
            aspect = math.exp(self._uniform(math.log(3 / 4), math.log(4 / 3)))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (), generator=self.generator))
                left = int(torch.randint(0, w - cw + 1, (), generator=self.generator))
                return top, left, ch, cw
        side = min(h, w)  # fallback: central square
        return (h - side) // 2, (w - side) // 2, side, side

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        j = self.jitter
        b = self._uniform(1 - j, 1 + j)
        c = self._uniform(1 - j, 1 + j)
        s = self._uniform(1 - j, 1 + j)
        x = x * b
        mean = x.mean()
        x = (x - mean) * c + mean
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
        x = (x - gray) * s + gray
        return x.clamp(0, 1)

    def sample(self, n: int) -> torch.Tensor:
        """Draw ``n`` crops: float32 tensor n x 3 x R x R in [0, 1]."""
        out = torch.empty(n, 3, self.resolution, self.resolution)
        for i in range(n):
            photo = self.photos[int(torch.randint(0, len(self.photos), (), generator=self.generator))]
            top, left, ch, cw = self._crop_box(photo.shape[1], photo.shape[2])
            crop = photo[:, top : top + ch, left : left + cw].float().div_(255.0).unsqueeze(0)
            crop = F.interpolate(crop, size=(self.resolution, self.resolution), mode="bilinear",
                                 align_corners=False, antialias=True)[0]
            if float(torch.rand((), generator=self.generator)) < 0.5:
                crop = crop.flip(-1)
            if self.jitter > 0:
                crop = self._jitter(crop)
            out[i] = crop.clamp_(0, 1)
        return out

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
