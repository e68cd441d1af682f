"""Content hashes used for weights provenance and cache keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_array(array: Any) -> str:
    """Hex sha256 of an array's dtype, shape and bytes (numpy or torch)."""
    try:
        import torch

        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().contiguous().numpy()
    except ImportError:  # pragma: no cover
        pass
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def sha256_state_dict(state: dict[str, Any]) -> str:
    """Hex sha256 over a state dict's names, dtypes, shapes and values (order-independent)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(sha256_array(state[key]).encode())
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of a JSON-serialisable object with sorted keys (for config/cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
