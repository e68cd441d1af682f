"""Budgets (eps) given by users: numbers or fraction strings such as ``"2/255"``, validated once."""

from __future__ import annotations

import math
from typing import Any

from brainprobe.errors import ConfigError


def parse_budget(value: Any, where: str = "eps") -> float:
    """One budget in [0, 1] pixel units from a number or a string (``"0.1"``, ``"2/255"``, ``"1e-2"``).

    Parameters
    ----------
    value : int, float, numpy or 0-d torch number, or str
        The budget as the user wrote it.
    where : str
        Name of the argument or option, used in the error message.

    Returns
    -------
    float
        The budget, finite and > 0.

    Raises
    ------
    ConfigError
        One line naming ``where`` and the value when it is not a number, not finite, or <= 0.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            num, _, den = text.partition("/")
            number = float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(
                f"{where}: expected a number such as 0.1 or 2/255, got {value!r}"
            ) from None
    elif isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: expected a number such as 0.1 or 2/255, got {value!r}")
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: expected a number such as 0.1 or 2/255, got {type(value).__name__} {value!r}"
            ) from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{where} must be finite and > 0, got {value!r}")
    return number
