"""minimal_eps(): the smallest budget at which a probe reaches a criterion change."""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch
from torch import nn

from brainprobe.errors import ConfigError
from brainprobe.probes._engine import EngineConfig, frozen_eval, has_conv, run_items
from brainprobe.probes.objectives import Objective, parse_objective
from brainprobe.probes.probe import DEFAULT_BATCH_CPU, DEFAULT_BATCH_CUDA, _eps_list, _norm, as_images, prepare_any_format, resolve_device


def _threshold(criterion: float | str, unit: torch.Tensor | None, name: str) -> float:
    if isinstance(criterion, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)?\s*sd\s*", criterion.lower())
        if not m:
            raise ConfigError(f"criterion {criterion!r} must be a number or '<k>sd' such as '1sd'")
        if unit is None:
            raise ConfigError(
                f"criterion {criterion!r} needs an SD unit, which objective {name} does not define "
                "(or fewer than 2 images); give a number in the objective's units"
            )
        return float(m.group(1) or 1.0) * float(unit)
    value = float(criterion)
    if not value > 0:
        raise ConfigError(f"criterion must be > 0, got {criterion!r}")
    return value


def minimal_eps(
    model: nn.Module | None,
    images: Any,
    *,
    norm: str,
    objective: Objective | str,
    criterion: float | str = "1sd",
    eps_grid: Sequence[float],
    bisect_steps: int = 4,
    steps: int = 10,
    rel_step: float = 2.5,
    random_start: bool = False,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    autocast: bool = True,
    progress: bool = True,
) -> torch.Tensor:
    """Smallest budget per image at which the probe's objective reaches ``criterion``.

    A sweep over ``eps_grid`` brackets the first budget that reaches the criterion; bisection
    (``bisect_steps`` rounds, each one packed run with per-image budgets) narrows the bracket.
    Assumes the achieved objective grows with eps (true for the optimum; PGD is close).

    Parameters
    ----------
    criterion : float or str
        Objective value to reach, or ``"<k>sd"``: k across-image SDs of the objective's target-set
        mean response (Drive; for normalised Shift one SD is 1), estimated from ``images``.
    eps_grid : sequence of float
        Increasing budgets to sweep.

    Returns
    -------
    Tensor, N, float32
        Upper end of the final bracket (a budget that reached the criterion); ``inf`` when no
        budget in the grid did.
    """
    norm = _norm(norm)
    x_cpu = as_images(images)
    grid = _eps_list(eps_grid, "eps_grid")
    if bool((grid[1:] <= grid[:-1]).any()) or float(grid[0]) <= 0:
        raise ConfigError(f"eps_grid must be positive and increasing, got {grid.tolist()}")
    if bisect_steps < 0 or steps < 1:
        raise ConfigError("bisect_steps must be >= 0 and steps >= 1")
    ob = parse_objective(objective)
    dev = resolve_device(model, device)
    models = [m for m in (model, ob.model) if m is not None]
    cfg = EngineConfig(
        norm=norm, steps=steps, random_start=random_start, restarts=1,
        batch_size=batch_size or (DEFAULT_BATCH_CUDA if dev.type == "cuda" else DEFAULT_BATCH_CPU),
        seed=seed, input_diversity=0.0, keep_best=True, device=dev, autocast=autocast,
        channels_last=has_conv(models), show_progress=progress,
    )
    n = x_cpu.shape[0]
    images_dev = x_cpu.to(dev)
    with frozen_eval(models, channels_last=cfg.channels_last), torch.no_grad():
        main, (compiled,), clean, forward = prepare_any_format(model, [ob], images_dev, cfg, models, True)
        thr = _threshold(criterion, compiled.unit, ob.name)

        def run(image_index: torch.Tensor, eps: torch.Tensor, key_offset: int) -> torch.Tensor:
            keys = key_offset + torch.arange(len(image_index))
            out = run_items(main, [compiled], images_dev, clean, image_index, eps, rel_step * eps / steps,
                            torch.zeros(len(image_index), dtype=torch.long), keys, cfg, forward, desc="minimal eps")
            return out.value

        e = len(grid)
        image_index = torch.arange(n).repeat(e)
        values = run(image_index, grid.repeat_interleave(n), 0).view(e, n)
        reached = values >= thr
        any_hit = reached.any(dim=0)
        first = torch.where(any_hit, reached.float().argmax(dim=0), torch.zeros(n, dtype=torch.long))
        hi = torch.where(any_hit, grid[first], torch.full((n,), float("inf")))
        lo = torch.where(any_hit & (first > 0), grid[(first - 1).clamp_min(0)], torch.zeros(n))
        todo = torch.nonzero(any_hit).flatten()
        for r in range(bisect_steps):
            if len(todo) == 0:
                break
            mid = (lo[todo] + hi[todo]) / 2
            ok = run(todo, mid, (r + 1) * 10 * n * e) >= thr
            hi[todo] = torch.where(ok, mid, hi[todo])
            lo[todo] = torch.where(ok, lo[todo], mid)
    return hi
