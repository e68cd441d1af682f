"""Probe objectives: what a perturbation should do to a model's predicted responses.

Every objective scores each perturbed image by a scalar that PGD *maximises*, measured
relative to the clean image (0 when nothing changes). Objectives are composable: each can be
bound to a model with :meth:`Objective.on`, :class:`Contrast` combines two bound drives with a
smooth minimum and :class:`Ensemble` averages several objectives or models. Strings are
shorthands: ``"drive:V1"`` (raise ROI V1's mean), ``"drive-:V1"`` (lower it), ``"drive"`` (all
targets), ``"shift"`` / ``"shift:V1"``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from brainprobe.errors import ConfigError
from brainprobe.probes._targets import TargetSpec, describe_targets, resolve_targets

CleanFn = Callable[[nn.Module], torch.Tensor]
"""model -> its clean responses to the probed images, N x T float32 (computed once, cached)."""


@dataclass
class Compiled:
    """An objective resolved against concrete models and clean responses.

    Attributes
    ----------
    models : list of nn.Module
        Models whose responses to the perturbed images ``value`` needs.
    value : callable
        ``value(outs, clean, image_index) -> B``: ``outs[id(m)]`` is model m's response to the B
        perturbed images (B x T, float32), ``clean[id(m)]`` its clean responses (N x T) and
        ``image_index`` (B,) the clean image of each perturbed one.
    zero_grad_at_origin : bool
        True when the gradient vanishes at delta = 0 (e.g. a norm of the change); PGD then starts
        such items from a tiny seeded random point.
    """

    models: list[nn.Module]
    value: Callable[[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor], torch.Tensor]
    zero_grad_at_origin: bool = False
    unit: torch.Tensor | None = field(default=None)
    """Size of one SD of the objective's quantity (for ``criterion="1sd"``), or None."""
    scale: str | None = field(default=None)
    """Which SDs scaled the objective (recorded in ``ProbeResult.settings["scale"]``), or None."""
    vector: Callable[[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor], torch.Tensor] | None = field(
        default=None
    )
    """For objectives that are the norm of a vector change (Shift): ``vector(outs, clean, image_index) -> B x K``
    with ``value = ||vector||_2``; the convergence diagnostic linearises it (``brainprobe.probes.convergence``)."""


class Objective:
    """Base class. Subclasses set ``name`` and implement :meth:`compile`."""

    name: str = "objective"
    model: nn.Module | None = None

    def on(self, model: nn.Module) -> "Objective":
        """A copy of this objective evaluated on ``model`` instead of the probed model."""
        bound = copy.copy(self)
        bound.model = model
        return bound

    def _model(self, default: nn.Module) -> nn.Module:
        return self.model if self.model is not None else default

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check_direction(direction: int) -> int:
    if direction not in (1, -1):
        raise ConfigError(f"objective direction must be +1 or -1, got {direction!r}")
    return int(direction)


SCALE_MODEL = "model response_sd (SD of its predictions on its training images)"
SCALE_PROBED = "SD of the clean responses to the probed images (the model has no response_sd)"
SCALE_GIVEN = "scale= given to the objective"


def model_scale(model: nn.Module, idx: torch.Tensor) -> torch.Tensor | None:
    """The model's per-output scale ``response_sd[idx]`` (see ``set_response_scale``), or None if it has none."""
    sd = getattr(model, "response_sd", None)
    if sd is None:
        return None
    sd = torch.as_tensor(sd).flatten()
    return sd.index_select(0, torch.as_tensor(idx, device=sd.device).long())


def model_mean_scale(model: nn.Module, idx: torch.Tensor) -> float | None:
    """SD of the model's mean response over outputs ``idx`` on its training images, or None.

    Known when ``idx`` is all outputs or exactly one ROI of ``model.targets`` (``mean_response_sd``).
    """
    table = getattr(model, "mean_response_sd", None)
    sd = getattr(model, "response_sd", None)
    if not table or sd is None:
        return None
    chosen = sorted(set(torch.as_tensor(idx).flatten().tolist()))
    if len(chosen) == int(torch.as_tensor(sd).numel()) and "__all__" in table:
        return float(table["__all__"])
    targets = getattr(model, "targets", None)
    if targets is None or "roi" not in targets:
        return None
    rois = [str(r) for r in list(targets["roi"])]
    for roi, value in table.items():
        if roi != "__all__" and [i for i, r in enumerate(rois) if r == roi] == chosen:
            return float(value)
    return None


def _sd(values: torch.Tensor, what: str) -> torch.Tensor:
    """Across-image SD (ddof=1) of ``values`` (N x ...); needs N >= 2."""
    if values.shape[0] < 2:
        raise ConfigError(f"{what} needs >= 2 images to estimate the across-image SD; pass more images or scale=")
    return values.std(dim=0, unbiased=True)


class Drive(Objective):
    """Raise (``direction=+1``) or lower (``-1``) the mean response of a target set.

    value = direction * mean over targets of (y(x + delta) - y(x)), in response units.

    Parameters
    ----------
    targets : None, ROI name, list of ROI names or list of int indices
        Target set (None: all outputs).
    direction : {+1, -1}
    model : nn.Module, optional
        Evaluate on this model instead of the probed one (see :meth:`Objective.on`).
    """

    def __init__(self, targets: TargetSpec = None, direction: int = 1, model: nn.Module | None = None) -> None:
        self.targets = targets
        self.direction = _check_direction(direction)
        self.model = model
        self.name = f"drive{'-' if self.direction < 0 else ''}:{describe_targets(targets)}"

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:
        m = self._model(default_model)
        clean_m = clean_fn(m)
        idx = resolve_targets(m, self.targets, clean_m.shape[1]).to(clean_m.device)
        key, sign = id(m), float(self.direction)

        def value(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            change = outs[key].index_select(1, idx) - clean[key].index_select(0, image_index).index_select(1, idx)
            return sign * change.mean(dim=1)

        known = model_mean_scale(m, idx)
        if known is not None:
            unit: torch.Tensor | None = torch.tensor(known, device=clean_m.device)
            scale: str | None = SCALE_MODEL
        else:
            unit = _sd(clean_m.index_select(1, idx).mean(dim=1), self.name) if clean_m.shape[0] >= 2 else None
            scale = SCALE_PROBED if unit is not None else None
        return Compiled([m], value, unit=unit, scale=scale)


class Shift(Objective):
    """Maximise the size of the change of a target set's response pattern.

    value = || (y(x + delta) - y(x))[targets] / sd ||_2, where ``sd`` is each target's
    across-image SD: ``scale`` if given, else the model's ``response_sd`` (the SD of its
    predictions on its training images; fitted Encoders and SimulatedBrains carry it), else (plain
    modules) estimated from the clean probed images; 1 when ``normalize=False``. Which one was
    used is recorded in ``settings["scale"]``. Its gradient vanishes at delta = 0, so PGD starts it from a tiny seeded
    random point (radius 0.05 * eps) even without ``random_start``.
    """

    def __init__(
        self,
        targets: TargetSpec = None,
        normalize: bool = True,
        scale: Sequence[float] | torch.Tensor | None = None,
        model: nn.Module | None = None,
    ) -> None:
        self.targets = targets
        self.normalize = bool(normalize)
        self.scale = None if scale is None else torch.as_tensor(scale, dtype=torch.float32)
        self.model = model
        self.name = f"shift:{describe_targets(targets)}"

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:
        m = self._model(default_model)
        clean_m = clean_fn(m)
        n_targets = clean_m.shape[1]
        idx = resolve_targets(m, self.targets, n_targets).to(clean_m.device)
        own = model_scale(m, idx) if self.normalize and self.scale is None else None
        source: str | None = None
        if not self.normalize:
            sd = torch.ones(len(idx), device=clean_m.device)
        elif own is not None:
            sd, source = own.to(clean_m.device, torch.float32), SCALE_MODEL
        elif self.scale is not None:
            s = self.scale.to(clean_m.device).flatten()
            if s.numel() == n_targets:
                s = s.index_select(0, idx)
            elif s.numel() != len(idx):
                raise ConfigError(
                    f"Shift scale has {s.numel()} values; give one per model output ({n_targets}) "
                    f"or per selected target ({len(idx)})"
                )
            sd, source = s, SCALE_GIVEN
        else:
            sd, source = _sd(clean_m.index_select(1, idx), self.name), SCALE_PROBED
        if bool((sd <= 0).any()):
            raise ConfigError(f"{self.name}: some targets have zero across-image SD; pass scale= or normalize=False")
        inv = 1.0 / sd
        key = id(m)

        def vector(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            change = outs[key].index_select(1, idx) - clean[key].index_select(0, image_index).index_select(1, idx)
            return change * inv

        def value(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            return torch.linalg.vector_norm(vector(outs, clean, image_index), dim=1)

        return Compiled([m], value, zero_grad_at_origin=True, unit=torch.tensor(1.0) if self.normalize else None,
                        scale=source, vector=vector)


class Toward(Objective):
    """Move the response pattern toward ``pattern`` (e.g. another image's predicted response).

    value = ||y(x) - p|| - ||y(x + delta) - p|| over the target set (the distance removed, in
    response units; 0 when nothing changes).

    Parameters
    ----------
    pattern : array (T,) or (N, T)
        Goal pattern, one for all images or one per image (over all T outputs).
    targets : target spec, optional
    """

    def __init__(self, pattern: Sequence[float] | torch.Tensor, targets: TargetSpec = None, model: nn.Module | None = None) -> None:
        self.pattern = torch.as_tensor(pattern, dtype=torch.float32)
        if self.pattern.ndim not in (1, 2):
            raise ConfigError(f"Toward pattern must be T or N x T, got shape {tuple(self.pattern.shape)}")
        self.targets = targets
        self.model = model
        self.name = f"toward:{describe_targets(targets)}"

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:
        m = self._model(default_model)
        clean_m = clean_fn(m)
        n, t = clean_m.shape
        p = self.pattern.to(clean_m.device)
        if p.shape[-1] != t or (p.ndim == 2 and p.shape[0] != n):
            raise ConfigError(
                f"Toward pattern has shape {tuple(p.shape)}; the model gives {t} outputs for {n} images "
                f"(give shape ({t},) or ({n}, {t}))"
            )
        p = p.expand(n, t) if p.ndim == 1 else p
        idx = resolve_targets(m, self.targets, t).to(clean_m.device)
        key = id(m)

        def value(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            goal = p.index_select(0, image_index).index_select(1, idx)
            before = torch.linalg.vector_norm(clean[key].index_select(0, image_index).index_select(1, idx) - goal, dim=1)
            after = torch.linalg.vector_norm(outs[key].index_select(1, idx) - goal, dim=1)
            return before - after

        return Compiled([m], value)


def smooth_min(values: torch.Tensor, sharpness: float) -> torch.Tensor:
    """-logsumexp(-k v) / k over the last dim: below min(v) by at most log(len)/k."""
    return -torch.logsumexp(-sharpness * values, dim=-1) / sharpness


class Contrast(Objective):
    """Controversial probe: raise a target set's response under ``model_a`` while lowering it under ``model_b``.

    a = direction_a * mean change of A's targets, b = direction_b * mean change of B's targets,
    each divided by the SD of that model's target-set mean when ``normalize=True``: on its
    training images where the model knows it (``mean_response_sd``, for a whole ROI or all
    outputs), else across the clean probed images (recorded in ``settings["scale"]``); value = smooth_min(a, b) = -logsumexp(-k [a, b]) / k with
    k = ``sharpness`` (Golan, Raju & Kriegeskorte 2020). The smooth minimum is within log(2)/k of
    the hard minimum, in the units of a and b (SDs when normalised).
    """

    def __init__(
        self,
        model_a: nn.Module,
        model_b: nn.Module,
        targets: TargetSpec = None,
        *,
        targets_b: TargetSpec = None,
        direction_a: int = 1,
        direction_b: int = -1,
        normalize: bool = True,
        sharpness: float = 10.0,
    ) -> None:
        if sharpness <= 0:
            raise ConfigError(f"Contrast sharpness must be > 0, got {sharpness}")
        self.model_a, self.model_b = model_a, model_b
        self.targets = targets
        self.targets_b = targets if targets_b is None else targets_b
        self.direction_a, self.direction_b = _check_direction(direction_a), _check_direction(direction_b)
        self.normalize = bool(normalize)
        self.sharpness = float(sharpness)
        self.model = model_a
        self.name = f"contrast:{describe_targets(targets)}"

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:
        a = Drive(self.targets, self.direction_a, model=self.model_a).compile(default_model, clean_fn)
        b = Drive(self.targets_b, self.direction_b, model=self.model_b).compile(default_model, clean_fn)
        if self.normalize:
            if a.unit is None or b.unit is None:
                raise ConfigError("Contrast(normalize=True) needs >= 2 images to estimate SDs; pass normalize=False")
            sa, sb = float(a.unit), float(b.unit)
            scale = a.scale if a.scale == b.scale else f"A: {a.scale}; B: {b.scale}"
        else:
            sa = sb = 1.0
            scale = None
        k = self.sharpness

        def value(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            both = torch.stack([a.value(outs, clean, image_index) / sa, b.value(outs, clean, image_index) / sb], dim=-1)
            return smooth_min(both, k)

        return Compiled(_unique(a.models + b.models), value, scale=scale)


class Ensemble(Objective):
    """Mean of several objectives, or of one objective over several models (transfer boosting).

    ``Ensemble([obj1, obj2])`` averages objectives; ``Ensemble(models=[m1, m2],
    objective="drive:V1")`` averages that objective evaluated on each model.
    """

    def __init__(
        self,
        members: Sequence["Objective | str"] | None = None,
        *,
        models: Sequence[nn.Module] | None = None,
        objective: "Objective | str | None" = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if models is not None:
            if objective is None or members is not None:
                raise ConfigError("Ensemble(models=...) needs objective= and no members")
            base = parse_objective(objective)
            self.members = [base.on(m) for m in models]
            self.name = f"ensemble{len(self.members)}:{base.name}"
        else:
            if not members:
                raise ConfigError("Ensemble needs a non-empty list of objectives or models= with objective=")
            self.members = [parse_objective(m) for m in members]
            self.name = "ensemble:" + ",".join(m.name for m in self.members)
        w = [1.0] * len(self.members) if weights is None else [float(x) for x in weights]
        if len(w) != len(self.members):
            raise ConfigError(f"Ensemble has {len(self.members)} members but {len(w)} weights")
        total = sum(w)
        self.weights = [x / total for x in w]
        self.model = None

    def on(self, model: nn.Module) -> "Objective":
        bound = copy.copy(self)
        bound.members = [m.on(model) if m.model is None else m for m in self.members]
        return bound

    def compile(self, default_model: nn.Module, clean_fn: CleanFn) -> Compiled:
        parts = [m.compile(default_model, clean_fn) for m in self.members]
        weights = self.weights

        def value(outs: dict[int, torch.Tensor], clean: dict[int, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
            return sum(w * p.value(outs, clean, image_index) for w, p in zip(weights, parts))  # type: ignore[return-value]

        models = _unique([m for p in parts for m in p.models])
        return Compiled(models, value, zero_grad_at_origin=all(p.zero_grad_at_origin for p in parts))


def _unique(models: list[nn.Module]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for m in models:
        seen.setdefault(id(m), m)
    return list(seen.values())


def parse_objective(spec: "Objective | str") -> Objective:
    """An :class:`Objective` from itself or a string shorthand.

    ``"drive"``, ``"drive:ROI"``, ``"drive+:ROI"``, ``"drive-:ROI"``, ``"shift"``,
    ``"shift:ROI"``; ROI lists are comma-separated (``"drive:V1,V2"``) and ``#i`` is column i.
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"objective must be an Objective or a string such as 'drive:V1', got {type(spec).__name__}")
    head, _, rest = spec.strip().partition(":")
    targets: TargetSpec = None
    if rest:
        parts = [p.strip() for p in rest.split(",") if p.strip()]
        parsed: list = [int(p[1:]) if p.startswith("#") and p[1:].isdigit() else p for p in parts]
        targets = parsed[0] if len(parsed) == 1 else parsed
    head = head.strip().lower()
    if head in ("drive", "drive+"):
        return Drive(targets, +1)
    if head == "drive-":
        return Drive(targets, -1)
    if head == "shift":
        return Shift(targets)
    raise ConfigError(f"unknown objective {spec!r}; use 'drive:ROI', 'drive-:ROI', 'shift' or 'shift:ROI'")


