"""Choosing and temporarily setting himalaya's compute backend."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def backend_name(device: str | torch.device | None = None) -> str:
    """himalaya backend for a torch device: ``"torch_cuda"`` on a GPU, else ``"torch"``."""
    return "torch_cuda" if default_device(device).type == "cuda" else "torch"


@contextlib.contextmanager
def himalaya_backend(name: str) -> Iterator[object]:
    """Set himalaya's (global) backend to ``name`` for the duration of the block, then restore it."""
    from himalaya.backend import get_backend, set_backend

    previous = get_backend()
    backend = set_backend(name, on_error="raise")
    try:
        yield backend
    finally:
        set_backend(previous, on_error="raise")
