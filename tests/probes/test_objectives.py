"""Objectives, target specs, keep-best, input diversity and ensembles."""

from __future__ import annotations

import pytest
import torch

from brainprobe.errors import ConfigError, DataError
from brainprobe.probes import Contrast, Drive, Ensemble, Shift, Toward, parse_objective, probe
from brainprobe.probes._targets import resolve_targets
from tests.probes.conftest import TinyEncoder


def _value(model, images, delta, objective) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Objective recomputed from scratch for perturbed images (E x N)."""
    with torch.no_grad():
        y0 = model(images)
        ys = torch.stack([model((images + d).clamp(0, 1)) for d in delta])
    return objective(ys - y0)


def test_target_specs_resolve(encoder) -> None:  # type: ignore[no-untyped-def]
    assert resolve_targets(encoder, None, 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert resolve_targets(encoder, "V4", 6).tolist() == [3, 4, 5]
    assert resolve_targets(encoder, ["V1", "V4"], 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert resolve_targets(encoder, [5, 0], 6).tolist() == [0, 5]
    assert resolve_targets(encoder, "v2", 6).tolist() == [2]  # a target id
    with pytest.raises(ConfigError, match="unknown ROI or target 'IT'.*valid ROIs: V1, V4"):
        resolve_targets(encoder, "IT", 6)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_targets(encoder, [6], 6)
    plain = torch.nn.Linear(3, 2)  # no targets table: one ROI "all"
    assert resolve_targets(plain, "all", 2).tolist() == [0, 1]


def test_shorthands() -> None:
    assert parse_objective("drive:V1").name == "drive:V1"
    down = parse_objective("drive-:V1,V4")
    assert isinstance(down, Drive) and down.direction == -1 and down.targets == ["V1", "V4"]
    assert parse_objective("drive:#3").targets == 3
    assert isinstance(parse_objective("shift"), Shift)
    with pytest.raises(ConfigError, match="unknown objective 'push:V1'"):
        parse_objective("push:V1")


@pytest.mark.parametrize(
    ("objective", "recompute"),
    [
        (Drive("V1"), lambda c: c[..., :3].mean(-1)),
        (Drive("V4", -1), lambda c: -c[..., 3:].mean(-1)),
        (Drive([0, 4]), lambda c: c[..., [0, 4]].mean(-1)),
    ],
)
def test_reported_value_and_change_are_the_models(encoder, images, objective, recompute) -> None:  # type: ignore[no-untyped-def]
    res = probe(encoder, images, norm="l2", eps=[0.3, 1.0], objective=objective)
    assert torch.allclose(_value(encoder, images, res.delta, recompute), res.objective_value, rtol=1e-3, atol=1e-5)
    with torch.no_grad():
        direct = torch.stack([encoder(images + d) for d in res.delta]) - encoder(images)
    assert torch.allclose(res.change, direct, rtol=1e-3, atol=1e-5)
    assert bool((res.objective_value > 0).all())


def test_shift_uses_across_image_sd(encoder, images) -> None:  # type: ignore[no-untyped-def]
    res = probe(encoder, images, norm="l2", eps=[0.5], objective=Shift("V4"), jacobian_start=False)
    sd = res.clean[:, 3:].std(0)
    recomputed = (res.change[..., 3:] / sd).norm(dim=-1)
    assert torch.allclose(recomputed, res.objective_value, rtol=1e-3)
    # without the Jacobian start: starts off the origin (zero gradient there) and grows far beyond the tiny nudge
    assert float(res.trace[0].max()) < 0.05 * float(res.objective_value.min())
    given = probe(encoder, images, norm="l2", eps=[0.5], objective=Shift("V4", scale=2 * sd), jacobian_start=False)
    assert torch.allclose(given.objective_value, res.objective_value / 2, rtol=0.02)
    with pytest.raises(ConfigError, match="needs >= 2 images"):
        probe(encoder, images[:1], norm="l2", eps=[0.5], objective="shift")


def test_toward_moves_to_another_images_pattern(encoder, images) -> None:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        goal = encoder(images.flip(0))
    res = probe(encoder, images, norm="linf", eps=[8 / 255], objective=Toward(goal), steps=20)
    before = (res.clean - goal).norm(dim=1)
    after = (res.clean + res.change[0] - goal).norm(dim=1)
    assert torch.allclose(before - after, res.objective_value[0], rtol=1e-3, atol=1e-5)
    assert bool((after < before).all())


def test_keep_best_is_monotone_and_returns_the_best_iterate(images) -> None:
    model = TinyEncoder(seed=4)
    kw = dict(norm="linf", eps=[16 / 255], objective="drive:V1", steps=12, step_size=8 / 255)  # large steps overshoot
    best = probe(model, images, **kw)
    last = probe(model, images, keep_best=False, **kw)
    trace = best.trace[:, 0]  # iterates x images
    running = torch.cummax(trace, dim=0).values
    assert bool((running[1:] >= running[:-1]).all())
    assert torch.equal(best.objective_value[0], trace.max(dim=0).values)
    assert torch.equal(best.best_step[0], trace.argmax(dim=0))
    assert torch.allclose(last.objective_value[0], last.trace[-1, 0])
    assert bool((best.objective_value >= last.objective_value - 1e-6).all())
    assert bool((best.objective_value > last.objective_value + 1e-4).any())  # the overshoot is real here
    recomputed = _value(model, images, best.delta, lambda c: c[..., :3].mean(-1))
    assert torch.allclose(recomputed, best.objective_value, rtol=1e-3, atol=1e-5)


def test_parameters_untouched_and_modes_restored(encoder, images) -> None:  # type: ignore[no-untyped-def]
    encoder.train()
    flags = [p.requires_grad for p in encoder.parameters()]
    probe(encoder, images, norm="l2", eps=[0.5], objective="drive:V1")
    assert all(p.grad is None for p in encoder.parameters())
    assert [p.requires_grad for p in encoder.parameters()] == flags and encoder.training


def test_contrast_separates_two_models(images) -> None:
    a, b = TinyEncoder(seed=1), TinyEncoder(seed=2)
    res = probe(a, images, norm="l2", eps=[1.0], objective=Contrast(a, b, "V1"), steps=30)
    with torch.no_grad():
        da = torch.stack([a(images + d) for d in res.delta]) - a(images)
        db = torch.stack([b(images + d) for d in res.delta]) - b(images)
    assert bool((da[0, :, :3].mean(-1) > 0).all()) and bool((db[0, :, :3].mean(-1) < 0).all())


def test_ensemble_and_input_diversity(images) -> None:
    a, b = TinyEncoder(seed=1), TinyEncoder(seed=2)
    ens = Ensemble(models=[a, b], objective="drive:V1")
    assert ens.name == "ensemble2:drive:V1"
    res = probe(a, images, norm="l2", eps=[1.0], objective=ens, input_diversity=True, seed=3)
    with torch.no_grad():
        both = [(m(images + res.delta[0]) - m(images))[:, :3].mean(-1) for m in (a, b)]
    assert torch.allclose((both[0] + both[1]) / 2, res.objective_value[0], rtol=1e-3, atol=1e-5)
    assert bool((both[0] > 0).all()) and bool((both[1] > 0).all())
    again = probe(a, images, norm="l2", eps=[1.0], objective=ens, input_diversity=True, seed=3)
    assert torch.equal(res.delta, again.delta)
    other = probe(a, images, norm="l2", eps=[1.0], objective=ens, input_diversity=True, seed=4)
    assert not torch.equal(res.delta, other.delta)
    assert res.settings["input_diversity"] == 0.5


def test_bad_input_is_a_one_line_error(encoder, images) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="norm must be 'l2' or 'linf'"):
        probe(encoder, images, norm="l1", eps=[1.0], objective="drive")
    with pytest.raises(ConfigError, match="eps must be finite and > 0"):
        probe(encoder, images, norm="l2", eps=[-1.0], objective="drive")
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        probe(encoder, images * 255, norm="l2", eps=[1.0], objective="drive")
    with pytest.raises(DataError, match="N x 3 x H x W"):
        probe(encoder, images[:, 0], norm="l2", eps=[1.0], objective="drive")
    with pytest.raises(ConfigError, match="random_start=True"):
        probe(encoder, images, norm="l2", eps=[1.0], objective="drive", restarts=3)
    uint8 = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    res = probe(encoder, uint8, norm="l2", eps=[0.5], objective="drive")
    assert res.delta.shape == (1, 4, 3, 16, 16)


def test_shift_nudge_never_rounds_back_to_the_clean_image() -> None:
    """Regression: a nudge of random radius U(0,1)*1e-3*eps could round x + noise back to x in
    float32, leaving Shift with a zero gradient and a zero probe for some seeds."""
    import torch.nn as nn

    from brainprobe.probes import probe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
    x = torch.rand(64, 3, 8, 8) * 0.5 + 0.25
    res = probe(model, x, norm="l2", eps=[1e-3], objective="shift", steps=3, checks=False, progress=False)
    sizes = res.delta.flatten(2).norm(dim=2)
    assert bool((sizes > 0.5e-3).all()), sizes.min()
