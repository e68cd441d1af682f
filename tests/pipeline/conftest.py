"""A tiny but real run config: a simulated brain, two small models, 64 px, 2 budgets per norm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


def tiny_config(out: Path, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "threads": 1,
        "device": "cpu",
        "dataset": {
            "kind": "simulated",
            "brains": [{"backbone": "efficientnet_lite0", "seed": 0, "targets_per_roi": 8}],
            "n_images": 48,
            "resolution": 64,
            "repeats": 2,
        },
        "models": [{"name": "mobilenet_v2", "layer": "features.10"}, {"name": "efficientnet_lite0", "layer": "_blocks.10"}],
        "encoding": {"cv": 3, "batch_size": 24},
        "probes": {
            "norms": ["l2", "linf"],
            "eps": {"l2": [0.1, 0.5], "linf": ["1/255", "4/255"]},
            "objective": "drive:sim-mid",
            "steps": 3,
            "n_images": 8,
            "image_chunk": 4,
            "batch_size": 16,
            "keep_deltas": 2,
        },
        "analyses": {"include": ["sensitivity", "discriminability", "transfer", "l2_linf"], "n_boot": 50},
        "output": {"dir": str(out / "run"), "cache_dir": str(out / "cache")},
    }
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def tiny(tmp_path: Path):
    def make(**overrides: Any) -> Path:
        return write_config(tmp_path / "config.yaml", tiny_config(tmp_path, **overrides))

    return make
