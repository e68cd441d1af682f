"""brainprobe.pipeline: one YAML config runs a whole study, resumably, locally or on Ray.

``load_config(path) -> RunConfig`` reads and checks a config; ``run_pipeline(config) -> Path``
runs the stages data -> fit -> probes -> transfer -> analyses -> report with a content-addressed
cache per stage and returns the run folder. See docs/pipeline.md and docs/results.md.
"""

from __future__ import annotations

from brainprobe.pipeline.config import RunConfig
from brainprobe.pipeline.run import load_config, run_pipeline

__all__ = ["RunConfig", "load_config", "run_pipeline"]
