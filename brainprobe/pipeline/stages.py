"""The pipeline's stage tasks: data -> fit -> probes -> transfer (analyses live in ``analyses.py``).

Every task is a module-level function of plain arguments (so Ray can ship it) that reads its
inputs from the cache by key and writes one cache entry atomically. Bump a stage's entry in
``STAGE_VERSIONS`` whenever its code changes what it writes: the version is part of every key.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from brainprobe.pipeline.cache import Cache

STAGE_VERSIONS: dict[str, int] = {"data": 2, "fit": 2, "probes": 4, "transfer": 1, "analyses": 7}

DATASET_FILE = "dataset.nc"
ENCODER_FILE = "encoder.pt"


def shard_seed(*parts: Any) -> int:
    """A 31-bit seed derived from the run seed and a shard's identity (stable across runs)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF


def set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ----------------------------------------------------------------------------------------- data


def make_brain(brain: dict[str, Any], device: str = "cpu"):  # type: ignore[no-untyped-def]
    """The SimulatedBrain a brain config describes (deterministic for its seed)."""
    return _remember(("brain:" + json.dumps(brain, sort_keys=True), device),
                     lambda: _new_brain(brain).to(device).eval())


def _new_brain(brain: dict[str, Any]):  # type: ignore[no-untyped-def]
    from brainprobe.data import SimulatedBrain

    kwargs: dict[str, Any] = {"seed": brain["seed"]}
    if brain.get("targets_per_roi") is not None:
        kwargs["targets_per_roi"] = brain["targets_per_roi"]
    return SimulatedBrain(brain["backbone"], **kwargs)


def data_task(cache_root: str, key: str, spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Build (simulate or load) one dataset and store it as ``dataset.nc``."""
    set_threads(threads)
    t0 = time.perf_counter()
    dataset = build_dataset(spec)
    with Cache(cache_root).writer("data", key) as tmp:
        dataset.save(tmp / DATASET_FILE)
    return {"stage": "data", "key": key, "seconds": time.perf_counter() - t0}


def build_dataset(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A Dataset from one dataset spec (see ``RunPlan.dataset_specs``)."""
    import brainprobe.data as bd

    kind = spec["kind"]
    if kind == "simulated":
        stimuli, _prov = bd.sample_stimuli(spec["n_images"], spec["resolution"], split="eval", seed=spec["stimuli_seed"])
        brain = make_brain(spec["brain"])
        kwargs: dict[str, Any] = {"repeats": spec["repeats"], "seed": spec["seed"], "test_fraction": spec["test_fraction"]}
        if spec["brain"].get("noise_ceiling") is not None:
            kwargs["noise_ceiling"] = spec["brain"]["noise_ceiling"]
        info = {"library_split": "eval", "n": spec["n_images"], "resolution": spec["resolution"],
                "seed": spec["stimuli_seed"], "photos": sorted(set(map(str, _prov.get("photo", [])))) if hasattr(_prov, "get") else []}
        groups = _prov["photo"].astype(str).to_numpy()  # crops of one photo: one split side, one bootstrap unit
        return bd.simulate_dataset(
            brain, stimuli, **_accepted(bd.simulate_dataset, {**kwargs, "stimulus_info": info, "groups": groups})
        )
    if kind == "nsd":
        return bd.load_nsd(spec["root"], spec["subject"], **spec["options"])
    if kind == "algonauts":
        return bd.load_algonauts(spec["root"], spec["subject"], **spec["options"])
    return bd.load_generic(spec["images"], spec["responses"], rois=spec["rois"], **spec["options"])


def load_dataset(cache_root: str, key: str):  # type: ignore[no-untyped-def]
    from brainprobe.data import Dataset

    return Dataset.load(Cache(cache_root).path("data", key) / DATASET_FILE)


# ------------------------------------------------------------------------------------------ fit


def fit_task(
    cache_root: str,
    key: str,
    data_key: str,
    model: dict[str, Any],
    encoding: dict[str, Any],
    device: str,
    threads: int,
    seed: int,
) -> dict[str, Any]:
    """Fit one encoder (backbone layer -> ridge) on one dataset and store it."""
    import torch

    from brainprobe.encoding import fit_encoder

    set_threads(threads)
    t0 = time.perf_counter()
    dataset = load_dataset(cache_root, data_key)
    backbone: Any = model["name"]
    if model.get("weights"):
        from brainprobe.zoo import load_backbone

        backbone = load_backbone(model["name"], weights=model["weights"])
    kwargs: dict[str, Any] = dict(layer=model["layer"], pooling=model["pooling"], pca=encoding["pca"], cv=encoding["cv"])
    if encoding.get("readout", "ridge") != "ridge":
        kwargs["readout"] = encoding["readout"]
    if encoding.get("alphas") is not None:
        kwargs["alphas"] = encoding["alphas"]
    encoder = fit_encoder(backbone, dataset, device=resolve_device(device), **_accepted(fit_encoder, {
        **kwargs, "batch_size": encoding["batch_size"], "seed": seed}))
    encoder = encoder.cpu().eval()
    with Cache(cache_root).writer("fit", key) as tmp:
        torch.save(encoder, tmp / ENCODER_FILE)
    return {"stage": "fit", "key": key, "seconds": time.perf_counter() - t0}


def _accepted(fn: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep the keyword arguments ``fn`` accepts (optional ones a part may not offer)."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


_LOADED: dict[tuple[str, str], Any] = {}
"""Encoders and brains already loaded by this process (a worker runs many shards of one model)."""


def _remember(key: tuple[str, str], make: Any) -> Any:
    if key not in _LOADED:
        if len(_LOADED) >= 12:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = make()
    return _LOADED[key]


def load_encoder(cache_root: str, key: str, device: str = "cpu"):  # type: ignore[no-untyped-def]
    """The fitted encoder stored under fit entry ``key`` (eval mode, frozen)."""
    import torch

    path = Cache(cache_root).path("fit", key) / ENCODER_FILE
    return _remember(("fit:" + key, device),
                     lambda: torch.load(path, map_location=device, weights_only=False).eval())


# --------------------------------------------------------------------------------------- probes


def probe_images(dataset, n_images: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Indices of the probed images: the first ``n_images`` of the test split."""
    idx = np.asarray(dataset.test_index)
    return idx[: min(n_images, len(idx))]


def make_objective(name: str, dataset) -> Any:  # type: ignore[no-untyped-def]
    """The probe objective; ``shift`` scales each target by the probed encoder's ``response_sd``.

    That is the SD of the encoder's predictions on the training images (fixed per model, so a
    shard's result does not depend on which images share its chunk), the same scale the
    analyses read out with.
    """
    from brainprobe import probes

    if name == "shift":
        return probes.Shift(targets=None, normalize=True)
    return name


def probe_task(
    cache_root: str,
    key: str,
    data_key: str,
    fit_key: str,
    norm: str,
    eps: list[float],
    images: list[int],
    settings: dict[str, Any],
    device: str,
    threads: int,
    seed: int,
) -> dict[str, Any]:
    """Probe one encoder on one chunk of images under one norm at every budget; store the shard.

    Files: ``change.npy`` float32 E x n x T (encoder response change), ``objective.npy`` float32
    E x n, ``clean.npy`` float32 n x T (clean predictions), ``delta.npy`` float16 E x n x 3 x H x W,
    ``bound.npy`` float64 n (first-order bound of the objective at the smallest budget, NaN where
    undefined) and ``late_gain.npy`` float32 E x n (relative gain of the last 20% of steps); see
    :mod:`brainprobe.probes.convergence`.
    """
    import torch

    from brainprobe._images import to_float_tensor
    from brainprobe.probes import probe

    set_threads(threads)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    dataset = load_dataset(cache_root, data_key)
    encoder = load_encoder(cache_root, fit_key, dev)
    x = to_float_tensor(np.asarray(dataset.stimuli)[np.asarray(images)], device=dev)
    result = probe(
        encoder,
        x,
        norm=norm,
        eps=eps,
        objective=make_objective(settings["objective"], dataset),
        steps=settings["steps"],
        step_size=settings["step_size"],
        random_start=settings["random_start"],
        jacobian_start=settings.get("jacobian_start", "auto"),
        batch_size=settings["batch_size"],
        seed=seed,
        checks=True,
        **_accepted(probe, {"device": dev, "progress": False}),
    )
    with torch.no_grad():
        clean = encoder(x).float().cpu().numpy()
    with Cache(cache_root).writer("probes", key) as tmp:
        np.save(tmp / "change.npy", _np(result.change).astype(np.float32))
        np.save(tmp / "objective.npy", _np(result.objective_value).astype(np.float32))
        np.save(tmp / "clean.npy", clean.astype(np.float32))
        np.save(tmp / "delta.npy", _np(result.delta).astype(np.float16))
        n_img = len(images)
        bound = getattr(result, "bound", None)
        gain = getattr(result, "late_gain", None)
        np.save(tmp / "bound.npy", _np(bound).astype(np.float64) if bound is not None else np.full(n_img, np.nan))
        np.save(tmp / "late_gain.npy", _np(gain).astype(np.float32) if gain is not None
                else np.full((len(eps), n_img), np.nan, dtype=np.float32))
        checks = {k: bool(v) for k, v in dict(getattr(result, "checks", {}) or {}).items()}
        (tmp / "checks.json").write_text(json.dumps(checks, sort_keys=True))
    return {"stage": "probes", "key": key, "seconds": time.perf_counter() - t0}


def _np(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().float().cpu().numpy()
    return np.asarray(t)


def load_shard(cache_root: str, stage: str, key: str, name: str, mmap: bool = False) -> np.ndarray:
    return np.load(Cache(cache_root).path(stage, key) / f"{name}.npy", mmap_mode="r" if mmap else None)


# ------------------------------------------------------------------------------------- transfer


def transfer_task(
    cache_root: str,
    key: str,
    data_key: str,
    probe_key: str,
    images: list[int],
    targets: dict[str, str],
    brain: dict[str, Any] | None,
    device: str,
    threads: int,
    batch_size: int,
) -> dict[str, Any]:
    """Apply one probe shard's perturbations to every other model (and the simulated brain).

    ``targets`` maps model name -> fit key. Files: ``<name>.npy`` float32 E x n x T, the
    response change of that model to the source's probes (``brain.npy`` for the brain).
    """
    import torch

    from brainprobe._images import to_float_tensor

    set_threads(threads)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    dataset = load_dataset(cache_root, data_key)
    x = to_float_tensor(np.asarray(dataset.stimuli)[np.asarray(images)], device=dev)
    delta = torch.tensor(load_shard(cache_root, "probes", probe_key, "delta"), dtype=torch.float32, device=dev)
    models: dict[str, Any] = {name: load_encoder(cache_root, fk, dev) for name, fk in sorted(targets.items())}
    if brain is not None:
        models["brain"] = make_brain(brain, dev)
    out: dict[str, np.ndarray] = {}
    for name, model in models.items():
        out[name] = response_change(model, x, delta, batch_size)
    with Cache(cache_root).writer("transfer", key) as tmp:
        for name, arr in out.items():
            np.save(tmp / f"{name}.npy", arr)
    return {"stage": "transfer", "key": key, "seconds": time.perf_counter() - t0}


def response_change(model: Any, x: Any, delta: Any, batch_size: int) -> np.ndarray:
    """model(clip(x + delta)) - model(x): float32 E x N x T for x N x 3 x H x W, delta E x N x 3 x H x W."""
    import torch

    E, N = delta.shape[:2]
    with torch.no_grad():
        clean = torch.cat([model(x[i : i + batch_size]) for i in range(0, N, batch_size)]).float()
        flat = (x.unsqueeze(0) + delta).clamp(0, 1).reshape(E * N, *x.shape[1:])
        pert = torch.cat([model(flat[i : i + batch_size]) for i in range(0, E * N, batch_size)]).float()
    return (pert.reshape(E, N, -1) - clean.unsqueeze(0)).cpu().numpy().astype(np.float32)


def entry_path(cache_root: str | Path, stage: str, key: str) -> Path:
    return Cache(cache_root).path(stage, key)
