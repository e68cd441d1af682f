"""Streamed, cached extraction of pooled backbone activations.

Activations of several layers come from ONE forward pass of the backbone cut after the deepest
requested layer (``brainprobe.zoo.truncate``), in batches, and are pooled to N x F features:

* ``"avg"``: global average over space (N x C);
* ``"avgpool{k}"``: adaptive average pooling to k x k, flattened channel-major (N x C*k*k);
* ``"flatten"``: the whole activation map (N x C*H*W).

Features are cached under ``$BRAINPROBE_HOME/features/`` in one ``.npy`` file per layer, keyed by
the backbone weights sha256, architecture, layer, pooling, input resolution and the sha256 of the
stimuli; a change in any of them is a cache miss.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from brainprobe._hashing import sha256_array, sha256_json, sha256_state_dict
from brainprobe._images import to_float_tensor
from brainprobe._paths import brainprobe_home
from brainprobe._progress import progress
from brainprobe.errors import ConfigError, DataError

CACHE_VERSION = 1
_POOLING = re.compile(r"^(avg|flatten|avgpool([1-9][0-9]*))$")


def check_pooling(pooling: str) -> str:
    """Return ``pooling`` if valid (``avg``, ``avgpool{k}`` with k >= 1, ``flatten``), else raise ConfigError."""
    if not isinstance(pooling, str) or not _POOLING.match(pooling):
        raise ConfigError(f"pooling {pooling!r} is unknown; use 'avg', 'avgpool{{k}}' (e.g. 'avgpool2') or 'flatten'")
    return pooling


def pool(activation: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool one layer's activation to N x F (differentiable).

    Parameters
    ----------
    activation : N x C x H x W (conv maps), N x L x C (tokens: averaged over L by ``avg``) or N x F.
    pooling : ``"avg"``, ``"avgpool{k}"`` or ``"flatten"``.
    """
    match = _POOLING.match(pooling)
    if match is None:
        check_pooling(pooling)
    if activation.ndim == 2:
        return activation
    if activation.ndim == 4:
        if pooling == "avg":
            return activation.mean(dim=(2, 3))
        if pooling == "flatten":
            return activation.flatten(1)
        k = int(match.group(2))  # type: ignore[union-attr]
        return nn.functional.adaptive_avg_pool2d(activation, k).flatten(1)
    if activation.ndim == 3:
        return activation.flatten(1) if pooling == "flatten" else activation.mean(dim=1)
    raise DataError(f"cannot pool an activation of shape {tuple(activation.shape)}; expected 2-D, 3-D or 4-D")


def weights_sha256(backbone: nn.Module) -> str:
    """The backbone's recorded weights hash, or the sha256 of its state dict."""
    sha = getattr(backbone, "weights_sha256", None)
    return str(sha) if sha else sha256_state_dict(backbone.state_dict())


def backbone_name(backbone: nn.Module) -> str:
    spec = getattr(backbone, "spec", None)
    return str(getattr(spec, "name", None) or type(backbone).__name__)


def stimuli_sha256(images: np.ndarray | torch.Tensor) -> str:
    return sha256_array(images)


def _cache_dir() -> Path:
    path = brainprobe_home() / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(backbone: nn.Module, layer: str, pooling: str, resolution: tuple[int, int], stimuli_sha: str) -> dict[str, Any]:
    """What identifies one cached feature matrix (hashed into its file name)."""
    return {
        "version": CACHE_VERSION,
        "backbone": backbone_name(backbone),
        "weights_sha256": weights_sha256(backbone),
        "layer": layer,
        "pooling": pooling,
        "resolution": list(resolution),
        "stimuli_sha256": stimuli_sha,
    }


def cache_path(key: dict[str, Any]) -> Path:
    return _cache_dir() / f"{key['backbone']}-{sha256_json(key)[:32]}.npy"


def _save(path: Path, array: np.ndarray, key: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(key, indent=1))


def _resolution(images: np.ndarray | torch.Tensor) -> tuple[int, int]:
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        return int(images.shape[2]), int(images.shape[3])
    return int(images.shape[1]), int(images.shape[2])


def extract_features(
    backbone: nn.Module | str,
    images: np.ndarray | torch.Tensor,
    layers: str | Sequence[str],
    *,
    pooling: str = "avg",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    cache: bool = True,
) -> dict[str, np.ndarray]:
    """Pooled activations of ``layers`` for ``images``, streamed in batches, cached on disk.

    Parameters
    ----------
    backbone : a ``brainprobe.zoo`` Backbone (or its registered name).
    images : uint8 N x H x W x 3 (stored stimuli) or float N x 3 x H x W in [0, 1].
    layers : one layer name or several (module paths, see ``brainprobe.zoo.layer_names``);
        all come from one forward pass.
    pooling : ``"avg"``, ``"avgpool{k}"`` or ``"flatten"``.
    batch_size : images per forward pass.
    device : torch device; default CUDA when available, else CPU.
    cache : read and write the feature cache.

    Returns
    -------
    dict layer -> float32 array N x F.
    """
    from brainprobe.encoding._backend import default_device
    from brainprobe.zoo import load_backbone

    check_pooling(pooling)
    if isinstance(backbone, str):
        backbone = load_backbone(backbone, device=device)
    layer_list = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))
    if not layer_list:
        raise ConfigError("extract_features: no layers given; pass at least one layer name")
    check_layers(backbone, layer_list)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = int(images.shape[0])
    resolution = _resolution(images)
    keys = {}
    out: dict[str, np.ndarray] = {}
    if cache:
        sha = stimuli_sha256(images)
        for layer in layer_list:
            keys[layer] = cache_key(backbone, layer, pooling, resolution, sha)
            path = cache_path(keys[layer])
            if path.is_file():
                arr = np.load(path)
                if arr.shape[0] == n:
                    out[layer] = arr
    missing = [layer for layer in layer_list if layer not in out]
    if missing:
        computed = _forward_features(backbone, images, missing, pooling, batch_size, default_device(device))
        for layer, arr in computed.items():
            out[layer] = arr
            if cache:
                _save(cache_path(keys[layer]), arr, keys[layer])
    return {layer: out[layer] for layer in layer_list}


def check_layers(backbone: nn.Module, layers: Sequence[str]) -> list[str]:
    """Validate layer names (ModelError naming the valid layers when one is unknown)."""
    from brainprobe.zoo.truncate import check_layers as zoo_check_layers

    return zoo_check_layers(backbone, layers)


def _forward_features(
    backbone: nn.Module,
    images: np.ndarray | torch.Tensor,
    layers: list[str],
    pooling: str,
    batch_size: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    from brainprobe.zoo import truncate

    body = truncate(backbone, list(layers)).to(device).eval()
    n = int(images.shape[0])
    chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    starts = range(0, n, batch_size)
    with torch.inference_mode():
        for start in progress(starts, total=len(starts), desc=f"features {backbone_name(backbone)}"):
            x = to_float_tensor(images[start : start + batch_size], device=device)
            acts = body(x)
            for layer in layers:
                chunks[layer].append(pool(acts[layer], pooling).float().cpu().numpy())
    return {layer: np.concatenate(chunks[layer], axis=0) for layer in layers}
