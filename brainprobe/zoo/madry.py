"""Converter for Madry-lab ``robustness`` checkpoints (Salman et al. 2020, Engstrom et al. 2019).

Those checkpoints hold ``{"model": state_dict, "optimizer": ..., "epoch": ...}`` where the state
dict wraps an ``AttackerModel`` in ``DataParallel``: keys ``module.model.<torchvision key>``
(the classifier), ``module.attacker.model.<key>`` (a second copy used by the attacker),
``module.normalizer.new_mean`` / ``new_std`` (the input normaliser, shape 3 x 1 x 1) and the
attacker's copy of the normaliser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from brainprobe.zoo.spec import IMAGENET_MEAN, IMAGENET_STD

_NESTING_KEYS = ("model", "state_dict", "net", "module")
_PREFIXES = ("module.", "model.")
_NORMALIZER_PREFIXES = ("normalizer.", "normalize.")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_checkpoint(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a (possibly nested) checkpoint object.

    Parameters
    ----------
    obj : mapping
        What ``torch.load`` returned: a state dict, or a dict holding one under ``model`` /
        ``state_dict`` (possibly nested several times).

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    ValueError
        When no state dict is found (the message lists the top-level keys).
    """
    seen = obj
    for _ in range(4):
        if _is_state_dict(seen):
            return dict(seen)
        if not isinstance(seen, Mapping):
            break
        inner = next((seen[k] for k in _NESTING_KEYS if k in seen and isinstance(seen[k], Mapping)), None)
        if inner is None:
            break
        seen = inner
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(f"no state dict of tensors found in checkpoint (top-level keys: {keys})")


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def convert_madry_checkpoint(
    obj: Any,
) -> tuple[dict[str, torch.Tensor], tuple[float, float, float], tuple[float, float, float], bool]:
    """Turn a Madry-format (or plain) checkpoint into a torchvision state dict and its normaliser.

    Keys of the attacker's copy (``attacker.``) are dropped, ``module.`` / ``model.`` prefixes
    are stripped, and the normaliser's ``new_mean`` / ``new_std`` (or ``mean`` / ``std``)
    buffers are read out. A plain torchvision state dict passes through unchanged.

    Parameters
    ----------
    obj : mapping
        What ``torch.load(path, weights_only=True)`` returned.

    Returns
    -------
    state_dict : dict of str to Tensor
        Keys as in the torchvision architecture (``conv1.weight``, ``layer1.0.bn1.running_mean``...).
    mean, std : tuple of 3 floats
        Input normalisation for RGB pixels in [0, 1]; ImageNet defaults when the checkpoint has
        no normaliser.
    had_normalizer : bool
        Whether mean/std came from the checkpoint.
    """
    raw = unwrap_checkpoint(obj)
    state: dict[str, torch.Tensor] = {}
    norm: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        key = _strip(key, ("module.",))
        if key.startswith("attacker."):
            continue  # the attacker holds a second copy of the same weights
        key = _strip(key, _PREFIXES)
        if key.startswith(_NORMALIZER_PREFIXES):
            norm[key.split(".", 1)[1]] = value
            continue
        state[key] = value
    mean_t = norm.get("new_mean", norm.get("mean"))
    std_t = norm.get("new_std", norm.get("std"))
    if mean_t is None or std_t is None:
        return state, IMAGENET_MEAN, IMAGENET_STD, False
    mean = tuple(float(v) for v in mean_t.flatten().tolist())
    std = tuple(float(v) for v in std_t.flatten().tolist())
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"checkpoint normaliser has {len(mean)} means / {len(std)} stds, expected 3 each")
    return state, mean, std, True  # type: ignore[return-value]
