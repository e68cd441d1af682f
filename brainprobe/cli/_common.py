"""Small parsers shared by the CLI modules."""

from __future__ import annotations

from brainprobe.errors import ConfigError


def parse_eps(text: str, option: str = "--eps") -> float:
    """A budget from the command line: ``"0.1"``, ``"2/255"``, ``"1e-2"`` -> float.

    Raises a one-line ConfigError naming the option when ``text`` is not a positive number.
    """
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(
            f"{option}: expected a number such as 0.1 or 2/255 ({option} {text!r} is not a number)"
        ) from None
    if not value > 0:
        raise ConfigError(f"{option}: must be > 0, got {text!r}")
    return value
