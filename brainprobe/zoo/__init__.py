"""brainprobe.zoo (see docs/ARCHITECTURE.md)."""
