"""brainprobe.probes: PGD probes of response models (see docs/probes.md).

Imports torch, numpy and the standard library only, so it runs on a bare GPU box.
"""

from brainprobe.probes._targets import describe_targets, resolve_targets
from brainprobe.probes.checks import ProbeCheckWarning
from brainprobe.probes.minimal import minimal_eps
from brainprobe.probes.objectives import Contrast, Drive, Ensemble, Objective, Shift, Toward, parse_objective, smooth_min
from brainprobe.probes.probe import probe
from brainprobe.probes.result import ProbeResult

__all__ = [
    "Contrast",
    "Drive",
    "Ensemble",
    "Objective",
    "ProbeCheckWarning",
    "ProbeResult",
    "describe_targets",
    "Shift",
    "Toward",
    "minimal_eps",
    "parse_objective",
    "probe",
    "resolve_targets",
    "smooth_min",
]
