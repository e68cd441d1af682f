"""Where brainprobe keeps downloaded weights and caches."""

from __future__ import annotations

import os
from pathlib import Path


def brainprobe_home() -> Path:
    """``$BRAINPROBE_HOME`` if set, else ``~/.cache/brainprobe`` (created on demand)."""
    root = Path(os.environ.get("BRAINPROBE_HOME") or Path.home() / ".cache" / "brainprobe")
    root.mkdir(parents=True, exist_ok=True)
    return root


ASSETS = Path(__file__).resolve().parent / "assets"
"""Files shipped inside the package (stimulus photos, robustified weights)."""
