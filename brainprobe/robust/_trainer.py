"""Robustify: a robust copy of any backbone by adversarial self-distillation, without labels.

The student starts as a copy of the backbone and the frozen teacher is the original. Each step
draws a batch of training crops ``x``, crafts a PGD perturbation ``delta`` (l2 or linf, budget
``eps``, ``pgd_steps`` steps) that maximises the distance between the student's features at the
distilled layers on ``x + delta`` and the teacher's features on ``x``, and trains the student to
minimise

    robust = d(S(x + delta), T(x))  +  clean_weight * d(S(x), T(x))  [+ kl_weight * KL(T(x) || S(x))]

where ``d`` is the relative squared error ``||S - T||^2 / ||T||^2`` per image, averaged over
the layers, and KL is taken between the clean logits (fidelity of the classifier's behaviour).

BatchNorm: the student is kept in eval mode throughout, so BatchNorm layers normalise with the
teacher's running statistics and only their affine parameters are trained. Training batches are
small and half adversarial; updating running statistics with them would shift the network's
normalisation of *clean* images away from the teacher's (hurting fidelity), and batch statistics
would make each image's features depend on the rest of its batch, so PGD would attack a function
different from the deployed one. Dropout / drop-connect are off for the same reason.

Outputs a safetensors weights file of ``backbone.net``'s state dict (fp16 for shipping) and a
JSON recipe beside it; :func:`brainprobe.zoo.load_backbone` loads it by name.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from brainprobe.errors import ConfigError, DataError
from brainprobe.robust._data import CropSampler, as_photo_list, load_image_folder
from brainprobe.robust._pgd import NORMS, pgd_maximize
from brainprobe.zoo.robust_registry import robust_name, robust_prefix

# Distilled layers per source model (module paths inside Backbone.net). Mid-level blocks: the
# calibration run found that distilling at the penultimate layer collapses clean behaviour.
DEFAULT_LAYERS: dict[str, list[str]] = {
    "mobilenet_v2": ["features.13"],
    "efficientnet_lite0": ["_blocks.10"],
    "efficientnet_lite1": ["_blocks.14"],
    "efficientnet_lite2": ["_blocks.14"],
}

RECIPE_VERSION = 1


@dataclass
class RobustifyResult:
    """What :func:`robustify` made: the model name, its weights and recipe files, the recipe."""

    name: str
    weights_path: Path
    recipe_path: Path
    recipe: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    def __str__(self) -> str:
        fl = self.recipe["final_losses"]
        return (
            f"{self.name}: {self.recipe['steps']} steps in {self.recipe['wall_time_s']:.0f} s, "
            f"robust loss {fl['robust']:.4f}, clean loss {fl['clean']:.4f} -> {self.weights_path}"
        )


# --------------------------------------------------------------------------------------------
# feature taps


class _Tap(nn.Module):
    """Backbone -> (features at ``layers``, logits or None).

    Without logits the truncated trunk runs (nothing after the last distilled layer); with
    ``logits=True`` the whole backbone runs and forward hooks on ``.net`` catch the features.
    """

    def __init__(self, backbone: nn.Module, layers: list[str], channels_last: bool = False) -> None:
        super().__init__()
        from brainprobe.zoo import truncate

        self.backbone = backbone
        self.layers = layers
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._out: dict[str, torch.Tensor] = {}
        self._handles = []
        self._hooked = False
        for name in layers:
            module = backbone.net.get_submodule(name)
            self._handles.append(module.register_forward_hook(self._hook(name)))
        self._trunk = truncate(backbone, list(layers))

    def _hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if self._hooked:
                self._out[name] = output

        return hook

    def forward(self, x: torch.Tensor, logits: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        x = x.contiguous(memory_format=self.memory_format)
        if not logits:
            out = self._trunk(x)
            return (out if isinstance(out, dict) else {self.layers[0]: out}), None
        self._out, self._hooked = {}, True
        try:
            y = self.backbone(x)
            feats = {k: self._out[k] for k in self.layers}
        finally:
            self._out, self._hooked = {}, False
        return feats, y

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def feature_distance(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Relative squared error ``||S - T||^2 / ||T||^2`` per image (N,), averaged over layers."""
    total = 0.0
    for name, t in teacher.items():
        s = student[name]
        num = (s - t).pow(2).flatten(1).sum(1)
        den = t.pow(2).flatten(1).sum(1).clamp_min(1e-8)
        total = total + num / den
    return total / len(teacher)


# --------------------------------------------------------------------------------------------
# argument checks


def _check_args(
    norm: str, eps: float, pgd_steps: int, steps: int | None, time_budget_s: float | None, lr: float, optimizer: str,
    batch_size: int, resolution: int, clean_weight: float, kl_weight: float,
) -> None:
    if norm not in NORMS:
        raise ConfigError(f"robustify: norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ConfigError(f"robustify: eps must be a positive number, got {eps!r}")
    if norm == "linf" and eps >= 1:
        raise ConfigError(f"robustify: linf eps is in [0,1] pixel units (e.g. 1/255 = 0.0039), got {eps}")
    if pgd_steps < 1:
        raise ConfigError(f"robustify: pgd_steps must be >= 1, got {pgd_steps}")
    if steps is None and time_budget_s is None:
        raise ConfigError("robustify: give a budget: steps (training steps) or time_budget_s (seconds)")
    if steps is not None and steps < 1:
        raise ConfigError(f"robustify: steps must be >= 1, got {steps}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ConfigError(f"robustify: time_budget_s must be > 0 seconds, got {time_budget_s}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"robustify: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if not lr > 0:
        raise ConfigError(f"robustify: lr must be > 0, got {lr}")
    if batch_size < 1:
        raise ConfigError(f"robustify: batch_size must be >= 1, got {batch_size}")
    if resolution < 16:
        raise ConfigError(f"robustify: resolution must be >= 16 px, got {resolution}")
    if clean_weight < 0 or kl_weight < 0:
        raise ConfigError("robustify: clean_weight and kl_weight must be >= 0")


PROCEDURAL_N = 96
PROCEDURAL_SIZE = 256


def _training_photos(images: Any, resolution: int, seed: int) -> tuple[list[np.ndarray], str]:
    """Photos to crop from, and a short description of them for the recipe."""
    if isinstance(images, (str, Path)) and str(images) == "library":
        from brainprobe.data.stimuli import library_photos, load_photo

        table = library_photos(split="train")
        photos = [load_photo(pid) for pid in table["photo"]]
        return as_photo_list(photos), f"library:train ({len(photos)} photos)"
    if isinstance(images, (str, Path)) and str(images) == "procedural":
        from brainprobe.robust._procedural import procedural_photos

        photos = procedural_photos(n=PROCEDURAL_N, size=PROCEDURAL_SIZE, seed=seed)
        return photos, f"procedural:dead_leaves ({len(photos)} images of {PROCEDURAL_SIZE} px, seed {seed})"
    if isinstance(images, (str, Path)):
        photos = load_image_folder(images)
        return as_photo_list(photos), f"folder:{Path(images).name} ({len(photos)} photos)"
    if isinstance(images, (np.ndarray, list, tuple)):
        photos = as_photo_list(images)
        return photos, f"array ({len(photos)} photos)"
    raise DataError(
        f"robustify: images must be 'library', 'procedural', an image folder or uint8 arrays, got {type(images).__name__}"
    )


OPTIMIZERS = {"adam": "Adam", "sgd": "SGD (momentum 0.9, Nesterov)"}
DEFAULT_LR = {"adam": 1e-4, "sgd": 3e-3}
"""Learning rate per optimizer when none is given (measured on MobileNetV2; the EfficientNet-Lites
learn faster at SGD 1e-2, see scripts/robustify_default.sh)."""


def _make_optimizer(kind: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 (updates proportional to the gradient: parameters the
    losses hardly move stay put, where Adam moves every parameter by about ``lr`` each step)."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)


def _resolve_layers(backbone: nn.Module, source: str, layers: str | Sequence[str] | None) -> list[str]:
    from brainprobe.errors import ModelError

    if layers is None:
        layers = DEFAULT_LAYERS.get(source) or list(getattr(backbone.spec, "default_layers", []))[:1]
        if not layers:
            raise ConfigError(f"robustify: no default layer for {source}; pass layers=[...] (see `brainprobe zoo layers {source}`)")
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    known = {name for name, _ in backbone.net.named_modules() if name}
    for name in layers:
        if name not in known:
            raise ModelError(
                f"robustify: {source} has no layer {name!r}; list them with `brainprobe zoo layers {source}`"
            )
    return layers


# --------------------------------------------------------------------------------------------
# checkpoints


def _config_key(cfg: dict[str, Any]) -> dict[str, Any]:
    """The parts of the config that must agree for a checkpoint to be resumed (budgets may change)."""
    return {k: v for k, v in cfg.items() if k not in ("steps", "time_budget_s")}


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is a user-level problem here
        raise DataError(f"{path}: unreadable robustify checkpoint ({type(exc).__name__}); delete it to start over") from None
    if _config_key(state.get("config", {})) != _config_key(cfg):
        diff = sorted(k for k in _config_key(cfg) if state.get("config", {}).get(k) != cfg[k])
        raise ConfigError(
            f"{path}: checkpoint was made with different settings ({', '.join(diff)}); "
            "use the same settings, another checkpoint path, or delete it"
        )
    return state


# --------------------------------------------------------------------------------------------
# output


def _versions() -> dict[str, str]:
    import torchvision

    from brainprobe._version import __version__

    return {"brainprobe": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def save_robustified(
    net: nn.Module, recipe: dict[str, Any], out_dir: str | Path, *, fp16: bool = True
) -> tuple[Path, Path, dict[str, Any]]:
    """Write ``<name>.safetensors`` (``net``'s state dict, floats in fp16 if asked) and ``<name>.json``.

    The recipe gains ``sha256`` (of the weights file), ``dtype`` and ``weights_file``.
    Returns (weights path, recipe path, recipe).
    """
    from safetensors.torch import save_file

    from brainprobe._hashing import sha256_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = recipe["name"]
    state = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu().contiguous()
        if fp16 and value.is_floating_point():
            value = value.half()
        state[key] = value.clone()
    weights = out_dir / f"{name}.safetensors"
    # one metadata key only: safetensors writes a metadata map in hash order, which would make the
    # file's bytes (and its sha256) differ between identical runs
    save_file(state, str(weights), metadata={"brainprobe_model": name})
    os.chmod(weights, 0o644)  # safetensors creates the file owner-only; it is meant to be shared
    recipe = dict(recipe, weights_file=weights.name, dtype="float16" if fp16 else "float32",
                  sha256=sha256_file(weights))
    recipe_path = out_dir / f"{name}.json"
    recipe_path.write_text(json.dumps(recipe, indent=2, sort_keys=False) + "\n")
    return weights, recipe_path, recipe


def default_output_dir() -> Path:
    """``$BRAINPROBE_HOME/robust``: where user-made robust models go (the zoo finds them there by name)."""
    from brainprobe._paths import brainprobe_home

    return brainprobe_home() / "robust"


# --------------------------------------------------------------------------------------------
# the trainer


def robustify(
    source: str,
    *,
    layers: str | Sequence[str] | None = None,
    norm: str = "l2",
    eps: float = 1.0,
    pgd_steps: int = 2,
    step_size: float | None = None,
    steps: int | None = None,
    time_budget_s: float | None = None,
    lr: float | None = None,
    optimizer: str = "sgd",
    batch_size: int = 32,
    resolution: int | None = None,
    images: str | Path | np.ndarray | Sequence[np.ndarray] = "library",
    clean_weight: float = 1.0,
    kl_weight: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    out_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
    fp16: bool = True,
    device: str | torch.device | None = None,
    channels_last: bool = True,
    progress: bool = True,
) -> RobustifyResult:
    """Make a robust copy of ``source`` by adversarial self-distillation (no labels needed).

    Parameters
    ----------
    source
        Zoo name of the backbone to robustify (its weights must be available).
    layers
        Distilled layer(s), module paths inside ``Backbone.net``; default per model
        (:data:`DEFAULT_LAYERS`), mid-level blocks.
    norm, eps
        Threat model of the inner PGD: ``"l2"`` (eps in pixel units, images in [0, 1]) or
        ``"linf"`` (eps per pixel, e.g. ``1/255``).
    pgd_steps, step_size
        Inner PGD steps and step length (default ``2.5 * eps / pgd_steps``), random start.
    steps, time_budget_s
        Budget: training steps and/or wall-clock seconds (training stops at whichever comes
        first). Only a step budget is reproducible exactly.
    lr
        Learning rate (constant, so a resumed run follows the same trajectory); default
        :data:`DEFAULT_LR` of the optimizer (SGD 3e-3, Adam 1e-4).
    optimizer
        ``"sgd"`` (Nesterov momentum 0.9, default) or ``"adam"``. Adam moves every parameter by
        about ``lr`` per step whatever its gradient, which drifts the student away from the
        teacher; SGD's steps scale with the gradient (docs/robustify.md, *Choosing the optimizer*).
    batch_size
        Crops per step.
    resolution
        Side of the square training crops, px (default: the model's resolution).
    images
        ``"library"`` (the stimulus library's *training* photos, never its evaluation photos),
        a folder of images, or uint8 photos (N x H x W x 3 array or list of H x W x 3).
    clean_weight, kl_weight
        Weights of the clean-feature term and of KL(teacher || student) on clean logits.
    seed
        Seeds the crop sampler and the PGD random starts (two own generators).
    name
        Model name; default ``<source>_robust_<norm>_eps<e>`` (:func:`brainprobe.zoo.robust_registry.robust_name`).
    out_dir
        Where the weights and recipe go; default ``$BRAINPROBE_HOME/robustified``.
    checkpoint, checkpoint_every_s
        Resumable checkpoint file (student, optimizer, RNG states, step, elapsed time), written
        every ``checkpoint_every_s`` seconds, at the end and on Ctrl-C. If it exists and was made
        with the same settings, training resumes from it; stop + resume equals an uninterrupted
        run with the same step budget.
    fp16
        Store the weights in float16 (half the size; used for the shipped models).
    device
        Torch device (default CPU).
    channels_last
        Run teacher and student in channels-last (NHWC) memory format: about 1.4x faster steps on
        CPU (docs/robustify.md); the weights file is written in the usual layout either way.
    progress
        Show a progress bar with live robust and clean losses.

    Returns
    -------
    RobustifyResult
        ``name``, ``weights_path``, ``recipe_path``, ``recipe`` (JSON-serialisable dict with the
        keys source_model, source_weights_sha256, layers, norm, eps, steps, lr, seed, resolution,
        images, wall_time_s, final_losses, sha256 and more), ``history`` (losses per step).
    """
    from brainprobe.zoo import load_backbone

    device = torch.device(device or "cpu")
    teacher = load_backbone(source, device=device)
    spec = teacher.spec
    resolution = int(resolution or spec.resolution)
    if lr is None:
        lr = DEFAULT_LR.get(optimizer, 1e-4)
    for key, value in (("eps", eps), ("lr", lr), ("clean_weight", clean_weight), ("kl_weight", kl_weight),
                       ("pgd_steps", pgd_steps), ("batch_size", batch_size)):
        if isinstance(value, (str, bool)) or not isinstance(value, (int, float, np.number)):
            raise ConfigError(f"robustify: {key} must be a number, got {type(value).__name__} {value!r}")
    _check_args(norm, float(eps), int(pgd_steps), steps, time_budget_s, float(lr), optimizer, int(batch_size),
                resolution, float(clean_weight), float(kl_weight))
    layer_list = _resolve_layers(teacher, source, layers)
    photos, images_desc = _training_photos(images, resolution, seed)
    name = name or robust_name(source, norm, float(eps))
    prefix = robust_prefix(source, norm)
    if not name.startswith(prefix):  # the zoo registers robustified models by this prefix only
        raise ConfigError(f"robustify: name {name!r} must start with '{prefix}' (e.g. '{robust_name(source, norm, float(eps))}_v2') so the zoo can load it")

    cfg = {
        "source_model": source, "source_weights_sha256": teacher.weights_sha256, "layers": layer_list,
        "norm": norm, "eps": float(eps), "pgd_steps": int(pgd_steps),
        "step_size": None if step_size is None else float(step_size), "lr": float(lr),
        "batch_size": int(batch_size), "resolution": resolution, "images": images_desc,
        "clean_weight": float(clean_weight), "kl_weight": float(kl_weight), "seed": int(seed),
        "steps": steps, "time_budget_s": time_budget_s, "channels_last": bool(channels_last),
        "optimizer": optimizer,
    }

    if channels_last:
        teacher.to(memory_format=torch.channels_last)
    student = copy.deepcopy(teacher).eval()
    need_logits = kl_weight > 0
    t_tap = _Tap(teacher, layer_list, channels_last)
    s_tap = _Tap(student, layer_list, channels_last)  # truncate() freezes the (shared) parameters
    params = list(student.net.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = _make_optimizer(optimizer, params, float(lr))
    sampler = CropSampler(photos, resolution, seed=seed)
    pgd_gen = torch.Generator().manual_seed(int(seed) + 1)

    step, elapsed, history = 0, 0.0, []
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, cfg)
        student.net.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler_rng"])
        pgd_gen.set_state(state["pgd_rng"])
        step, elapsed, history = state["step"], state["elapsed_s"], state["history"]

    def snapshot() -> dict[str, Any]:
        return {"config": cfg, "student": {k: v.detach().cpu().clone() for k, v in student.net.state_dict().items()},
                "optimizer": opt.state_dict(), "sampler_rng": sampler.get_state(),
                "pgd_rng": pgd_gen.get_state(), "step": step, "elapsed_s": elapsed, "history": history}

    def done() -> bool:
        return (steps is not None and step >= steps) or (time_budget_s is not None and elapsed >= time_budget_s)

    bar = _progress_bar(steps, time_budget_s, step, elapsed, progress, name)
    stop = _StopOnInterrupt()  # Ctrl-C ends the run at the next step boundary, so the state saved is consistent
    last_ckpt = time.monotonic()
    try:
        while not done() and not stop.requested:
            t0 = time.perf_counter()
            x = sampler.sample(batch_size).to(device)
            with torch.no_grad():
                t_feats, t_logits = t_tap(x, logits=need_logits)

            def adv_loss(xa: torch.Tensor) -> torch.Tensor:
                return feature_distance(s_tap(xa)[0], t_feats)

            # the inner attack needs gradients w.r.t. pixels only
            for p in params:
                p.requires_grad_(False)
            delta = pgd_maximize(adv_loss, x, norm=norm, eps=float(eps), steps=int(pgd_steps),
                                 step_size=step_size, rand_init=True, generator=pgd_gen)
            for p in params:
                p.requires_grad_(True)

            s_adv, _ = s_tap(x + delta)
            robust = feature_distance(s_adv, t_feats).mean()
            s_clean, s_logits = s_tap(x, logits=need_logits)  # only the clean pass needs the logits
            clean = feature_distance(s_clean, t_feats).mean()
            loss = robust + clean_weight * clean
            kl = torch.zeros(())
            if need_logits:
                kl = F.kl_div(F.log_softmax(s_logits, 1), F.log_softmax(t_logits, 1), log_target=True,
                              reduction="batchmean")
                loss = loss + kl_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

            step += 1
            dt = time.perf_counter() - t0
            elapsed += dt
            history.append({"step": step, "robust": robust.item(), "clean": clean.item(), "kl": kl.item(),
                            "elapsed_s": round(elapsed, 3)})
            _bar_update(bar, steps, dt, history[-1])
            if ckpt_path is not None and time.monotonic() - last_ckpt >= checkpoint_every_s:
                _save_checkpoint(ckpt_path, snapshot())
                last_ckpt = time.monotonic()
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        t_tap.close()
        s_tap.close()
    if ckpt_path is not None:
        _save_checkpoint(ckpt_path, snapshot())
    if stop.requested:
        if ckpt_path is None:
            raise KeyboardInterrupt
        from brainprobe.errors import BrainprobeError

        raise BrainprobeError(f"robustify interrupted after step {step}; rerun the same command to resume from {ckpt_path}")

    final = _final_losses(history)
    recipe = {
        "recipe_version": RECIPE_VERSION,
        "name": name,
        "training": "robustified",
        "method": "adversarial self-distillation (no labels), BatchNorm statistics frozen",
        "source_model": source,
        "source_weights_sha256": teacher.weights_sha256,
        "layers": layer_list,
        "norm": norm,
        "eps": float(eps),
        "pgd_steps": int(pgd_steps),
        "step_size": float(step_size) if step_size is not None else 2.5 * float(eps) / int(pgd_steps),
        "steps": step,
        "lr": float(lr),
        "optimizer": OPTIMIZERS[optimizer],
        "batch_size": int(batch_size),
        "seed": int(seed),
        "resolution": resolution,
        "images": images_desc,
        "crops": step * int(batch_size),
        "clean_weight": float(clean_weight),
        "kl_weight": float(kl_weight),
        "wall_time_s": round(elapsed, 1),
        "device": str(device),
        "channels_last": bool(channels_last),
        "threads": torch.get_num_threads(),
        "final_losses": final,
        "versions": _versions(),
    }
    out = Path(out_dir) if out_dir is not None else default_output_dir()
    weights, recipe_path, recipe = save_robustified(student.net, recipe, out, fp16=fp16)
    return RobustifyResult(name=name, weights_path=weights, recipe_path=recipe_path, recipe=recipe, history=history)


class _StopOnInterrupt:
    """While active, the first Ctrl-C (SIGINT) only sets ``requested``; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave SIGINT alone
            self._previous = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _final_losses(history: list[dict[str, float]], window: int = 20) -> dict[str, float]:
    """Mean losses over the last ``window`` steps (single steps are noisy)."""
    if not history:
        return {"robust": float("nan"), "clean": float("nan"), "kl": float("nan")}
    tail = history[-window:]
    return {k: round(float(np.mean([h[k] for h in tail])), 6) for k in ("robust", "clean", "kl")}


def _progress_bar(steps: int | None, budget: float | None, step: int, elapsed: float, show: bool, name: str):  # noqa: ANN202
    from tqdm.auto import tqdm

    disable = (not show) or os.environ.get("BRAINPROBE_PROGRESS", "1") == "0"
    if steps is not None:
        return tqdm(total=steps, initial=step, desc=f"robustify {name}", unit="step", disable=disable,
                    dynamic_ncols=True)
    return tqdm(total=round(float(budget)), initial=round(elapsed), desc=f"robustify {name} (seconds)", unit="s",
                disable=disable, dynamic_ncols=True)


def _bar_update(bar: Any, steps: int | None, dt: float, last: dict[str, float]) -> None:
    if steps is not None:
        bar.update(1)
    else:  # whole seconds keep tqdm's counter readable
        bar.update(int(last["elapsed_s"]) - bar.n)
    bar.set_postfix(step=int(last["step"]), robust=f"{last['robust']:.4f}", clean=f"{last['clean']:.4f}", refresh=False)
