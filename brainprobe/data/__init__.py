"""brainprobe.data: datasets, noise ceilings, the stimulus library, the simulated brain, loaders.

See docs/data.md and docs/noise_ceiling.md. Heavy modules (torch, the zoo) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES: dict[str, str] = {
    "Dataset": "brainprobe.data.dataset",
    "default_split": "brainprobe.data.dataset",
    "noise_ceiling_ncsnr": "brainprobe.data.noise_ceiling",
    "ncsnr": "brainprobe.data.noise_ceiling",
    "split_half_reliability": "brainprobe.data.noise_ceiling",
    "nc_from_ncsnr": "brainprobe.data.noise_ceiling",
    "noise_sd_for_ceiling": "brainprobe.data.noise_ceiling",
    "effective_repeats": "brainprobe.data.noise_ceiling",
    "sample_stimuli": "brainprobe.data.stimuli",
    "library_photos": "brainprobe.data.stimuli",
    "load_photo": "brainprobe.data.stimuli",
    "random_crops": "brainprobe.data.stimuli",
    "SimulatedBrain": "brainprobe.data.simulated",
    "simulate_dataset": "brainprobe.data.simulated",
    "Measurement": "brainprobe.data.simulated",
    "load_nsd": "brainprobe.data.nsd",
    "load_algonauts": "brainprobe.data.algonauts",
    "load_generic": "brainprobe.data.generic",
    "load_rdm_benchmark": "brainprobe.data.rdm_benchmark",
    "RDMBenchmark": "brainprobe.data.rdm_benchmark",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'brainprobe.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
