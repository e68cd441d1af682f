"""Every shipped robust copy (brainprobe/assets/weights/*_robust_*.safetensors) is robust.

Parametrised over the files, so a new asset is tested without editing this file: it must load
by name and, on held-out photos (foolbox's ImageNet photos; robustify trains on the stimulus
library's training photos), be at least 1.5x less sensitive than its teacher to a short PGD at
its distilled layer, in its own threat model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from brainprobe._paths import ASSETS

SHIPPED = sorted((ASSETS / "weights").glob("*_robust_*.safetensors"))
MIN_RATIO = 1.5
BUDGET = {"l2": 0.25, "linf": 1 / 255}
N_IMAGES = 8


def test_assets_are_found() -> None:
    assert SHIPPED, f"no *_robust_*.safetensors in {ASSETS / 'weights'}"
    for path in SHIPPED:
        assert path.with_suffix(".json").is_file(), f"{path.name} has no recipe beside it"


def _relative_change(trunk: torch.nn.Module, x: torch.Tensor, norm: str, eps: float) -> np.ndarray:
    """Per-image ||f(x + delta) - f(x)|| / ||f(x)|| at the trunk's output, delta from 5-step PGD."""
    from brainprobe.robust import pgd_maximize

    with torch.no_grad():
        clean = trunk(x).flatten(1)
    den = clean.pow(2).sum(1).clamp_min(1e-12)

    def loss(xa: torch.Tensor) -> torch.Tensor:
        return (trunk(xa).flatten(1) - clean).pow(2).sum(1) / den

    delta = pgd_maximize(loss, x, norm=norm, eps=eps, steps=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return loss(x + delta).sqrt().numpy()


@pytest.mark.parametrize("weights", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_copy_is_less_sensitive_than_its_teacher(weights: Path) -> None:
    from brainprobe.robust import foolbox_photos
    from brainprobe.zoo import get_spec, load_backbone, truncate

    recipe = json.loads(weights.with_suffix(".json").read_text())
    spec = get_spec(recipe["name"])
    assert spec.training.kind == "robustified" and spec.weights.path == weights.resolve()
    student = load_backbone(recipe["name"])  # checks the sha256 against the recipe
    teacher = load_backbone(recipe["source_model"])
    assert teacher.weights_sha256 == recipe["source_weights_sha256"]
    layer = recipe["layers"][-1]
    x, _ = foolbox_photos(int(recipe["resolution"]))
    x = x[:: len(x) // N_IMAGES][:N_IMAGES]
    norm = recipe["norm"]
    eps = BUDGET[norm]
    t = _relative_change(truncate(teacher, layer), x, norm, eps)
    s = _relative_change(truncate(student, layer), x, norm, eps)
    ratio = t.mean() / s.mean()
    assert ratio >= MIN_RATIO, (
        f"{recipe['name']}: only {ratio:.2f}x less sensitive than {recipe['source_model']} at {layer} "
        f"({norm} eps {eps:.4g}); shipped robust copies must reach {MIN_RATIO}x"
    )
