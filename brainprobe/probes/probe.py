"""probe(): PGD probes of a response model over budgets, images and objectives, packed in batches."""

from __future__ import annotations

import platform
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from brainprobe.errors import ConfigError, DataError
from brainprobe.probes import checks as _checks
from brainprobe.probes import convergence as _convergence
from brainprobe.probes._engine import (
    AUTOCAST_MIN_EPS,  # noqa: F401  (re-exported: the autocast threshold next to probe())
    EngineConfig,
    Forward,
    autocast_min_eps,
    autocast_rows,
    frozen_eval,
    has_conv,
    run_items,
)
from brainprobe.probes.objectives import Compiled, Objective, parse_objective
from brainprobe.probes.result import ProbeResult

DEFAULT_BATCH_CPU = 8
"""Items per batch on CPU, chosen by benchmarks/bench_probes.py (see docs/probes.md)."""
DEFAULT_BATCH_CUDA = 256


def _norm(norm: str) -> str:
    key = str(norm).lower().replace("-", "").replace("_", "")
    if key in ("l2", "2"):
        return "l2"
    if key in ("linf", "inf", "li"):
        return "linf"
    raise ConfigError(f"norm must be 'l2' or 'linf', got {norm!r}")


def _eps_list(eps: float | str | Sequence[float | str] | torch.Tensor | np.ndarray, where: str = "eps") -> torch.Tensor:
    """Budgets as a float32 tensor (E,): a number, a fraction string such as ``"2/255"``, or a
    sequence / array of them; each finite and > 0, else a one-line ConfigError naming the value."""
    from brainprobe._budget import parse_budget

    if isinstance(eps, (torch.Tensor, np.ndarray)):
        items: list[Any] = np.asarray(eps.detach().cpu() if isinstance(eps, torch.Tensor) else eps).reshape(-1).tolist()
    elif isinstance(eps, (str, bytes)) or not isinstance(eps, (Sequence, set, frozenset)):
        items = [eps]
    else:
        items = list(eps)
    if not items:
        raise ConfigError(f"{where} is empty; give one budget or a list of budgets such as [0.25, 0.5] or ['2/255']")
    values = [parse_budget(v, where if len(items) == 1 else f"{where}[{i}]") for i, v in enumerate(items)]
    return torch.tensor(values, dtype=torch.float64).float()


def as_images(images: Any) -> torch.Tensor:
    """Validate probe images: float N x 3 x H x W in [0, 1] (or stored uint8 N x H x W x 3)."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 or (
        isinstance(images, torch.Tensor) and images.dtype == torch.uint8
    ):
        from brainprobe._images import to_float_tensor

        try:
            return to_float_tensor(images)
        except ValueError as err:
            raise DataError(f"probe images: {err}") from err
    x = torch.as_tensor(images)
    if not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        raise DataError(
            f"probe images must be float N x 3 x H x W in [0, 1] (or uint8 N x H x W x 3), got "
            f"{x.dtype} with shape {tuple(x.shape)}"
        )
    x = x.detach().float()
    if x.shape[0] == 0:
        raise DataError("probe images are empty; give at least one image")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise DataError(
            f"probe images contain {bad} NaN/Inf pixel values (first in image {int(torch.nonzero(~torch.isfinite(x))[0, 0])}); "
            "give finite pixels in [0, 1]"
        )
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise DataError(
            f"probe images must lie in [0, 1] (got range {float(x.min()):.3g}..{float(x.max()):.3g}); "
            "divide uint8 pixels by 255 and keep normalisation inside the model"
        )
    return x


def resolve_device(model: nn.Module | None, device: str | torch.device | None) -> torch.device:
    """``device`` if given; else the model's device when it is on CUDA; else CUDA if available; else CPU."""
    if device is not None:
        return torch.device(device)
    if model is not None:
        for p in model.parameters():
            if p.device.type != "cpu":
                return p.device
            break
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare(
    model: nn.Module | None,
    objectives: list[Objective],
    images: torch.Tensor,
    cfg: EngineConfig,
) -> tuple[nn.Module, list[Compiled], dict[int, torch.Tensor], Forward]:
    """Move models to the device, compute their clean responses and compile the objectives."""
    if model is None:
        owners = [o.model for o in objectives if o.model is not None]
        if not owners:
            raise ConfigError("probe needs a model (or an objective bound to one, such as Contrast)")
        model = owners[0]
    forward = Forward(cfg)
    cache: dict[int, torch.Tensor] = {}
    moved: set[int] = set()

    def clean_fn(m: nn.Module) -> torch.Tensor:
        if id(m) not in cache:
            if id(m) not in moved:
                m.to(cfg.device)
                moved.add(id(m))
            cache[id(m)] = forward.clean(m, images)
        return cache[id(m)]

    clean_fn(model)
    compiled = [o.compile(model, clean_fn) for o in objectives]
    return model, compiled, cache, forward


def prepare_any_format(
    model: nn.Module | None,
    objectives: list[Objective],
    images: torch.Tensor,
    cfg: EngineConfig,
    models: list[nn.Module],
    auto_format: bool,
) -> tuple[nn.Module, list[Compiled], dict[int, torch.Tensor], Forward]:
    """:func:`prepare`; when channels-last was chosen automatically and the clean pass fails in it,
    warn, set ``cfg.channels_last = False``, convert ``models`` back to NCHW and prepare again."""
    try:
        try:
            return prepare(model, objectives, images, cfg)
        except RuntimeError as err:
            if not (auto_format and cfg.channels_last) or isinstance(err, torch.cuda.OutOfMemoryError):
                raise
            warnings.warn(
                f"probe: the model failed in channels-last format ({str(err).splitlines()[0][:120]}); "
                "running NCHW (pass channels_last=False to skip the attempt)",
                stacklevel=3,
            )
            cfg.channels_last = False
            for m in models:
                m.to(memory_format=torch.contiguous_format)
            return prepare(model, objectives, images, cfg)
    except RuntimeError as err:  # the model cannot take these images (resolution, channels)
        if isinstance(err, torch.cuda.OutOfMemoryError) or cfg.channels_last:
            raise  # out of memory, or channels-last asked for explicitly: not a problem of the images
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise DataError(
            f"probe: the model failed on the clean images of shape {tuple(images.shape)} (N x 3 x H x W): {first}; "
            "give images at the resolution and layout the model takes"
        ) from err


def probe(
    model: nn.Module | None,
    images: Any,
    *,
    norm: str,
    eps: float | str | Sequence[float | str] | torch.Tensor,
    objective: Objective | str | Sequence[Objective | str],
    steps: int = 10,
    step_size: float | Sequence[float] | None = None,
    random_start: bool = False,
    restarts: int = 1,
    batch_size: int | None = None,
    seed: int = 0,
    checks: bool = True,
    input_diversity: bool | float = False,
    device: str | torch.device | None = None,
    keep_best: bool = True,
    autocast: bool | str = True,
    channels_last: bool | None = None,
    schedule: str = "constant",
    progress: bool = True,
    convergence: bool = True,
    jacobian_start: bool | str = "auto",
) -> ProbeResult | list[ProbeResult]:
    """Find small perturbations that move a model's predicted responses as an objective asks.

    Projected gradient ascent in pixel space inside the ``norm`` ball of radius ``eps`` and the
    [0, 1] box, for every budget x image x objective, packed into batches of ``batch_size`` items.

    Parameters
    ----------
    model : nn.Module or None
        Maps float images N x 3 x H x W in [0, 1] to responses N x T (an Encoder, a
        SimulatedBrain, any module); ``targets`` (DataFrame with ``target``, ``roi``) names the
        outputs. None: the model the objective is bound to (e.g. Contrast's model_a).
    images : Tensor N x 3 x H x W float in [0, 1], or uint8 N x H x W x 3
    norm : {"l2", "linf"}
        l2 norm over all 3*H*W pixel values, or max abs pixel change.
    eps : float, str, or a sequence / array of E of them
        Budgets in [0, 1] pixel units (e.g. linf ``4/255`` or the string ``"4/255"``), each finite
        and > 0; anything else raises ConfigError.
    objective : Objective, str, or a sequence of them
        What to do (``Drive``, ``Shift``, ``Toward``, ``Contrast``, ``Ensemble`` or a shorthand
        such as ``"drive:V1"``). A sequence returns one result per objective, all packed together.
    steps : int
        Gradient steps per restart.
    step_size : float, sequence of E floats, or None
        Step size per budget (same units as eps); default 2.5 * eps / steps.
    random_start : bool
        Start from a seeded random point in the ball (else from the clean image).
    restarts : int
        Independent runs per item (needs ``random_start``); the best is kept.
    batch_size : int, optional
        Items (budget x image x objective) per batch; default 8 on CPU (measured on a quiet 2-core machine, see
        docs/probes.md) and 256 on CUDA.
    seed : int
        Seeds random starts (per item, so independent of packing) and input diversity.
    checks : bool
        Run the sanity checks (determinism, gradient, budget, box); failures warn.
    input_diversity : bool or float
        Random resize-and-pad of the input each step with this probability (True: 0.5), for transfer.
    device : str or torch.device, optional
        Default: the model's CUDA device, else CUDA if available, else CPU. Models are moved there.
    keep_best : bool
        Return the best iterate (by objective) rather than the last one.
    autocast : bool or "force"
        True: on CUDA, run model forwards under bf16 autocast for budgets at or above
        ``AUTOCAST_MIN_EPS[norm]`` (below it bf16 distorts the response change by more than 1%;
        those budgets run float32; docs/probes.md). Perturbations and clean responses stay
        float32. "force": the same on any device, CPU included (for measurement and tests).
        False: float32 throughout. ``settings["forward_dtype"]`` records what ran.
    channels_last : bool or None
        Run inputs and models in channels-last (NHWC) memory format; the models are converted for
        the call and restored after it. None (default): on when a probed model has convolutions,
        where it pays (MobileNetV2 on 2 CPU cores: 1.5 s vs 2.3 s per sweep, docs/probes.md); if
        such a model fails to run channels-last (e.g. it calls ``.view`` on conv features), a
        warning says so and the call runs NCHW. The format used is in ``settings``.
    schedule : {"constant", "cosine"}
        Step size over the steps: constant (as torchattacks), or cosine-annealed from
        ``step_size`` to 1% of it, which converges on max-min objectives such as Contrast.
    progress : bool
        Show a progress bar over batches.
    convergence : bool
        Record the convergence diagnostics (``ProbeResult.bound``, ``fraction()``, ``late_gain``):
        the first-order bound of every image's objective at the smallest budget (costs about
        ``LANCZOS_ITERS`` JVP + VJP pairs per image for Shift; one gradient for scalar objectives)
        and, with ``checks``, warn 'convergence' when the median fraction is below 0.95.
    jacobian_start : bool or "auto"
        Start the first restart of every vector objective (Shift) at the first-order optimum:
        ``eps`` times the top right singular vector of its Jacobian at the clean image (l2), or that
        vector's signs times ``eps`` inside the box (linf), from
        :func:`brainprobe.probes.convergence.top_directions` (``START_LANCZOS_ITERS`` JVP + VJP
        pairs per image, shared by all budgets). A Shift's gradient vanishes at the clean image, so
        PGD from a random nudge spends its steps on a slow power iteration (docs/probes.md,
        *Convergence*). "auto" (default): on for l2 unless ``random_start``. For linf the signs of
        ``v_1`` are a poor start (measured: fractions of the bound fell for the standard models), so
        "auto" leaves linf to the nudge start. Scalar objectives are unaffected.

    Returns
    -------
    ProbeResult, or a list of them (one per objective) when ``objective`` is a sequence.
    """
    norm = _norm(norm)
    x_cpu = as_images(images)
    eps_t = _eps_list(eps)
    many = isinstance(objective, (list, tuple))
    objectives = [parse_objective(o) for o in (objective if many else [objective])]  # type: ignore[union-attr]
    if not objectives:
        raise ConfigError("objective list is empty")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an int >= 1, got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ConfigError(f"restarts must be an int >= 1, got {restarts!r}")
    if restarts > 1 and not random_start:
        raise ConfigError("restarts > 1 repeats the same run without random_start=True; set random_start=True")
    if jacobian_start not in (True, False, "auto"):
        raise ConfigError(f"jacobian_start must be True, False or 'auto', got {jacobian_start!r}")
    use_jacobian = (not random_start and norm == "l2") if jacobian_start == "auto" else bool(jacobian_start)
    alpha = _step_sizes(step_size, eps_t, steps)
    p_div = 0.5 if input_diversity is True else float(input_diversity or 0.0)
    if not 0 <= p_div <= 1:
        raise ConfigError(f"input_diversity must be a bool or a probability in [0, 1], got {input_diversity!r}")

    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if autocast not in (True, False, "force"):
        raise ConfigError(f"autocast must be True, False or 'force', got {autocast!r}")
    dev = resolve_device(model, device)
    n_images = x_cpu.shape[0]
    e, o = len(eps_t), len(objectives)
    bs = batch_size or (DEFAULT_BATCH_CUDA if dev.type == "cuda" else DEFAULT_BATCH_CPU)
    if bs < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    images_dev = x_cpu.to(dev)
    all_models = _models_of([m for m in [model] + [getattr(ob, "model", None) for ob in objectives] if m is not None], objectives)
    auto_format = channels_last is None
    cfg = EngineConfig(
        norm=norm, steps=steps, random_start=bool(random_start), restarts=restarts, batch_size=bs,
        seed=int(seed), input_diversity=p_div, keep_best=bool(keep_best), device=dev, autocast=bool(autocast),
        autocast_any_device=autocast == "force",
        channels_last=has_conv(all_models) if auto_format else bool(channels_last), show_progress=progress,
        schedule=schedule,
    )
    with frozen_eval(all_models, channels_last=cfg.channels_last), torch.no_grad():
        main, compiled, clean, forward = prepare_any_format(model, objectives, images_dev, cfg, all_models, auto_format)
        with frozen_eval(_all_compiled_models(main, compiled), channels_last=cfg.channels_last):
            check_results: dict[str, bool] = {}
            if checks:
                for m in _all_compiled_models(main, compiled):
                    check_results["determinism"] = check_results.get("determinism", True) & _checks.check_determinism(
                        m, forward, images_dev[: min(n_images, 4)]
                    )
            # items ordered objective-major, then budget, then image
            grid_o, grid_e, grid_n = torch.meshgrid(torch.arange(o), torch.arange(e), torch.arange(n_images), indexing="ij")
            group, e_idx, image_index = grid_o.flatten(), grid_e.flatten(), grid_n.flatten()
            # random-start key: budget and image only, so a start does not depend on the packing or objective list
            keys = e_idx * n_images + image_index
            cfg.start_dirs = _start_directions(compiled, clean, images_dev, image_index, group, cfg) if use_jacobian else None
            out = run_items(
                main, compiled, images_dev, clean, image_index, eps_t[e_idx], alpha[e_idx], group, keys, cfg, forward,
                desc=f"probe {norm}",
            )
            bound = _bounds(compiled, clean, images_dev, image_index, e_idx, group, eps_t, out.delta, cfg) if convergence else None
    if checks:
        names = [objectives[int(g)].name for g in group[out.zero_grad]]
        check_results["gradient"] = _checks.check_gradients(out.zero_grad, names)
        check_results["budget"] = _checks.check_budget(out.delta, eps_t[e_idx], norm)
        check_results["box"] = _checks.check_box(x_cpu, out.delta, image_index)

    clean_main = clean[id(main)].cpu()
    t = clean_main.shape[1]
    results = []
    for gi, ob in enumerate(objectives):
        sel = group == gi
        settings = _settings(cfg, steps, alpha, eps_t, main, ob, n_images)
        settings["scale"] = compiled[gi].scale  # which SDs scaled the objective (None: unscaled)
        value = out.value[sel].view(e, n_images)
        e_min = int(torch.argmin(eps_t))
        settings["convergence"] = _convergence_settings(convergence, compiled[gi], norm, float(eps_t[e_min]))
        bound_gi = bound[sel].view(e, n_images)[e_min] if bound is not None else None
        results.append(
            ProbeResult(
                delta=out.delta[sel].view(e, n_images, *x_cpu.shape[1:]),
                change=(out.outputs[sel].view(e, n_images, t) - clean_main.unsqueeze(0)),
                objective_value=value,
                eps=eps_t.clone(),
                norm=norm,
                objective=ob.name,
                clean=clean_main,
                trace=out.trace[:, sel].view(-1, e, n_images),
                best_step=out.best_step[sel].view(e, n_images),
                checks=dict(check_results),
                settings=settings,
                bound=bound_gi,
                late_gain=_convergence.late_gain(out.trace[:, sel].view(-1, e, n_images), steps, restarts).float(),
            )
        )
    if checks and convergence:
        check_results["convergence"] = _checks.check_convergence(results)
        for r in results:
            r.checks["convergence"] = check_results["convergence"]
    return results if many else results[0]


def _start_directions(
    compiled: list[Compiled], clean: dict[int, torch.Tensor], images: torch.Tensor, image_index: torch.Tensor,
    group: torch.Tensor, cfg: EngineConfig,
) -> torch.Tensor | None:
    """Jacobian-start directions of every item (M x C x H x W; NaN rows for scalar objectives), or None."""
    dirs = None
    for gi, comp in enumerate(compiled):
        if comp.vector is None:
            continue
        rows = torch.nonzero(group == gi).flatten()
        d = _convergence.top_directions(comp, clean, images, image_index[rows], seed=cfg.seed, batch_size=cfg.batch_size)
        if d is None:
            continue
        if dirs is None:
            dirs = torch.full((len(group),) + tuple(images.shape[1:]), float("nan"), device=images.device)
        dirs[rows.to(images.device)] = d
    return dirs


def _bounds(
    compiled: list[Compiled], clean: dict[int, torch.Tensor], images: torch.Tensor, image_index: torch.Tensor,
    e_idx: torch.Tensor, group: torch.Tensor, eps: torch.Tensor, delta: torch.Tensor, cfg: EngineConfig,
) -> torch.Tensor:
    """First-order bound (float64, M) of every item at the smallest budget (NaN elsewhere)."""
    bound = torch.full((len(group),), float("nan"), dtype=torch.float64)
    e_min = int(torch.argmin(eps))
    for gi, comp in enumerate(compiled):
        rows = torch.nonzero((group == gi) & (e_idx == e_min)).flatten()
        bound[rows] = _convergence.first_order_bound(
            comp, clean, images, image_index[rows], eps[e_idx[rows]], cfg.norm, delta[rows], seed=cfg.seed,
            batch_size=cfg.batch_size,
        )
    return bound


def _convergence_settings(on: bool, comp: Compiled, norm: str, eps: float) -> dict[str, Any] | None:
    if not on:
        return None
    if comp.vector is not None:
        method = ("eps * sigma_max(J) (Lanczos on J^T J)" if norm == "l2" else
                  "max ||J d|| over the linf ball and box by the generalised power method (a lower estimate)")
    elif comp.zero_grad_at_origin:
        method = "none (zero gradient at the clean image and no vector form)"
    else:
        method = "eps * ||grad||_2" if norm == "l2" else "sum |grad| min(eps, box room) (= eps * ||grad||_1 off the box)"
    return {"eps": eps, "bound": method, "lanczos_iters": _convergence.LANCZOS_ITERS,
            "threshold": _convergence.CONVERGED, "late_gain": "last ceil(20%) of the last restart's steps"}


def _models_of(models: list[nn.Module], objectives: list[Objective]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for m in models:
        seen.setdefault(id(m), m)
    for ob in objectives:
        for m in _objective_models(ob):
            seen.setdefault(id(m), m)
    return list(seen.values())


def _objective_models(ob: Objective) -> list[nn.Module]:
    found = [v for v in vars(ob).values() if isinstance(v, nn.Module)]
    for member in getattr(ob, "members", []) or []:
        found += _objective_models(member)
    return found


def _all_compiled_models(main: nn.Module, compiled: list[Compiled]) -> list[nn.Module]:
    return _models_of([main] + [m for c in compiled for m in c.models], [])


def _step_sizes(step_size: float | Sequence[float] | None, eps: torch.Tensor, steps: int) -> torch.Tensor:
    if step_size is None:
        return (2.5 * eps.double() / steps).float()
    s = torch.as_tensor(step_size, dtype=torch.float64).flatten()
    if s.numel() == 1:
        s = s.expand(len(eps))
    if s.numel() != len(eps) or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ConfigError(f"step_size must be one positive float or one per eps ({len(eps)}), got {step_size!r}")
    return s.float()


def _dtype_settings(cfg: EngineConfig, eps: torch.Tensor) -> dict[str, Any]:
    """What precision the forwards ran in: float32, bfloat16 or mixed (float32 below the threshold)."""
    bf16 = autocast_rows(cfg, eps)
    dtype = "bfloat16" if bool(bf16.all()) else "mixed" if bool(bf16.any()) else "float32"
    return {
        "forward_dtype": dtype,
        "autocast_min_eps": autocast_min_eps(cfg.norm) if cfg.autocast else None,
        "bfloat16_eps": [float(v) for v in eps[bf16]],
    }


def _settings(
    cfg: EngineConfig, steps: int, alpha: torch.Tensor, eps: torch.Tensor, model: nn.Module, ob: Objective, n: int
) -> dict[str, Any]:
    from brainprobe._version import __version__

    return {
        "objective": ob.name,
        "norm": cfg.norm,
        "eps": [float(v) for v in eps],
        "steps": steps,
        "step_size": [float(v) for v in alpha],
        "schedule": cfg.schedule,
        "random_start": cfg.random_start,
        "jacobian_start": cfg.start_dirs is not None,
        "restarts": cfg.restarts,
        "keep_best": cfg.keep_best,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "input_diversity": cfg.input_diversity,
        "device": str(cfg.device),
        **_dtype_settings(cfg, eps),
        "channels_last": cfg.channels_last,
        "n_images": n,
        "model": type(model).__name__,
        "model_weights_sha256": getattr(model, "weights_sha256", None),
        "projection": "step, scale onto the ball, clip x+delta to [0,1]",
        "brainprobe_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
