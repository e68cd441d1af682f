"""Unpacked iterates match torchattacks PGD / PGDL2 on a classifier with a cross-entropy objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from brainprobe.probes import Objective, probe
from brainprobe.probes.objectives import Compiled
from tests.probes.conftest import TinyClassifier


class CrossEntropy(Objective):
    """Untargeted classifier attack: maximise the cross-entropy of the given labels (a custom objective)."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels
        self.model = None
        self.name = "cross_entropy"

    def compile(self, default_model: nn.Module, clean_fn) -> Compiled:  # type: ignore[no-untyped-def]
        m = self._model(default_model)
        labels = self.labels

        def value(outs, clean, image_index):  # type: ignore[no-untyped-def]
            return F.cross_entropy(outs[id(m)], labels.index_select(0, image_index), reduction="none")

        return Compiled([m], value)


@pytest.mark.parametrize(
    ("norm", "eps", "alpha", "attack"),
    [("l2", 0.5, 0.1, torchattacks.PGDL2), ("linf", 8 / 255, 2 / 255, torchattacks.PGD)],
)
def test_iterates_match_torchattacks(norm: str, eps: float, alpha: float, attack: type) -> None:
    model = TinyClassifier(seed=0).eval()
    x = torch.rand((8, 3, 32, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        labels = model(x).argmax(1)
    ours_first = None
    for steps in range(1, 9):
        ref = attack(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, labels)
        # unpacked: one eps, the same batch of 8 images as torchattacks
        res = probe(model, x, norm=norm, eps=[eps], objective=CrossEntropy(labels), steps=steps,
                    step_size=alpha, keep_best=False, batch_size=8, channels_last=False)
        ours = (x + res.delta[0]).clamp(0, 1)
        assert float((ours - ref).abs().max()) <= 1e-4, f"step {steps}"
        ours_first = ours_first if ours_first is not None else ours
    # the attack did something: the iterates moved and the loss grew
    first = (ours_first - x).flatten(1)
    size = first.norm(dim=1) if norm == "l2" else first.abs().amax(dim=1)
    assert bool((size > 0.9 * alpha).all())
    with torch.no_grad():
        assert float(res.objective_value[0].mean()) > float(F.cross_entropy(model(x), labels))
    assert all(p.grad is None for p in model.parameters())
