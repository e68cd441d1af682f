"""brainprobe.probes (see docs/ARCHITECTURE.md)."""
