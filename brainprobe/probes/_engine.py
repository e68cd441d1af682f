"""The packed PGD engine: runs a flat list of items (image, eps, objective) in batches.

An *item* is one perturbation to find: clean image ``image_index``, budget ``eps``, step size
``alpha`` and objective ``group``. Items of any mix of budgets and objectives share a batch, so
a whole sweep runs in few passes; each item is independent of its batch-mates (models are in
eval mode), and its random start is drawn from its own seed so packing does not change it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from brainprobe.probes import _project
from brainprobe.probes._diversity import diverse
from brainprobe.probes.objectives import Compiled


@dataclass
class EngineConfig:
    """Settings of one engine run (see :func:`brainprobe.probes.probe` for their meaning)."""

    norm: str
    steps: int
    random_start: bool
    restarts: int
    batch_size: int
    seed: int
    input_diversity: float  # probability per step, 0 = off
    keep_best: bool
    device: torch.device
    autocast: bool  # bf16 autocast on CUDA for items whose eps >= AUTOCAST_MIN_EPS[norm]
    channels_last: bool
    show_progress: bool = True
    schedule: str = "constant"  # step size over steps: "constant" or "cosine" (anneals to alpha / 100)
    autocast_any_device: bool = False  # also autocast on CPU (measurement and tests; slow without bf16 units)
    start_dirs: torch.Tensor | None = None  # M x C x H x W unit directions: first restart starts at their LMO (Jacobian start)


AUTOCAST_MIN_EPS = {"l2": math.inf, "linf": math.inf}
"""Smallest budget (pixel units in [0, 1]) run under bf16 autocast; smaller ones run float32.

Measured (benchmarks/bench_autocast.py, MobileNetV2 Encoder at 128 px, CPU bf16 autocast; table in
docs/probes.md): bf16 distorts the l2 response change by more than 1% at every budget up to l2 1
(3.4% at 1, 29% at 0.1), and the linf change by more than 1% at every budget up to 4/255 (2.8% at
4/255 and 2/255, 9.8% at 0.5/255), so both run float32 throughout (inf)."""


def autocast_min_eps(norm: str) -> float:
    """The budget below which items run float32 even when autocast is on (see AUTOCAST_MIN_EPS)."""
    return AUTOCAST_MIN_EPS[norm]


def autocast_rows(cfg: EngineConfig, eps: torch.Tensor) -> torch.Tensor:
    """Bool per item: whether its forwards run under bf16 autocast (on, allowed on this device, eps
    at or above the threshold)."""
    on = cfg.autocast and (cfg.device.type == "cuda" or cfg.autocast_any_device)
    if not on:
        return torch.zeros(len(eps), dtype=torch.bool)
    return eps.float() >= autocast_min_eps(cfg.norm)


@dataclass
class EngineOutput:
    """Per-item results (M items), on the CPU."""

    delta: torch.Tensor  # M x C x H x W
    outputs: torch.Tensor  # M x T, main model's response at the chosen iterate
    value: torch.Tensor  # M, objective at the chosen iterate
    trace: torch.Tensor  # restarts*(steps+1) x M, objective at every iterate
    best_step: torch.Tensor  # M, index into trace of the chosen iterate
    zero_grad: torch.Tensor  # M bool, input gradient exactly zero at the first step


@contextlib.contextmanager
def frozen_eval(models: list[nn.Module], channels_last: bool = False) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter (input-only gradients); restored on exit."""
    saved = [(m, m.training, [(p, p.requires_grad) for p in m.parameters()]) for m in models]
    converted: list[nn.Module] = []
    try:
        for m in models:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            if channels_last and not is_channels_last(m):
                m.to(memory_format=torch.channels_last)
                converted.append(m)
        yield
    finally:
        for m in converted:  # the caller's model leaves as it came (a copy of its 4-D weights, cheap)
            m.to(memory_format=torch.contiguous_format)
        for m, training, flags in saved:
            m.train(training)
            for p, flag in flags:
                p.requires_grad_(flag)


def has_conv(models: list[nn.Module]) -> bool:
    """Whether any of ``models`` has a 4-D (convolution) weight, where channels-last pays."""
    return any(p.ndim == 4 for m in models for p in m.parameters())


def is_channels_last(model: nn.Module) -> bool:
    """Whether every 4-D parameter of ``model`` is stored channels-last (False when it has none)."""
    w4 = [p for p in model.parameters() if p.ndim == 4]
    return bool(w4) and all(p.is_contiguous(memory_format=torch.channels_last) for p in w4)


class Forward:
    """Runs models on images on the engine's device, float32 out; under bf16 autocast when
    ``bf16`` (and the config allows it on this device). Clean responses are always float32."""

    def __init__(self, cfg: EngineConfig, bf16: bool | None = None) -> None:
        self.cfg = cfg
        allowed = cfg.autocast and (cfg.device.type == "cuda" or cfg.autocast_any_device)
        self.use_autocast = allowed if bf16 is None else (bool(bf16) and allowed)

    def at(self, bf16: bool) -> Forward:
        """The same forward in float32 (``bf16=False``) or, where allowed, under bf16 autocast."""
        return Forward(self.cfg, bf16)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.use_autocast:
            with torch.autocast(device_type=self.cfg.device.type, dtype=torch.bfloat16):
                y = model(x)
        else:
            y = model(x)
        if not isinstance(y, torch.Tensor) or y.ndim != 2:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"probed models must return N x T response tensors, {type(model).__name__} gave {shape}")
        return y.float()

    def clean(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Float32 responses to ``images`` (N x C x H x W), in batches, without gradients: N x T."""
        fp32 = self.at(False)
        with torch.no_grad():
            parts = [fp32(model, images[i : i + self.cfg.batch_size]) for i in range(0, len(images), self.cfg.batch_size)]
        return torch.cat(parts)


def item_seed(seed: int, restart: int, key: int) -> int:
    """Seed of one item's random start: a fixed mix of the run seed, the restart and the item key."""
    return (seed * 1_000_003 + restart * 7_919 + key * 104_729 + 12_345) % (2**63 - 1)


def run_items(
    main: nn.Module,
    compiled: list[Compiled],
    images: torch.Tensor,
    clean: dict[int, torch.Tensor],
    image_index: torch.Tensor,
    eps: torch.Tensor,
    alpha: torch.Tensor,
    group: torch.Tensor,
    keys: torch.Tensor,
    cfg: EngineConfig,
    forward: Forward,
    desc: str = "probe",
) -> EngineOutput:
    """Run PGD for M items.

    Parameters
    ----------
    main : nn.Module
        The probed model; its response at the chosen iterate is returned for every item.
    compiled : list of Compiled
        Objectives; item i uses ``compiled[group[i]]``.
    images : Tensor, N x C x H x W, float32 in [0, 1], on ``cfg.device``
    clean : dict id(model) -> N x T
        Clean responses of every model the objectives (and ``main``) use.
    image_index, eps, alpha, group, keys : Tensor, M
        Clean image, budget, step size, objective and random-start key of each item.
    """
    m_items = len(image_index)
    n_iter = cfg.restarts * (cfg.steps + 1)
    c, h, w = images.shape[1:]
    t_main = clean[id(main)].shape[1]
    out = EngineOutput(
        delta=torch.empty((m_items, c, h, w), dtype=torch.float32),
        outputs=torch.empty((m_items, t_main), dtype=torch.float32),
        value=torch.empty(m_items, dtype=torch.float32),
        trace=torch.empty((n_iter, m_items), dtype=torch.float32),
        best_step=torch.empty(m_items, dtype=torch.long),
        zero_grad=torch.zeros(m_items, dtype=torch.bool),
    )
    # items below the autocast threshold run float32, the others (if any) under bf16 autocast;
    # each precision in its own batches, in item order
    bf16 = autocast_rows(cfg, eps)
    parts = [(torch.nonzero(bf16 == flag).flatten(), forward.at(flag)) for flag in (False, True)]
    plan = [(idx[lo : lo + cfg.batch_size], fwd) for idx, fwd in parts for lo in range(0, len(idx), cfg.batch_size)]
    batches = _progress(range(len(plan)), len(plan), desc, cfg.show_progress)
    for b in batches:
        sl, fwd = plan[b]
        _run_batch(main, compiled, images, clean, image_index[sl], eps[sl], alpha[sl], group[sl], keys[sl], cfg, fwd, b, out, sl)
    return out


def _cosine(t: int, steps: int, floor: float = 0.01) -> float:
    """Cosine annealing factor of step t of ``steps``: 1 at the first step, ``floor`` at the last."""
    if steps <= 1:
        return 1.0
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t / (steps - 1)))


def _progress(it: range, total: int, desc: str, show: bool):  # type: ignore[no-untyped-def]
    if not show or total <= 1:
        return it
    try:  # tqdm is not a dependency of the torch-only GPU image; the bar is optional there
        from brainprobe._progress import progress
    except ImportError:
        return it
    return progress(it, total=total, desc=desc)


def _router(
    main: nn.Module,
    compiled: list[Compiled],
    clean: dict[int, torch.Tensor],
    group: torch.Tensor,
    image_index: torch.Tensor,
    forward: Forward,
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``evaluate(x) -> (objective B, main model's responses B x T)`` for a batch of mixed objectives.

    Each model runs once per call, on the rows whose objective needs it (the main model on all).
    """
    dev = image_index.device
    bsz = len(group)
    groups_here = sorted(set(group.tolist()))
    rows_g = {g: torch.nonzero(group == g).flatten().to(dev) for g in groups_here}
    model_of: dict[int, nn.Module] = {id(main): main}
    rows_of_model: dict[int, set[int]] = {id(main): set(range(bsz))}
    for g in groups_here:
        rows = set(rows_g[g].tolist())
        for m in compiled[g].models:
            model_of.setdefault(id(m), m)
            rows_of_model.setdefault(id(m), set()).update(rows)
    model_rows: dict[int, torch.Tensor | None] = {}
    model_pos: dict[int, torch.Tensor] = {}  # batch row -> row of that model's output
    for k, rows in rows_of_model.items():
        if len(rows) == bsz:
            model_rows[k], model_pos[k] = None, torch.arange(bsz, device=dev)
        else:
            r = torch.tensor(sorted(rows), device=dev)
            pos = torch.full((bsz,), -1, dtype=torch.long, device=dev)
            pos[r] = torch.arange(len(r), device=dev)
            model_rows[k], model_pos[k] = r, pos

    def evaluate(x_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = {}
        for k, m in model_of.items():
            r = model_rows[k]
            outs[k] = forward(m, x_in if r is None else x_in.index_select(0, r))
        if len(groups_here) == 1:
            return compiled[groups_here[0]].value(outs, clean, image_index), outs[id(main)]
        vals = torch.empty(bsz, device=dev, dtype=torch.float32)
        for g in groups_here:
            rg = rows_g[g]
            sub = {id(m): outs[id(m)].index_select(0, model_pos[id(m)][rg]) for m in compiled[g].models}
            vals = vals.index_copy(0, rg, compiled[g].value(sub, clean, image_index.index_select(0, rg)))
        return vals, outs[id(main)]

    return evaluate


NUDGE = 0.05
"""Radius of the nudge off the origin, as a fraction of eps."""


def _start(x: torch.Tensor, eps: torch.Tensor, keys: torch.Tensor, nudge: torch.Tensor, cfg: EngineConfig, restart: int,
           dirs: torch.Tensor | None = None) -> torch.Tensor:
    """Start points of one restart: x, a seeded random point of the ball (``random_start``), or, for
    objectives with a zero gradient at delta = 0 (``nudge``), a seeded point on the sphere of 5% of
    the radius (large enough that x + noise is not rounded back to x in float32). With ``dirs``
    (Jacobian start, first restart only) the items with a finite direction start at the point of
    the ball (and box) furthest along it."""
    base = _default_start(x, eps, keys, nudge, cfg, restart)
    if dirs is None or restart != 0:
        return base
    flat = dirs.flatten(1)
    ok = torch.isfinite(flat).all(1) & (flat.abs().sum(1) > 0)
    if not bool(ok.any()):
        return base
    from brainprobe.probes.convergence import _lmo  # the first-order optimum along each direction

    step = _lmo(torch.nan_to_num(dirs), x, eps.to(x.device), cfg.norm)
    return torch.where(ok.view(-1, *([1] * (x.ndim - 1))), torch.clamp(x + step, 0, 1), base)


def _default_start(x: torch.Tensor, eps: torch.Tensor, keys: torch.Tensor, nudge: torch.Tensor, cfg: EngineConfig,
                   restart: int) -> torch.Tensor:
    scale = torch.ones(len(x)) if cfg.random_start else torch.where(nudge, torch.full((len(x),), NUDGE), torch.zeros(len(x)))
    if not bool((scale > 0).any()):
        return x.clone()
    seeds = [item_seed(cfg.seed, restart, int(k)) for k in keys]
    noise = _project.random_start(tuple(x.shape[1:]), eps, cfg.norm, seeds, scale).to(x.device)
    return torch.clamp(x + noise, 0, 1)


def _run_batch(
    main: nn.Module,
    compiled: list[Compiled],
    images: torch.Tensor,
    clean: dict[int, torch.Tensor],
    image_index: torch.Tensor,
    eps: torch.Tensor,
    alpha: torch.Tensor,
    group: torch.Tensor,
    keys: torch.Tensor,
    cfg: EngineConfig,
    forward: Forward,
    batch_number: int,
    out: EngineOutput,
    sl: slice | torch.Tensor,
) -> None:
    dev = cfg.device
    bsz = len(image_index)
    idx_dev = image_index.to(dev)
    x = images.index_select(0, idx_dev)
    eps_d, alpha_d = eps.to(dev), alpha.to(dev)

    evaluate = _router(main, compiled, clean, group, idx_dev, forward)

    best_val = torch.full((bsz,), -math.inf, device=dev)
    best_adv = x.clone()
    best_out = torch.zeros((bsz, clean[id(main)].shape[1]), device=dev)
    best_step = torch.zeros(bsz, dtype=torch.long, device=dev)
    trace = torch.empty((cfg.restarts * (cfg.steps + 1), bsz), device=dev)
    nudge = torch.tensor([compiled[g].zero_grad_at_origin for g in group.tolist()])
    div_gen = torch.Generator().manual_seed(cfg.seed * 31 + batch_number) if cfg.input_diversity > 0 else None

    for r in range(cfg.restarts):
        adv = _start(x, eps, keys, nudge, cfg, r, None if cfg.start_dirs is None else cfg.start_dirs[sl].to(dev))
        if cfg.channels_last:
            adv = adv.contiguous(memory_format=torch.channels_last)
        for t in range(cfg.steps + 1):
            it = r * (cfg.steps + 1) + t
            last = t == cfg.steps
            if last:
                with torch.no_grad():
                    vals, y_main = evaluate(adv)
                grad = None
            else:
                adv.requires_grad_(True)
                with torch.enable_grad():
                    if div_gen is not None:
                        x_in = diverse(adv, div_gen, cfg.input_diversity)
                        vals_in, _ = evaluate(x_in)
                    else:
                        vals_in, y_main = evaluate(adv)
                        vals = vals_in
                    (grad,) = torch.autograd.grad(vals_in.sum(), adv)
                if div_gen is not None:
                    with torch.no_grad():  # keep-best judges the untransformed image
                        vals, y_main = evaluate(adv)
                if r == 0 and t == 0:
                    flat = grad.reshape(bsz, -1)
                    out.zero_grad[sl] = ((flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)).cpu()
            vals = vals.detach()
            trace[it] = vals
            take = (vals > best_val) | (it == 0) if cfg.keep_best else torch.full_like(vals, last, dtype=torch.bool)
            if not cfg.keep_best and r > 0:
                take = take & (vals > best_val)
            if bool(take.any()):
                best_val = torch.where(take, vals, best_val)
                best_adv = torch.where(take.view(-1, 1, 1, 1), adv.detach(), best_adv)
                best_out = torch.where(take.view(-1, 1), y_main.detach(), best_out)
                best_step = torch.where(take, torch.full_like(best_step, it), best_step)
            if grad is not None:
                a_t = alpha_d if cfg.schedule == "constant" else alpha_d * _cosine(t, cfg.steps)
                with torch.no_grad():
                    adv = _project.project(_project.step(adv.detach(), grad, a_t, cfg.norm), x, eps_d, cfg.norm)

    delta = _project.final_delta(best_adv, x, eps_d, cfg.norm)
    out.delta[sl] = delta.float().cpu().contiguous()
    out.outputs[sl] = best_out.cpu()
    out.value[sl] = best_val.cpu()
    out.trace[:, sl] = trace.cpu()
    out.best_step[sl] = best_step.cpu()
