"""Loading pydantic config models from YAML with one-line errors that name the key and file."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from brainprobe.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line naming the first offending key (dotted path), the problem and the file."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        problem = "unknown key"
    else:
        problem = first.get("msg", "invalid value")
        if "input" in first and kind != "missing":
            problem += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: key '{key}': {problem}{suffix}"


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Read ``path`` as YAML and validate it against ``model``.

    Raises
    ------
    ConfigError
        The file is missing, is not valid YAML, is not a mapping, or fails validation; the
        message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None
