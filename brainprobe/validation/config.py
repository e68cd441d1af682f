"""The validation config (``brainprobe validate [CONFIG]``): brains of known truth, candidates, readouts, criteria."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from brainprobe._budget import parse_budget
from brainprobe.config import StrictModel, load_yaml_model
from brainprobe.errors import ConfigError

CRITERIA: tuple[str, ...] = ("predictivity", "sensitivity", "closed_loop", "controversial", "axes")
"""Criteria scored by how often they pick the brain's own network (docs/validation.md)."""

DEFAULT_CONFIG = "validate.yaml"


class BrainConfig(StrictModel):
    """One SIMULATED brain family: a zoo network, a generative form, one brain per seed."""

    backbone: str
    form: Literal["matched", "two_layer", "l4pool", "divnorm"] = "matched"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    """Brain seeds (receptive fields, channel weights, trial noise): the brain-seed level of the CIs."""
    targets_per_roi: int = Field(16, ge=2)

    @property
    def label(self) -> str:
        return f"{self.backbone}:{self.form}"


class ValidationProbes(StrictModel):
    norm: Literal["l2", "linf"] = "l2"
    eps: list[float] = Field(default_factory=lambda: [0.5, 2.0], min_length=1)
    """Budgets (l2: [0,1] pixel units; linf: fraction, ``"1/255"`` allowed)."""
    steps: int = Field(5, ge=1)
    n_images: int = Field(8, ge=2)
    """Test images probed per brain for sensitivity, closed loop and controversial probes."""
    batch_size: int = Field(32, ge=1)

    @field_validator("eps", mode="before")
    @classmethod
    def _budgets(cls, v):  # type: ignore[no-untyped-def]
        return [parse_budget(e, "validation probes.eps") for e in (v if isinstance(v, (list, tuple)) else [v])]


class PowerConfig(StrictModel):
    noise_ceilings: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6], min_length=1)
    """Single-trial noise ceilings (fraction of variance) of a planned experiment's targets."""
    repeats: list[int] = Field(default_factory=lambda: [1, 3, 8], min_length=1)
    n_images: list[int] = Field(default_factory=lambda: [4, 8, 16, 32, 64, 128, 256], min_length=1)
    power: float = Field(0.8, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    n_sim: int = Field(400, ge=50)


class ValidationOutput(StrictModel):
    dir: Path = Path("runs/validate")
    cache_dir: Path | None = None
    report: bool = True


class ValidationConfig(StrictModel):
    """What ``brainprobe validate`` runs; see ``brainprobe/configs/validate.yaml``."""

    name: str = "validate"
    seed: int = 0
    threads: int = Field(2, ge=1)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    brains: list[BrainConfig] = Field(min_length=1)
    candidates: list[str] = Field(min_length=2)
    readouts: list[str] = Field(default_factory=lambda: ["ridge"], min_length=1)
    criteria: list[Literal["predictivity", "sensitivity", "closed_loop", "controversial", "axes"]] = Field(
        default_factory=lambda: list(CRITERIA), min_length=1)
    n_images: int = Field(96, ge=16)
    """Stimuli per brain (crops of the package's natural photos, eval split)."""
    resolution: int = Field(64, ge=32)
    repeats: int = Field(3, ge=2)
    noise_ceiling: tuple[float, float] = (0.2, 0.6)
    """Per-target true noise ceilings of the R-trial mean, drawn uniformly (NSD-like: most voxels 0.2-0.6)."""
    test_fraction: float = Field(0.25, gt=0, lt=1)
    encoding_cv: int = Field(4, ge=2)
    probes: ValidationProbes = Field(default_factory=ValidationProbes)
    axes_images: int = Field(2, ge=2)
    axes_k: int = Field(3, ge=1)
    noise_z: float = Field(1.96, ge=0)
    n_boot: int = Field(500, ge=50)
    power: PowerConfig = Field(default_factory=PowerConfig)
    output: ValidationOutput = Field(default_factory=ValidationOutput)

    @property
    def cache_dir(self) -> Path:
        return self.output.cache_dir or self.output.dir / "cache"


def check_validation_config(config: ValidationConfig, source: str = "config") -> None:
    """Names, readouts and brains checked against the zoo and the encoding package (ConfigError, one line)."""
    from brainprobe.errors import ModelError, WeightsError
    from brainprobe.zoo import get_spec
    from brainprobe.zoo.weights import resolve_weights

    for key, name in [*(("candidates", c) for c in config.candidates), *(("brains", b.backbone) for b in config.brains)]:
        try:
            resolve_weights(get_spec(name), None)
        except (ModelError, WeightsError) as err:
            raise ConfigError(f"{source}: key '{key}': {err}") from None
    if len(set(config.candidates)) != len(config.candidates):
        raise ConfigError(f"{source}: key 'candidates' lists a model twice; list each once")
    for b in config.brains:
        if b.backbone not in config.candidates:
            raise ConfigError(f"{source}: key 'brains': brain network {b.backbone!r} is not among the candidates "
                              f"{config.candidates}; recovery needs the brain's own network as a candidate")
    known = readout_names()
    for r in config.readouts:
        if r not in known:
            raise ConfigError(f"{source}: key 'readouts': unknown readout {r!r}; this brainprobe offers "
                              f"{', '.join(known)}")
    if config.probes.n_images > round(config.n_images * config.test_fraction):
        raise ConfigError(f"{source}: key 'probes.n_images' ({config.probes.n_images}) exceeds the test images "
                          f"(n_images x test_fraction = {round(config.n_images * config.test_fraction)}); lower it")


def readout_names() -> list[str]:
    """Readouts ``fit_encoder(readout=)`` offers (``brainprobe.encoding.READOUTS``; ``ridge`` before it existed)."""
    import brainprobe.encoding as enc

    table = getattr(enc, "READOUTS", None)
    return list(table) if table is not None else ["ridge"]


def default_config_path() -> str:
    """Path of the shipped default validation config (``brainprobe/configs/validate.yaml``)."""
    return str(resources.files("brainprobe") / "configs" / DEFAULT_CONFIG)


def load_validation_config(path: str | Path | None = None) -> ValidationConfig:
    """Read and check a validation config (default: the shipped one). ConfigError names file and key."""
    path = path or default_config_path()
    config = load_yaml_model(path, ValidationConfig)
    check_validation_config(config, str(path))
    return config
