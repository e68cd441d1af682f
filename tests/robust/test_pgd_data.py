"""robustify's pieces: the inner PGD against analytic optima, the crop sampler, the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainprobe.robust import CropSampler, as_photo_list
from brainprobe.robust import pgd_maximize, project


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_reaches_the_analytic_optimum_of_a_linear_loss(norm: str) -> None:
    # max w.x over the ball (box inactive at x = 0.5): l2 -> eps w/||w||, linf -> eps sign(w)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 3, 8, 8, generator=g)
    x = torch.full((3, 3, 8, 8), 0.5)
    eps = 0.3 if norm == "l2" else 0.02
    def loss(xa: torch.Tensor) -> torch.Tensor:
        return (xa * w).flatten(1).sum(1)

    delta = pgd_maximize(loss, x, norm=norm, eps=eps, steps=5, rand_init=False)
    # from a random start the fixed-length steps converge to it geometrically
    warm = pgd_maximize(loss, x, norm=norm, eps=eps, steps=40, step_size=eps / 2, rand_init=True, generator=g)
    if norm == "l2":
        best = eps * w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    else:
        best = eps * w.sign()
    torch.testing.assert_close(delta, best, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(warm, best, atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_projection_keeps_ball_and_box(norm: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 6, 6, generator=g)
    delta = project(torch.randn(5, 3, 6, 6, generator=g), x, norm, 0.1)
    sizes = delta.flatten(1).norm(dim=1) if norm == "l2" else delta.flatten(1).abs().amax(1)
    assert (sizes <= 0.1 + 1e-6).all()
    assert ((x + delta) >= 0).all() and ((x + delta) <= 1).all()


def test_pgd_beats_random_noise_on_a_network() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten())
    x = torch.rand(4, 3, 12, 12)
    clean = net(x).detach()

    def loss(xa: torch.Tensor) -> torch.Tensor:
        return (net(xa) - clean).pow(2).sum(1)

    g = torch.Generator().manual_seed(0)
    delta = pgd_maximize(loss, x, norm="l2", eps=0.5, steps=10, generator=g)
    noise = torch.randn(x.shape, generator=g)
    noise = project(noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * 0.5, x, "l2", 0.5)
    assert (loss(x + delta) > 2 * loss(x + noise)).all()


def test_crop_sampler_is_seeded_and_resumable() -> None:
    rng = np.random.default_rng(0)
    photos = as_photo_list([rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)])
    a = CropSampler(photos, 24, seed=5)
    first = a.sample(3)
    state = a.get_state()
    second = a.sample(3)
    b = CropSampler(photos, 24, seed=5)
    torch.testing.assert_close(b.sample(3), first, rtol=0, atol=0)
    c = CropSampler(photos, 24, seed=99)
    c.set_state(state)
    torch.testing.assert_close(c.sample(3), second, rtol=0, atol=0)
    assert first.shape == (3, 3, 24, 24) and first.min() >= 0 and first.max() <= 1
    assert not torch.equal(first, second)


def test_feature_distance_is_relative_squared_error() -> None:
    from brainprobe.robust import feature_distance

    t = {"a": torch.ones(2, 4), "b": 2 * torch.ones(2, 3)}
    s = {"a": torch.zeros(2, 4), "b": 2 * torch.ones(2, 3)}
    torch.testing.assert_close(feature_distance(s, t), torch.tensor([0.5, 0.5]))
