"""The embedded offline demo config (``brainprobe demo``)."""

from __future__ import annotations

from importlib import resources

from brainprobe.pipeline.config import RunConfig

DEMO_CONFIG = "demo.yaml"


def demo_config_path() -> str:
    """Path of the demo config shipped inside the package (``brainprobe/configs/demo.yaml``)."""
    return str(resources.files("brainprobe") / "configs" / DEMO_CONFIG)


def demo_config() -> tuple[RunConfig, str]:
    """The demo's RunConfig and its source path (checked against the zoo and the file system)."""
    from brainprobe.pipeline.run import load_config

    path = demo_config_path()
    return load_config(path), path
