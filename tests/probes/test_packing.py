"""Packing budgets x images x objectives into batches changes nothing but speed."""

from __future__ import annotations

import pytest
import torch

from brainprobe.probes import Drive, Shift, probe

EPS = {"l2": [0.25, 0.5, 1.0], "linf": [1 / 255, 2 / 255, 4 / 255]}


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_packed_sweep_matches_unpacked_runs(encoder, images, norm: str) -> None:  # type: ignore[no-untyped-def]
    eps = EPS[norm]
    packed = probe(encoder, images, norm=norm, eps=eps, objective="drive:V1", batch_size=len(eps) * len(images))
    for i, e in enumerate(eps):
        single = probe(encoder, images, norm=norm, eps=[e], objective="drive:V1", batch_size=len(images))
        rel = (packed.objective_value[i] - single.objective_value[0]).abs() / single.objective_value[0].abs()
        assert float(rel.max()) <= 0.01
    assert bool((packed.objective_value > 0).all())
    # larger budgets reach more
    assert bool((packed.objective_value[1:] >= packed.objective_value[:-1] * 0.99).all())


def test_objectives_pack_together(encoder, images) -> None:  # type: ignore[no-untyped-def]
    objectives = [Drive("V1"), Drive("V4", -1), Shift(targets="V4")]
    together = probe(encoder, images, norm="l2", eps=[0.5, 1.0], objective=objectives, batch_size=24)
    assert [r.objective for r in together] == ["drive:V1", "drive-:V4", "shift:V4"]
    for ob, res in zip(objectives, together):
        alone = probe(encoder, images, norm="l2", eps=[0.5, 1.0], objective=ob, batch_size=3)
        assert torch.allclose(res.objective_value, alone.objective_value, rtol=0.01, atol=1e-6)
        assert res.delta.shape == (2, 4, 3, 16, 16) and res.change.shape == (2, 4, 6)


def test_random_start_is_seeded_and_packing_invariant(encoder, images) -> None:  # type: ignore[no-untyped-def]
    kw = dict(norm="linf", eps=[2 / 255, 4 / 255], objective="drive:V4", random_start=True, restarts=2, steps=3)
    a = probe(encoder, images, seed=5, batch_size=8, **kw)
    b = probe(encoder, images, seed=5, batch_size=3, **kw)
    c = probe(encoder, images, seed=6, batch_size=8, **kw)
    assert torch.allclose(a.trace[0], b.trace[0], rtol=1e-4, atol=1e-6)  # identical start points
    assert torch.allclose(a.objective_value, b.objective_value, rtol=0.01)
    assert not torch.allclose(a.trace[0], c.trace[0])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_channels_last_runs_and_agrees(norm: str) -> None:
    """Regression: channels_last inputs crashed the l2 step (``.view`` on NHWC strides)."""
    import torch.nn as nn

    from brainprobe.probes import probe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.rand(4, 3, 8, 8) * 0.5 + 0.25
    kw = dict(norm=norm, eps=[0.05, 0.1] if norm == "l2" else [2 / 255], objective="drive:all", steps=5, progress=False)
    a = probe(model, x, channels_last=False, **kw)
    b = probe(model, x, channels_last=True, **kw)
    assert torch.allclose(a.objective_value, b.objective_value, rtol=1e-2, atol=1e-6)
    assert (a.settings["channels_last"], b.settings["channels_last"]) == (False, True)


class _ViewNet(torch.nn.Module):
    """A conv net written the old way: ``.view`` on conv features, which NHWC strides refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def test_default_format_is_channels_last_for_conv_models_and_restores_the_model() -> None:
    import torch.nn as nn

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    dense = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    x = torch.rand(4, 3, 8, 8) * 0.5 + 0.25
    kw = dict(norm="l2", eps=[0.1], objective="drive:all", steps=3, progress=False)
    assert probe(conv, x, **kw).settings["channels_last"] is True
    assert probe(dense, x, **kw).settings["channels_last"] is False
    # the caller's model leaves in the format it came in
    assert conv[0].weight.is_contiguous() and not conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    conv.to(memory_format=torch.channels_last)
    probe(conv, x, **kw)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_falls_back_with_a_warning_when_the_model_cannot_run_it() -> None:
    torch.manual_seed(0)
    model = _ViewNet().eval()
    x = torch.rand(4, 3, 8, 8) * 0.5 + 0.25
    kw = dict(norm="l2", eps=[0.1], objective="drive:all", steps=3, progress=False)
    with pytest.warns(UserWarning, match="channels-last"):
        auto = probe(model, x, **kw)
    plain = probe(model, x, channels_last=False, **kw)
    assert auto.settings["channels_last"] is False
    assert torch.equal(auto.delta, plain.delta)
    assert model.conv.weight.is_contiguous()
    with pytest.raises(RuntimeError):  # asked for explicitly: no fallback
        probe(model, x, channels_last=True, **kw)
