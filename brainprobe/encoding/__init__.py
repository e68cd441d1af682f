"""brainprobe.encoding (see docs/ARCHITECTURE.md)."""
