"""Procedural training images with natural statistics: dead leaves and 1/f textures.

A robust copy trained on these never sees a photograph, so its training images share nothing
with the library's photos that the other robust copies (and the demo's stimuli) come from. That is
what makes it usable as a brain whose recipe no robust candidate shares (issue 13, item 7).

Dead leaves (Matheron 1968; Lee, Mumford & Huang 2001): opaque discs dropped one over another, radii
drawn from a power law ``p(r) ~ r^-3`` between ``r_min`` and ``r_max``, which makes the image
scale-invariant with an approximately 1/f amplitude spectrum, with occlusion edges like a natural
scene's. Each disc is filled with a colour plus a faint 1/f texture so that surfaces are not flat.
"""

from __future__ import annotations

import numpy as np

from brainprobe.errors import ConfigError


def _power_law_radii(n: int, r_min: float, r_max: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` radii with density proportional to ``r^-3`` on [r_min, r_max] (inverse-CDF sampling)."""
    u = rng.random(n)
    a, b = r_min**-2, r_max**-2
    return (a - u * (a - b)) ** -0.5


def _pink_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size x 3 field with 1/f amplitude spectrum, zero mean, unit SD per channel."""
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = np.inf
    spectrum = (rng.standard_normal((3, size, size)) + 1j * rng.standard_normal((3, size, size))) / radius
    field = np.fft.ifft2(spectrum).real
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-12
    return field.transpose(1, 2, 0)


def dead_leaves(size: int, rng: np.random.Generator, *, r_min: float = 3.0, r_max: float | None = None,
                n_discs: int | None = None, texture: float = 0.06) -> np.ndarray:
    """One colour dead-leaves image.

    Parameters
    ----------
    size
        Side of the square image, pixels.
    rng
        Source of randomness.
    r_min, r_max
        Smallest and largest disc radius, pixels (``r_max`` default: size / 3).
    n_discs
        Discs dropped (default: enough to cover the image, ~ 12 size^2 / (r_min r_max)).
    texture
        SD of the 1/f texture added to the whole image, in [0, 1] intensity units.

    Returns
    -------
    uint8 array size x size x 3
    """
    if size < 8:
        raise ConfigError(f"dead_leaves: size {size} px is too small; use >= 8")
    r_max = size / 3 if r_max is None else float(r_max)
    if n_discs is None:
        n_discs = int(12 * size * size / (r_min * r_max))
    radii = _power_law_radii(n_discs, r_min, r_max, rng)
    centres = rng.uniform(-0.1 * size, 1.1 * size, size=(n_discs, 2))
    # Colours: a random hue and a saturation and value leaning to the muted colours of natural
    # scenes (most surfaces are neither grey nor saturated).
    hue = rng.random(n_discs)
    sat = rng.beta(1.5, 3.0, n_discs)
    val = rng.beta(2.0, 2.0, n_discs)
    colours = _hsv_to_rgb(hue, sat, val)
    image = np.full((size, size, 3), rng.random(), dtype=np.float64)
    covered = np.zeros((size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size]
    # Dropping front to back: a disc paints only pixels that no earlier (nearer) disc covers.
    for (cy, cx), r, c in zip(centres, radii, colours):
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, size)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        paint = inside & ~covered[y0:y1, x0:x1]
        image[y0:y1, x0:x1][paint] = c
        covered[y0:y1, x0:x1] |= inside
        if covered.all():
            break
    image += texture * _pink_texture(size, rng)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, every input of shape (n,) in [0, 1]; returns (n, 3)."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return table[i, np.arange(len(h))]


def procedural_photos(n: int = 64, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` seeded dead-leaves images (uint8 size x size x 3) to train a robust copy on.

    Same ``(n, size, seed)``, same images.
    """
    if n < 1:
        raise ConfigError(f"procedural_photos: n={n}; need at least one image")
    rng = np.random.default_rng([int(seed), 0x5EED])
    return [dead_leaves(size, rng) for _ in range(n)]
