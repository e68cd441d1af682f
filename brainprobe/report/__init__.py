"""brainprobe.report: figures, a self-contained report.html, and stimulus export of probes.

``build_report(run_dir)`` rebuilds ``report.html`` from a run folder without recomputing;
``export_stimuli(run_dir, model, eps)`` writes probe images as lossless PNG plus a CSV of each
image's predicted change per ROI under every model (see docs/report.md).
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "build_report": "brainprobe.report.build",
    "export_stimuli": "brainprobe.report.export",
    "load_run": "brainprobe.report.results",
    "probe_gallery": "brainprobe.report.gallery",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    import importlib

    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'brainprobe.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
