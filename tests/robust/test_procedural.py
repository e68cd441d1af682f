"""Procedural training images (dead leaves): seeded, natural-like spectrum, occlusion edges."""

from __future__ import annotations

import numpy as np
import pytest

from brainprobe.errors import ConfigError
from brainprobe.robust._procedural import _power_law_radii, dead_leaves, procedural_photos


def _amplitude_slope(img: np.ndarray) -> float:
    """Slope of log radial amplitude vs log frequency of the luminance (natural images: about -1)."""
    lum = img.astype(float).mean(-1)
    lum -= lum.mean()
    amp = np.abs(np.fft.fftshift(np.fft.fft2(lum)))
    n = lum.shape[0]
    yy, xx = np.indices(amp.shape) - n // 2
    r = np.sqrt(xx**2 + yy**2).astype(int)
    keep = (r >= 2) & (r < n // 2)
    radial = np.bincount(r[keep], amp[keep]) / np.maximum(np.bincount(r[keep]), 1)
    f = np.arange(len(radial))
    ok = (f >= 2) & (radial > 0)
    return float(np.polyfit(np.log(f[ok]), np.log(radial[ok]), 1)[0])


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, b, c = procedural_photos(3, 64, seed=1), procedural_photos(3, 64, seed=1), procedural_photos(3, 64, seed=2)
    assert all(x.dtype == np.uint8 and x.shape == (64, 64, 3) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))


def test_radii_follow_the_inverse_cube_law() -> None:
    """p(r) ~ r^-3 on [r_min, r_max]: the CDF is (r_min^-2 - r^-2) / (r_min^-2 - r_max^-2)."""
    r = _power_law_radii(200_000, 2.0, 50.0, np.random.default_rng(0))
    assert r.min() >= 2.0 and r.max() <= 50.0
    for q in (4.0, 10.0):
        expected = (2.0**-2 - q**-2) / (2.0**-2 - 50.0**-2)
        assert abs(float((r <= q).mean()) - expected) < 0.005


def test_spectrum_is_natural_like_and_bad_sizes_are_refused() -> None:
    slopes = [_amplitude_slope(img) for img in procedural_photos(4, 128, seed=0)]
    assert -2.0 < float(np.mean(slopes)) < -0.8, slopes  # natural images: about -1 (white noise: 0)
    with pytest.raises(ConfigError, match="too small"):
        dead_leaves(4, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="at least one"):
        procedural_photos(0)
