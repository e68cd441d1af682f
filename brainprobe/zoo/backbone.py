"""Backbone: a frozen network with its input normalisation inside, fed RGB pixels in [0, 1]."""

from __future__ import annotations

import os

import torch
from torch import nn

from brainprobe.errors import ModelError, WeightsError
from brainprobe.zoo.spec import BackboneSpec, Normalization


class Preprocess(nn.Module):
    """RGB pixels in [0, 1] -> network input: ``(flip(x * scale) - mean) / std``.

    Parameters
    ----------
    norm : Normalization
    """

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.norm = norm
        self.scale = float(norm.scale)
        self.bgr = norm.channel_order == "bgr"
        self.register_buffer("mean", torch.tensor(norm.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W float RGB in [0, 1] -> N x 3 x H x W network input."""
        x = x * self.scale
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        n = self.norm
        return f"scale={n.scale:g}, order={n.channel_order}, mean={n.mean}, std={n.std}"


class Backbone(nn.Module):
    """A named, frozen network: ``forward(x) = net(preprocess(x))``.

    Attributes
    ----------
    spec : BackboneSpec
    preprocess : Preprocess
        Pixels [0, 1] (N x 3 x H x W, RGB) -> network input.
    net : nn.Module
        The architecture; layer names are module paths inside it (``features.13``).
    weights_sha256 : str
        sha256 of the weights file that was loaded.
    weights_path : str
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module, preprocess: Preprocess, weights_sha256: str, weights_path: str) -> None:
        super().__init__()
        self.spec = spec
        self.preprocess = preprocess
        self.net = net
        self.weights_sha256 = weights_sha256
        self.weights_path = weights_path

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.spec.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W float RGB in [0, 1] -> the network's output (logits N x 1000 where it has a classifier)."""
        return self.net(self.preprocess(x))

    def provenance(self) -> dict[str, object]:
        """Name, weights source, sha256 and training of this backbone (for manifests)."""
        s = self.spec
        return {
            "model": s.name,
            "family": s.family,
            "weights_kind": s.weights.kind,
            "weights_path": self.weights_path,
            "weights_sha256": self.weights_sha256,
            "training": s.training.describe(),
            "source_model": s.weights.source_model,
            "resolution": s.resolution,
        }

    def extra_repr(self) -> str:
        return f"name={self.spec.name}, sha256={self.weights_sha256[:12]}"


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter (in place); returns the module."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def disable_inplace(module: nn.Module) -> nn.Module:
    """Set ``inplace=False`` on every sub-module that has the flag (ReLU, ReLU6, Dropout...).

    An in-place activation overwrites the output of the layer before it, so a hook or a
    multi-layer cut would return the post-activation values for the earlier layer.
    """
    for m in module.modules():
        if isinstance(getattr(m, "inplace", None), bool):
            m.inplace = False
    return module


def load_backbone(
    name: str, weights: str | os.PathLike | None = None, device: str | torch.device | None = None
) -> Backbone:
    """Load a named backbone, frozen and in eval mode.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (``brainprobe models``).
    weights : path, optional
        A local weights file to use instead of the spec's own (torch state dict, Madry-format
        checkpoint or safetensors). Checksums are verified only for the spec's own file.
    device : str or torch.device, optional
        Where to put the model (default CPU).

    Returns
    -------
    Backbone
        ``forward`` takes float RGB N x 3 x H x W in [0, 1].

    Raises
    ------
    ModelError
        Unknown name (lists valid names).
    WeightsError
        Weights missing (names the expected file and the fetch command), unreadable, not
        matching the architecture, or failing their sha256.
    """
    from brainprobe._hashing import sha256_file
    from brainprobe.zoo.registry import get_spec
    from brainprobe.zoo.weights import read_weights, resolve_weights, verify

    spec = get_spec(name)
    path = resolve_weights(spec, weights)
    digest = sha256_file(path)
    if weights is None:
        verify(spec, path, digest)
    loaded = read_weights(spec, path)
    net = spec.builder()
    try:
        net.load_state_dict(loaded.state_dict, strict=True)
    except RuntimeError as err:
        missing, unexpected = _key_mismatch(net, loaded.state_dict)
        raise WeightsError(
            f"weights {path} do not fit '{name}' ({spec.family}): {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}) or wrong shapes"
        ) from err
    backbone = Backbone(spec, disable_inplace(net), Preprocess(loaded.normalization), digest, str(path))
    freeze(backbone)
    if device is not None:
        backbone.to(device)
    return backbone


def _key_mismatch(net: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    own = set(net.state_dict())
    return sorted(own - set(state)), sorted(set(state) - own)


def as_backbone(model: Backbone | str) -> Backbone:
    """A Backbone from itself or a name."""
    if isinstance(model, Backbone):
        return model
    if isinstance(model, str):
        return load_backbone(model)
    raise ModelError(f"expected a Backbone or a model name, got {type(model).__name__}")
