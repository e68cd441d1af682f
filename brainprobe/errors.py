"""User-facing errors.

Every problem a user can cause (bad input, missing file, missing weights, bad config) raises a
subclass of :class:`BrainprobeError` with a one-line message that says what is wrong, where,
and what to do. The CLI prints ``error: <message>`` and exits with code 2, without a traceback.
"""

from __future__ import annotations


class BrainprobeError(Exception):
    """Base class of errors caused by user input; the message is one line, shown as is."""

    exit_code: int = 2


class ConfigError(BrainprobeError, ValueError):
    """A config file or option is invalid (names the key and the file)."""


class DataError(BrainprobeError, ValueError):
    """A data file is missing, unreadable or inconsistent (names the file and the problem)."""


class WeightsError(BrainprobeError, FileNotFoundError):
    """Weights are missing or fail verification (names the model, file and fetch command)."""


class ModelError(BrainprobeError, ValueError):
    """Unknown model or layer name (lists the valid names)."""
