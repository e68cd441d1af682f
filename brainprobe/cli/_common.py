"""Small parsers shared by the CLI modules."""

from __future__ import annotations


def parse_eps(text: str, option: str = "--eps") -> float:
    """A budget from the command line: ``"0.1"``, ``"2/255"``, ``"1e-2"`` -> float.

    Raises a one-line ConfigError naming the option when ``text`` is not a finite number > 0
    (:func:`brainprobe._budget.parse_budget`, shared with the Python API's ``probe``).
    """
    from brainprobe._budget import parse_budget

    return parse_budget(text, option)
