"""brainprobe.analysis (see docs/ARCHITECTURE.md)."""
