"""Validation where the truth is known: does a criterion pick the SIMULATED brain's own network?

``run_validation(config)`` (CLI ``brainprobe validate [CONFIG]``) simulates brains from zoo networks
(of the form a readout shares and of forms none shares), fits every candidate with every readout,
scores the criteria (predictivity, brain-referenced sensitivity, closed-loop change in brain units,
controversial probes, coding-axes alignment) by how often they pick the brain's own network, and
writes recovery, confusion, controversial shares and power curves (docs/validation.md).
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "ValidationConfig": "brainprobe.validation.config",
    "CRITERIA": "brainprobe.validation.config",
    "load_validation_config": "brainprobe.validation.config",
    "default_config_path": "brainprobe.validation.config",
    "run_validation": "brainprobe.validation.run",
    "quick_config": "brainprobe.validation.run",
    "brain_scores": "brainprobe.validation.criteria",
    "recovery": "brainprobe.validation.recovery",
    "controversial_recovery": "brainprobe.validation.recovery",
    "format_recovery": "brainprobe.validation.recovery",
    "power_curve": "brainprobe.validation.power",
    "power_analysis": "brainprobe.validation.power",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'brainprobe.validation' has no attribute {name!r}")
