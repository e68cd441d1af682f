"""brainprobe.data (see docs/ARCHITECTURE.md)."""
