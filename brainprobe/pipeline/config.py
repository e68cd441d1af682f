"""The run config: one YAML file describing a whole study (dataset -> models -> probes -> analyses).

Schema checks (types, unknown keys, ranges) happen in pydantic; checks that need the zoo or the
file system (model and layer names, data paths, a writable output folder) happen in
:func:`brainprobe.pipeline.validate.validate_config`, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from brainprobe.config import StrictModel

NORMS = ("l2", "linf")
ANALYSES = (
    "sensitivity",
    "discriminability",
    "transfer",
    "controversial",
    "axes",
    "l2_linf",
    "linearity",
    "semantics",
    "attack_control",
)


def _parse_eps(value: Any) -> float:
    """A budget given as a number or a fraction string such as ``"1/255"``."""
    if isinstance(value, str):
        try:
            num, _, den = value.strip().partition("/")
            return float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"budget {value!r} is not a number or a fraction like '1/255'") from None
    return value


class BrainConfig(StrictModel):
    """One simulated, image-computable brain (``brainprobe.data.SimulatedBrain``)."""

    backbone: str = "efficientnet_lite2"
    label: str | None = None
    """Dataset label in results.nc; default ``sim-<backbone>``."""
    seed: int = 0
    targets_per_roi: int | None = None
    """None: the data part's default."""
    noise_ceiling: float | tuple[float, float] | None = None
    """Fraction of variance, or a (low, high) range across targets; None: the data part's default."""


class SimulatedDataset(StrictModel):
    kind: Literal["simulated"]
    brains: list[BrainConfig] = Field(default_factory=lambda: [BrainConfig()], min_length=1)
    n_images: int = Field(200, ge=10)
    resolution: int = Field(128, ge=32, le=1024)
    repeats: int = Field(3, ge=1)
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    stimuli_seed: int = 0


class NsdDataset(StrictModel):
    kind: Literal["nsd"]
    root: Path
    subjects: list[str] = Field(min_length=1)
    roi: str | None = None
    resolution: int = Field(224, ge=32, le=1024)
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed to ``brainprobe.data.load_nsd``."""


class AlgonautsDataset(StrictModel):
    kind: Literal["algonauts"]
    root: Path
    subjects: list[str] = Field(min_length=1)
    resolution: int = Field(224, ge=32, le=1024)
    options: dict[str, Any] = Field(default_factory=dict)


class GenericDataset(StrictModel):
    kind: Literal["generic"]
    images: Path
    responses: Path
    rois: Path | None = None
    label: str = "generic"
    resolution: int = Field(224, ge=32, le=1024)
    options: dict[str, Any] = Field(default_factory=dict)


DatasetConfig = Annotated[
    Union[SimulatedDataset, NsdDataset, AlgonautsDataset, GenericDataset], Field(discriminator="kind")
]


class ModelConfig(StrictModel):
    """A candidate model: a zoo backbone cut at one layer with a ridge readout."""

    name: str
    layer: str | None = None
    """None: the middle of the spec's ``default_layers``."""
    weights: Path | None = None
    """A local weights file for models whose weights are not shipped."""
    pooling: str | None = None
    """None: ``encoding.pooling``."""


class EncodingConfig(StrictModel):
    readout: str = "ridge"
    """A name of ``brainprobe.encoding.READOUTS``: ridge, spatial_ridge or factorized (part of the fit cache key)."""
    pooling: str = "avg"
    pca: int | None = Field(None, ge=1)
    alphas: list[float] | None = None
    cv: int = Field(5, ge=2)
    batch_size: int = Field(32, ge=1)

    @field_validator("readout")
    @classmethod
    def _known_readout(cls, v: str) -> str:
        from brainprobe.encoding._readouts import READOUTS

        if v not in READOUTS:
            raise ValueError(f"unknown readout {v!r}; use one of {', '.join(READOUTS)}")
        return v

    @field_validator("alphas")
    @classmethod
    def _positive_alphas(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(a <= 0 for a in v)):
            raise ValueError("alphas must be a non-empty list of positive numbers")
        return v


class ProbesConfig(StrictModel):
    norms: list[Literal["l2", "linf"]] = Field(default_factory=lambda: ["l2", "linf"], min_length=1)
    eps: dict[Literal["l2", "linf"], list[float]]
    """Budgets per norm; l2 in pixel units of [0,1] images, linf as a fraction (``"1/255"`` allowed)."""
    objective: str = "shift"
    """The probe objective used for sensitivity and transfer (shorthands of brainprobe.probes)."""
    steps: int = Field(10, ge=1)
    step_size: float | None = Field(None, gt=0)
    random_start: bool = False
    jacobian_start: bool | Literal["auto"] = "auto"
    """Start l2 Shift probes along the top singular vector of the Jacobian (``brainprobe.probes.probe``)."""
    n_images: int = Field(16, ge=1)
    """Test images probed per dataset (the first ones of the test split)."""
    image_chunk: int = Field(8, ge=1)
    """Images per shard: the unit of work, caching and resumption."""
    batch_size: int = Field(32, ge=1)
    """Probe rows (eps x image) packed into one forward/backward pass."""
    keep_deltas: int = Field(0, ge=0)
    """Images per model x norm whose fp16 perturbations are kept under ``probes/`` (galleries, export)."""

    @field_validator("eps", mode="before")
    @classmethod
    def _parse_budgets(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [_parse_eps(e) for e in vals] if isinstance(vals, list) else vals for k, vals in v.items()}
        return v

    @field_validator("eps")
    @classmethod
    def _check_budgets(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for norm, grid in v.items():
            if not grid:
                raise ValueError(f"eps grid for {norm} is empty; give at least one budget")
            bad = [e for e in grid if not e > 0]
            if bad:
                raise ValueError(f"eps for {norm} must be positive, got {bad[0]}")
            if norm == "linf" and any(e > 1 for e in grid):
                raise ValueError("linf eps must be <= 1 (pixels are in [0,1]; write e.g. '4/255')")
            if len(set(grid)) != len(grid):
                raise ValueError(f"eps grid for {norm} has duplicates")
        return {k: sorted(g) for k, g in v.items()}

    @model_validator(mode="after")
    def _grid_per_norm(self) -> ProbesConfig:
        missing = [n for n in self.norms if n not in self.eps]
        if missing:
            raise ValueError(f"no eps grid for norm {missing[0]}; add probes.eps.{missing[0]}")
        return self


class AnalysesConfig(StrictModel):
    include: list[Literal[ANALYSES]] = Field(default_factory=lambda: list(ANALYSES))  # type: ignore[valid-type]
    n_boot: int = Field(1000, ge=10)
    axes_images: int = Field(4, ge=1)
    """Probed images at which coding axes (Jacobians) are computed (they cost one VJP per axis)."""
    contrast_images: int = Field(4, ge=2)
    """Probed images on which Contrast (controversial) probes are made for every ordered model pair."""
    contrast_norms: list[Literal["l2", "linf"]] | None = None
    """Norms of the Contrast probes; None: the first of probes.norms."""
    contrast_targets: str | list[str] | None = None
    """Target set whose mean the Contrast probes push apart (an ROI name or names; None: all targets)."""
    judges: list[Literal["gabor_energy", "nlpd"]] = Field(default_factory=lambda: ["gabor_energy", "nlpd"])
    """Non-learned judges of the semantics analysis: ``gabor_energy`` (V1-like oriented energy) and
    ``nlpd`` (Normalized Laplacian Pyramid Distance, Laparra et al. 2016, via plenoptic)."""
    classifier: str | None = None
    """Optional ImageNet classifier judge of the semantics analysis (a zoo name). Only independent when
    its family is no candidate's and not the brain's; otherwise its row is reported as not independent."""
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Extra keyword arguments per analysis function, e.g. ``{axes: {k: 4}}``."""

    @field_validator("options")
    @classmethod
    def _known(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in v:
            if name not in ANALYSES:
                raise ValueError(f"unknown analysis {name!r}; choose from {', '.join(ANALYSES)}")
        return v


class RealDataConfig(StrictModel):
    """The REAL panel: RSA with human / monkey IT on an RDM benchmark, and its fragility (docs/real_data.md)."""

    benchmark: str = "kriegeskorte92"
    """A shipped RDM benchmark name or a folder (``brainprobe.data.load_rdm_benchmark``)."""
    models: list[str] | None = None
    """Zoo names; None: the run's candidate models."""
    layers: list[str] | None = None
    """Layers for every model; None: each spec's curated ``default_layers`` (best one by leave-one-subject-out)."""
    resolution: int = Field(128, ge=32, le=1024)
    pooling: str = "flatten"
    n_boot: int = Field(200, ge=10)
    """rsatoolbox bootstrap samples over stimuli and subjects."""
    fragility: bool = True
    norms: list[Literal["l2", "linf"]] = Field(default_factory=lambda: ["l2"], min_length=1)
    eps: dict[Literal["l2", "linf"], list[float]] = Field(default_factory=lambda: {"l2": [0.5]})
    """Per-image budgets of the fragility probes (l2 in [0,1]-pixel units at ``resolution``; linf e.g. ``"1/255"``)."""
    directions: list[Literal["lower", "raise"]] = Field(default_factory=lambda: ["lower", "raise"], min_length=1)
    steps: int = Field(2, ge=1)

    @field_validator("eps", mode="before")
    @classmethod
    def _parse_budgets(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [_parse_eps(e) for e in vals] if isinstance(vals, list) else vals for k, vals in v.items()}
        return v

    @model_validator(mode="after")
    def _grid_per_norm(self) -> RealDataConfig:
        for norm in self.norms:
            grid = self.eps.get(norm)
            if not grid or any(not e > 0 for e in grid):
                raise ValueError(f"real_data.eps.{norm} must be a non-empty list of positive budgets")
        return self


class ExecutorConfig(StrictModel):
    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    """Ray cluster address (``ray://host:10001`` or ``auto``); None starts a local cluster."""
    workers: int = Field(2, ge=1)
    """CPU workers of a local Ray cluster."""
    gpus_per_shard: float | None = Field(None, ge=0)
    """None: 1 when device is cuda, else 0."""


class OutputConfig(StrictModel):
    dir: Path = Path("runs/brainprobe")
    cache_dir: Path | None = None
    """None: ``<dir>/cache``. Several runs may share one cache (it is content-addressed)."""
    report: bool = True
    """Build figures and report.html (brainprobe.report); false writes results, tables and manifest only."""


class RunConfig(StrictModel):
    """A whole study; see configs/demo.yaml for a commented example."""

    name: str = "brainprobe-run"
    seed: int = 0
    threads: int = Field(2, ge=1)
    """torch intra-op threads per worker; part of the result's identity (gradients differ at 1e-6)."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    dataset: DatasetConfig
    models: list[ModelConfig] = Field(min_length=1)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    probes: ProbesConfig
    analyses: AnalysesConfig = Field(default_factory=AnalysesConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    real_data: RealDataConfig | None = None
    """The REAL panel (RSA with human / monkey IT, and its fragility); None: off."""

    @field_validator("models", mode="before")
    @classmethod
    def _names_as_models(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in v]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"model {dup!r} is listed twice")
        return v

    @property
    def cache_dir(self) -> Path:
        return self.output.cache_dir if self.output.cache_dir is not None else self.output.dir / "cache"

    def dataset_labels(self) -> list[str]:
        """Labels of the datasets this run studies (one per simulated brain or subject)."""
        ds = self.dataset
        if isinstance(ds, SimulatedDataset):
            return [b.label or f"sim-{b.backbone}" for b in ds.brains]
        if isinstance(ds, (NsdDataset, AlgonautsDataset)):
            return [f"{ds.kind}-{s}" for s in ds.subjects]
        return [ds.label]
