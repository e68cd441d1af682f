"""Robustified copies: specs read from recipe JSON files beside ``<name>.safetensors`` weights.

Recipes live in ``brainprobe/assets/weights/`` (shipped) and ``$BRAINPROBE_HOME/robust/`` (made
locally by ``brainprobe robustify``, :mod:`brainprobe.robust`), or anywhere via
:func:`brainprobe.zoo.registry.register_robustified`. This module only turns recipes into specs:
it imports nothing of the registry (the registry imports it). The weights
file holds the source architecture's ``.net`` state dict (fp16 allowed, cast to fp32 at load).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

from brainprobe._paths import ASSETS, brainprobe_home
from brainprobe.errors import ModelError, WeightsError
from brainprobe.zoo.spec import BackboneSpec, Training, WeightSource

RECIPE_KEYS = (
    "name",
    "source_model",
    "source_weights_sha256",
    "layers",
    "norm",
    "eps",
    "steps",
    "lr",
    "seed",
    "resolution",
    "images",
    "wall_time_s",
    "final_losses",
    "sha256",
)
"""Keys every robustification recipe must have (more are allowed and kept)."""


def robust_prefix(source_model: str, norm: str) -> str:
    """``<source>_robust_<norm>_eps``: every robustified model's name starts with it (the registry
    recognises robustified copies by it)."""
    return f"{source_model}_robust_{norm}_eps"


def robust_name(source_model: str, norm: str, eps: float) -> str:
    """``<source>_robust_<norm>_eps<e>``: l2 eps as is, l-inf eps in 1/255 units (``_eps4`` = 4/255).

    Parameters
    ----------
    source_model : str
    norm : {"l2", "linf"}
    eps : float
        Budget in [0, 1] pixel units.
    """
    if norm not in ("l2", "linf"):
        raise ModelError(f"norm must be 'l2' or 'linf', got {norm!r}")
    value = eps * 255 if norm == "linf" else eps
    return f"{source_model}_robust_{norm}_eps{round(value, 6):g}"


def robust_dirs() -> list[Path]:
    """Folders scanned for recipes: shipped assets first, then ``$BRAINPROBE_HOME/robust``."""
    return [ASSETS / "weights", brainprobe_home() / "robust"]


def _check_recipe(recipe: Mapping[str, Any], path: Path) -> None:
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise ModelError(f"robustification recipe {path} lacks keys {missing}; required: {list(RECIPE_KEYS)}")
    if recipe["norm"] not in ("l2", "linf"):
        raise ModelError(f"robustification recipe {path}: norm must be 'l2' or 'linf', got {recipe['norm']!r}")
    eps = recipe["eps"]
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ModelError(f"robustification recipe {path}: eps must be a positive number, got {eps!r}")
    prefix = robust_prefix(recipe["source_model"], recipe["norm"])
    if not str(recipe["name"]).startswith(prefix):
        raise ModelError(f"robustification recipe {path}: name {recipe['name']!r} must look like '{prefix}<e>'")


def spec_from_recipe(recipe_path: str | Path, sources: Mapping[str, BackboneSpec]) -> BackboneSpec:
    """Build the spec of a robustified copy from its recipe JSON.

    Parameters
    ----------
    recipe_path : path
        ``<name>.json``; the weights are ``<name>.safetensors`` in the same folder.
    sources : mapping of name to BackboneSpec
        Specs the source model is looked up in.

    Raises
    ------
    ModelError
        Missing keys, bad values or unknown source model (one line, names the file).
    WeightsError
        The safetensors file is missing.
    """
    path = Path(recipe_path).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"robustification recipe not found: {path}")
    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read robustification recipe {path}: {err}") from err
    if not isinstance(recipe, dict):
        raise ModelError(f"robustification recipe {path} must hold a JSON object")
    _check_recipe(recipe, path)
    source = sources.get(recipe["source_model"])
    if source is None:
        raise ModelError(
            f"robustification recipe {path}: unknown source_model {recipe['source_model']!r}; "
            f"valid names: {', '.join(sources)}"
        )
    weights = path.with_name(f"{recipe['name']}.safetensors")
    if not weights.is_file():
        raise WeightsError(f"weights of robustified model '{recipe['name']}' missing: expected {weights} beside {path.name}")
    shown = f"{recipe['eps'] * 255:g}/255" if recipe["norm"] == "linf" else f"{recipe['eps']:g}"
    return dataclasses.replace(
        source,
        name=str(recipe["name"]),
        weights=WeightSource(
            kind="robustified",
            format="safetensors",
            filename=weights.name,
            path=weights,
            sha256=str(recipe["sha256"]),
            source_model=source.name,
            install=f"brainprobe robustify {source.name} (recipe {path})",
        ),
        training=Training("robustified", norm=recipe["norm"], eps=float(recipe["eps"]), reference=str(path)),
        description=f"{source.name} robustified against its own features ({recipe['norm']} eps={shown}, "
        f"{recipe['steps']} steps, seed {recipe['seed']})",
    )


def read_recipe(spec: BackboneSpec) -> dict[str, Any]:
    """The recipe JSON of a robustified spec (for provenance)."""
    if spec.weights.kind != "robustified" or spec.weights.path is None:
        raise ModelError(f"'{spec.name}' is not a robustified model")
    return json.loads(spec.weights.path.with_suffix(".json").read_text())


def discover_robustified(sources: Mapping[str, BackboneSpec]) -> list[BackboneSpec]:
    """Specs of every valid recipe in :func:`robust_dirs`; invalid recipes warn and are skipped."""
    specs = []
    for folder in robust_dirs():
        if not folder.is_dir():
            continue
        for recipe in sorted(folder.glob("*.json")):
            try:
                specs.append(spec_from_recipe(recipe, sources))
            except (ModelError, WeightsError) as err:
                warnings.warn(f"robustified-model registry: skipping {recipe}: {err}", stacklevel=2)
    return specs
