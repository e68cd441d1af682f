"""Resolution of target specs (None | ROI name | ROI names | int indices) to column indices."""

from __future__ import annotations

from typing import Any, Sequence, Union

import torch
from torch import nn

from brainprobe.errors import ConfigError

TargetSpec = Union[None, str, int, Sequence[str], Sequence[int]]


def _table_columns(model: nn.Module, n_targets: int) -> tuple[list[str], list[str]]:
    """(target ids, roi names) of ``model``'s outputs; a model without ``targets`` is one ROI ``all``."""
    table: Any = getattr(model, "targets", None)
    if table is None:
        return [str(i) for i in range(n_targets)], ["all"] * n_targets
    # duck-typed pandas DataFrame: columns `target` and `roi`
    try:
        rois = [str(r) for r in list(table["roi"])]
        ids = [str(t) for t in list(table["target"])] if "target" in table else [str(i) for i in range(len(rois))]
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"{type(model).__name__}.targets has no 'roi' column; give the model a targets table with columns "
            "target and roi (one row per output)"
        ) from err
    if len(rois) != n_targets:
        raise ConfigError(
            f"{type(model).__name__}.targets has {len(rois)} rows but the model outputs {n_targets} responses; "
            "make targets one row per output column"
        )
    return ids, rois


def resolve_targets(model: nn.Module, spec: TargetSpec, n_targets: int) -> torch.Tensor:
    """Column indices (LongTensor, sorted, unique) that ``spec`` selects among ``model``'s outputs.

    Parameters
    ----------
    model : nn.Module
        Response model; its ``targets`` table (columns ``target``, ``roi``) names the outputs.
    spec : None, str, int, sequence of str or sequence of int
        ``None``: all targets; a str: an ROI name (or, failing that, a target id); a sequence of
        ROI names / target ids; an int or sequence of ints: column indices.
    n_targets : int
        Number of model outputs T.
    """
    ids, rois = _table_columns(model, n_targets)
    if spec is None:
        return torch.arange(n_targets)
    items: list[Any] = [spec] if isinstance(spec, (str, int)) else list(spec)
    if not items:
        raise ConfigError("empty target list in an objective; give None (all targets), an ROI name or indices")
    chosen: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ConfigError(f"target spec {item!r} is a bool; give an ROI name or an int index")
        if isinstance(item, int) or (hasattr(item, "__index__") and not isinstance(item, str)):
            i = int(item)
            if not -n_targets <= i < n_targets:
                raise ConfigError(f"target index {i} out of range for a model with {n_targets} outputs")
            chosen.append(i % n_targets)
        elif isinstance(item, str):
            hits = [j for j, r in enumerate(rois) if r == item] or [j for j, t in enumerate(ids) if t == item]
            if not hits:
                valid = ", ".join(sorted(set(rois)))
                raise ConfigError(
                    f"unknown ROI or target {item!r} for {type(model).__name__}; valid ROIs: {valid}"
                )
            chosen.extend(hits)
        else:
            raise ConfigError(f"target spec item {item!r} must be an ROI name (str) or a column index (int)")
    return torch.tensor(sorted(set(chosen)), dtype=torch.long)


def describe_targets(spec: TargetSpec) -> str:
    """Short name of a target spec for objective names (``all``, ``V1``, ``V1+V2``, ``#3``)."""
    if spec is None:
        return "all"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, int):
        return f"#{spec}"
    items = list(spec)
    if len(items) > 4:
        return f"{len(items)} targets"
    return "+".join(str(s) if isinstance(s, str) else f"#{int(s)}" for s in items)
