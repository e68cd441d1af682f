"""brainprobe.pipeline (see docs/ARCHITECTURE.md)."""
