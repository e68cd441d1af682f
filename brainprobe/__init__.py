"""brainprobe: evaluate ANN-based models of visual cortex by their local representational geometry.

The public API is importable from here. Names are resolved lazily so that ``import brainprobe``
is cheap and so that ``brainprobe.zoo`` and ``brainprobe.probes`` work with torch alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from brainprobe._version import __version__

# public name -> module that defines it
_PUBLIC: dict[str, str] = {
    # zoo
    "load_backbone": "brainprobe.zoo",
    "list_models": "brainprobe.zoo",
    "get_spec": "brainprobe.zoo",
    "truncate": "brainprobe.zoo",
    "layer_names": "brainprobe.zoo",
    "register_robustified": "brainprobe.zoo",
    "Backbone": "brainprobe.zoo",
    "BackboneSpec": "brainprobe.zoo",
    # robust
    "robustify": "brainprobe.robust",
    "evaluate_robustified": "brainprobe.robust",
    # data
    "Dataset": "brainprobe.data",
    "SimulatedBrain": "brainprobe.data",
    "simulate_dataset": "brainprobe.data",
    "sample_stimuli": "brainprobe.data",
    "load_nsd": "brainprobe.data",
    "load_algonauts": "brainprobe.data",
    "load_generic": "brainprobe.data",
    "load_rdm_benchmark": "brainprobe.data",
    "noise_ceiling_ncsnr": "brainprobe.data",
    "split_half_reliability": "brainprobe.data",
    "library_photos": "brainprobe.data",
    "random_crops": "brainprobe.data",
    # encoding
    "Encoder": "brainprobe.encoding",
    "fit_encoder": "brainprobe.encoding",
    "extract_features": "brainprobe.encoding",
    "fit_ridge": "brainprobe.encoding",
    "compute_predictivity": "brainprobe.encoding",
    # probes
    "probe": "brainprobe.probes",
    "minimal_eps": "brainprobe.probes",
    "Drive": "brainprobe.probes",
    "Shift": "brainprobe.probes",
    "Toward": "brainprobe.probes",
    "Contrast": "brainprobe.probes",
    "Ensemble": "brainprobe.probes",
    "Objective": "brainprobe.probes",
    "ProbeResult": "brainprobe.probes",
    "ProbeCheckWarning": "brainprobe.probes",
    # analysis
    "findings": "brainprobe.analysis",
    "sensitivity": "brainprobe.analysis",
    "sensitivity_scores": "brainprobe.analysis",
    "discriminability": "brainprobe.analysis",
    "predictivity_scores": "brainprobe.analysis",
    "transfer": "brainprobe.analysis",
    "controversial": "brainprobe.analysis",
    "coding_axes": "brainprobe.analysis",
    "attack_control": "brainprobe.analysis",
    "local_axes": "brainprobe.analysis",
    "l2_linf": "brainprobe.analysis",
    "linearity": "brainprobe.analysis",
    "semantics": "brainprobe.analysis",
    "rsa_benchmark": "brainprobe.analysis",
    "rsa_fragility": "brainprobe.analysis",
    "linear_cka": "brainprobe.analysis",
    # report
    "build_report": "brainprobe.report",
    "export_stimuli": "brainprobe.report",
    # pipeline
    "run_pipeline": "brainprobe.pipeline",
    "load_config": "brainprobe.pipeline",
    "RunConfig": "brainprobe.pipeline",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'brainprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
