"""The run plan: every stage entry a config needs, with its content-addressed key and task arguments.

Keys chain: a fit key contains its data key, a probe key its fit key, a transfer key the probe
key and the fit keys of every model it applies the probes to. So changing one model changes the
keys of exactly the entries that depend on it, and nothing else is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from brainprobe._version import __version__
from brainprobe.pipeline.cache import make_key
from brainprobe.pipeline.config import RunConfig, SimulatedDataset
from brainprobe.pipeline.stages import STAGE_VERSIONS, shard_seed


@lru_cache(maxsize=None)
def weights_id(name: str, weights: str | None = None) -> str:
    """sha256 of a backbone's weights file (identity of a model in cache keys and the manifest)."""
    from brainprobe._hashing import sha256_file
    from brainprobe.zoo import get_spec
    from brainprobe.zoo.weights import resolve_weights

    return sha256_file(resolve_weights(get_spec(name), weights))


def default_layer(name: str) -> str:
    """The middle of the spec's default layers (early / mid / late)."""
    from brainprobe.zoo import get_spec

    spec = get_spec(name)
    layers = list(spec.default_layers) or list(spec.layers)
    return layers[len(layers) // 2]


def model_info(name: str) -> dict[str, Any]:
    """Training kind, norm and eps of a zoo model (coordinates on the analyses' model dim)."""
    from brainprobe.zoo import get_spec

    spec = get_spec(name)
    t = spec.training
    return {
        "training": t.kind,
        "train_norm": t.norm or "",
        "train_eps": float(t.eps) if t.eps is not None else 0.0,
        "family": spec.family,
    }


@dataclass
class Entry:
    stage: str
    key: str
    task: dict[str, Any]
    label: str
    model: str = ""
    norm: str = ""
    chunk: int = -1


@dataclass
class DatasetPlan:
    label: str
    data: Entry
    brain: dict[str, Any] | None
    fits: dict[str, Entry] = field(default_factory=dict)
    probes: list[Entry] = field(default_factory=list)
    transfers: list[Entry] = field(default_factory=list)


def dataset_specs(config: RunConfig) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(label, spec for ``stages.build_dataset``, brain config or None) per dataset of the run."""
    ds = config.dataset
    labels = config.dataset_labels()
    out: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    if isinstance(ds, SimulatedDataset):
        for label, b in zip(labels, ds.brains):
            brain = b.model_dump(mode="json")
            brain["weights_sha256"] = weights_id(b.backbone)
            spec = {
                "kind": "simulated",
                "n_images": ds.n_images,
                "resolution": ds.resolution,
                "repeats": ds.repeats,
                "test_fraction": ds.test_fraction,
                "stimuli_seed": ds.stimuli_seed,
                "seed": shard_seed(config.seed, "data", label),
                "brain": brain,
            }
            out.append((label, spec, brain))
        return out
    if ds.kind in ("nsd", "algonauts"):
        for label, subject in zip(labels, ds.subjects):  # type: ignore[union-attr]
            spec = {"kind": ds.kind, "root": str(ds.root.resolve()), "subject": subject,  # type: ignore[union-attr]
                    "options": dict(ds.options), "stamp": _stamp(ds.root)}  # type: ignore[union-attr]
            out.append((label, spec, None))
        return out
    spec = {"kind": "generic", "images": str(ds.images.resolve()), "responses": str(ds.responses.resolve()),  # type: ignore[union-attr]
            "rois": str(ds.rois.resolve()) if ds.rois else None, "options": dict(ds.options),  # type: ignore[union-attr]
            "stamp": [_stamp(ds.images), _stamp(ds.responses)]}  # type: ignore[union-attr]
    return [(labels[0], spec, None)]


def _stamp(path: Any) -> list[Any]:
    """Cheap identity of user data files (name, size, mtime) for cache keys; big files are not hashed."""
    from pathlib import Path

    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file())[:10000] if p.is_dir() else [p]
    return [[str(q.relative_to(p)) if p.is_dir() else q.name, q.stat().st_size, int(q.stat().st_mtime)] for q in files]


def data_plan(config: RunConfig, cache_root: str) -> list[DatasetPlan]:
    """One plan per dataset of the run, holding its data entry only."""
    plans: list[DatasetPlan] = []
    for label, spec, brain in dataset_specs(config):
        data_key = make_key("data", STAGE_VERSIONS["data"], {"spec": spec, "version": __version__,
                                                            "threads": config.threads, "device": config.device})
        task = {"cache_root": cache_root, "key": data_key, "spec": spec, "threads": config.threads}
        plans.append(DatasetPlan(label, Entry("data", data_key, task, label), brain))
    return plans


def fill_plan(config: RunConfig, plans: list[DatasetPlan], chunks_of: dict[str, list[list[int]]]) -> None:
    """Add the fit, probe and transfer entries; ``chunks_of[label]`` lists each shard's image indices."""
    threads, device, seed = config.threads, config.device, config.seed
    enc = config.encoding.model_dump(mode="json")
    pr = config.probes
    settings = {"objective": pr.objective, "steps": pr.steps, "step_size": pr.step_size,
                "random_start": pr.random_start, "jacobian_start": pr.jacobian_start, "batch_size": pr.batch_size}
    for plan in plans:
        label, brain = plan.label, plan.brain
        data_key = plan.data.key
        cache_root = plan.data.task["cache_root"]
        for m in config.models:
            model = {"name": m.name, "layer": m.layer or default_layer(m.name),
                     "pooling": m.pooling or config.encoding.pooling,
                     "weights": str(m.weights.resolve()) if m.weights else None}
            inputs = {"data": data_key, "model": model, "weights_sha256": weights_id(m.name, model["weights"]),
                      "encoding": enc, "seed": seed, "device": device, "threads": threads}
            key = make_key("fit", STAGE_VERSIONS["fit"], inputs)
            plan.fits[m.name] = Entry("fit", key, {"cache_root": cache_root, "key": key, "data_key": data_key,
                                                   "model": model, "encoding": enc, "device": device,
                                                   "threads": threads, "seed": seed}, label, m.name)
        for m in config.models:
            fit_key = plan.fits[m.name].key
            for norm in pr.norms:
                for c, images in enumerate(chunks_of[label]):
                    s = shard_seed(seed, "probes", label, m.name, norm, c)
                    inputs = {"fit": fit_key, "norm": norm, "eps": pr.eps[norm], "images": images,
                              "settings": settings, "seed": s, "threads": threads, "device": device}
                    key = make_key("probes", STAGE_VERSIONS["probes"], inputs)
                    plan.probes.append(Entry("probes", key, {
                        "cache_root": cache_root, "key": key, "data_key": data_key, "fit_key": fit_key,
                        "norm": norm, "eps": pr.eps[norm], "images": images, "settings": settings,
                        "device": device, "threads": threads, "seed": s}, label, m.name, norm, c))
        for p in plan.probes:
            targets = {name: e.key for name, e in plan.fits.items() if name != p.model}
            inputs = {"probe": p.key, "targets": targets, "brain": brain, "batch_size": pr.batch_size,
                      "threads": threads, "device": device}
            key = make_key("transfer", STAGE_VERSIONS["transfer"], inputs)
            plan.transfers.append(Entry("transfer", key, {
                "cache_root": cache_root, "key": key, "data_key": data_key, "probe_key": p.key,
                "images": p.task["images"], "targets": targets, "brain": brain, "device": device,
                "threads": threads, "batch_size": pr.batch_size}, label, p.model, p.norm, p.chunk))
