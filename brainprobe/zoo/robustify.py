"""Moved: ``brainprobe.zoo.robustify`` is now part of :mod:`brainprobe.robust`.

Importing this module works (so tools that walk the package do not break), but every name in it
raises an ImportError that says where it went, e.g. ``from brainprobe.robust import robustify, save_robustified, default_output_dir, feature_distance, RobustifyResult``.
"""

from __future__ import annotations

from typing import NoReturn


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"brainprobe.zoo.robustify.{name} moved to brainprobe.robust: use `from brainprobe.robust import {name}`"
    )
