"""Moved: ``brainprobe.zoo.robustify_eval`` is now part of :mod:`brainprobe.robust`.

Importing this module works (so tools that walk the package do not break), but every name in it
raises an ImportError that says where it went, e.g. ``from brainprobe.robust import evaluate_robustified, RobustifyReport, bootstrap_ci``.
"""

from __future__ import annotations

from typing import NoReturn


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"brainprobe.zoo.robustify_eval.{name} moved to brainprobe.robust: use `from brainprobe.robust import {name}`"
    )
