"""brainprobe.report (see docs/ARCHITECTURE.md)."""
