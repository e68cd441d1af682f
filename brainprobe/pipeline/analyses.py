"""The analyses stage: probe shards + encoders -> brainprobe.analysis Datasets -> findings.

One cache entry per dataset label holds every analysis Dataset of that label (``<name>.nc``);
its key chains the keys of the encoders, probe and transfer shards it read, so re-running an
unchanged config reads it back and computes nothing.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainprobe._version import __version__
from brainprobe.pipeline.cache import Cache, make_key
from brainprobe.pipeline.config import RunConfig
from brainprobe.pipeline.plan import DatasetPlan, model_info
from brainprobe.pipeline.stages import STAGE_VERSIONS, load_encoder, load_shard, make_brain, resolve_device


@dataclass
class ShardedProbes:
    """One model's probes under one norm, reassembled from its shards (a ProbeResult look-alike).

    Attributes
    ----------
    delta : tensor E x N x 3 x H x W (float32 from the fp16 shards)
    change : ndarray E x N x T
    objective_value : ndarray E x N
    eps : list of E floats
    norm : str
    bound : ndarray N (float64) or None
        First-order bound of the objective at the smallest budget (``brainprobe.probes.convergence``).
    late_gain : ndarray E x N or None
        Relative gain of the last 20% of PGD steps.
    """

    delta: Any
    change: np.ndarray
    objective_value: np.ndarray
    eps: list[float]
    norm: str
    settings: dict[str, Any] = field(default_factory=dict)
    bound: np.ndarray | None = None
    late_gain: np.ndarray | None = None

    def fraction(self) -> np.ndarray | None:
        """Achieved objective / first-order bound at the smallest budget, per image (N,), or None."""
        if self.bound is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.objective_value, dtype=float)[int(np.argmin(self.eps))] / self.bound


def gather_probes(plan: DatasetPlan, cache_root: str, eps: dict[str, list[float]]) -> dict[str, list[ShardedProbes]]:
    """``{model: [ShardedProbes per norm]}``: each model's shards concatenated along images."""
    import torch

    by: dict[tuple[str, str], list[Any]] = {}
    for e in plan.probes:
        by.setdefault((e.model, e.norm), []).append(e)
    out: dict[str, list[ShardedProbes]] = {}
    for (model, norm), entries in by.items():
        entries = sorted(entries, key=lambda e: e.chunk)
        load = lambda name: np.concatenate([load_shard(cache_root, "probes", e.key, name) for e in entries], axis=1)  # noqa: E731
        delta = torch.tensor(load("delta"), dtype=torch.float32)  # torch-allocated: aligned as always
        out.setdefault(model, []).append(ShardedProbes(delta, load("change"), load("objective"), list(eps[norm]), norm,
                                                       dict(entries[0].task["settings"]),
                                                       np.concatenate([load_shard(cache_root, "probes", e.key, "bound")
                                                                       for e in entries]),
                                                       load("late_gain")))
    return out


def convergence_group(probes: dict[str, list[ShardedProbes]], info: dict[str, dict[str, str]]) -> Any:
    """Per model x norm x image: the achieved objective, its first-order bound at the smallest budget and
    their ratio (``fraction``), and the late gain; ``converged`` = median fraction >= 0.95."""
    import xarray as xr

    from brainprobe.probes.convergence import CONVERGED

    names = list(probes)
    norms = sorted({p.norm for ps in probes.values() for p in ps})
    n = max(p.objective_value.shape[1] for ps in probes.values() for p in ps)
    shape = (len(names), len(norms), n)
    achieved, bound, gain = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    eps_min = np.full(len(norms), np.nan)
    for mi, name in enumerate(names):
        for p in probes[name]:
            ni, e = norms.index(p.norm), int(np.argmin(p.eps))
            k = p.objective_value.shape[1]
            achieved[mi, ni, :k] = np.asarray(p.objective_value, dtype=float)[e]
            if p.bound is not None:
                bound[mi, ni, :k] = p.bound
            if p.late_gain is not None:
                gain[mi, ni, :k] = np.asarray(p.late_gain, dtype=float)[e]
            eps_min[ni] = float(p.eps[e])
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = achieved / bound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (no bound defined)
        median = np.nanmedian(frac, axis=-1)
        lowest = np.nanmin(frac, axis=-1)
    converged = np.where(np.isnan(median), np.nan, (median >= CONVERGED).astype(float))  # NaN: no bound defined
    d3, d2 = ("model", "norm", "image"), ("model", "norm")
    return xr.Dataset(
        {"achieved": (d3, achieved), "bound": (d3, bound), "fraction": (d3, frac), "late_gain": (d3, gain),
         "fraction_median": (d2, median), "fraction_min": (d2, lowest),
         "converged": (d2, converged), "eps": (("norm",), eps_min)},
        coords={"model": names, "norm": norms, "image": np.arange(n),
                "training": ("model", [info.get(m, {}).get("training", "") for m in names]),
                "architecture": ("model", [info.get(m, {}).get("architecture", "") for m in names])},
        attrs={"analysis": "convergence", "threshold": float(CONVERGED),
               "bound": "first-order bound at the smallest budget (brainprobe.probes.convergence)"},
    )


def gather_transfer(plan: DatasetPlan, cache_root: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{source: {norm: {target: change E x N x T}}}`` with target ``brain`` for a simulated brain."""
    by: dict[tuple[str, str], list[Any]] = {}
    for e in plan.transfers:
        by.setdefault((e.model, e.norm), []).append(e)
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for (source, norm), entries in by.items():
        entries = sorted(entries, key=lambda e: e.chunk)
        names = [p.stem for p in sorted(Cache(cache_root).path("transfer", entries[0].key).glob("*.npy"))]
        out.setdefault(source, {})[norm] = {
            n: np.concatenate([load_shard(cache_root, "transfer", e.key, n) for e in entries], axis=1) for n in names
        }
    return out


def analyses_key(config: RunConfig, plan: DatasetPlan) -> str:
    inputs = {
        "fits": {k: e.key for k, e in plan.fits.items()},
        "probes": [e.key for e in plan.probes],
        "transfers": [e.key for e in plan.transfers],
        "analyses": config.analyses.model_dump(mode="json"),
        "objective": config.probes.objective,
        "seed": config.seed,
        "threads": config.threads,
        "device": config.device,
        "version": __version__,
    }
    return make_key("analyses", STAGE_VERSIONS["analyses"], inputs)


def run_analyses(config: RunConfig, plans: list[DatasetPlan], datasets: dict[str, Any], cache: Cache,
                 log: Any) -> dict[str, Any]:
    """Per dataset label, every analysis Dataset (cached); then the findings table over all labels."""
    import xarray as xr

    root = str(cache.root.resolve())
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    computed = cached = 0
    for plan in plans:
        key = analyses_key(config, plan)
        if cache.valid("analyses", key):
            cached += 1
            entry = cache.path("analyses", key)
            results[plan.label] = {p.stem: xr.load_dataset(p, engine="h5netcdf") for p in sorted(entry.glob("*.nc"))}
            continue
        computed += 1
        seconds: dict[str, float] = {}
        groups = compute_analyses(config, plan, datasets[plan.label], root, seconds)
        if hasattr(log, "add_part"):
            for name, sec in seconds.items():
                log.add_part("analyses", f"{plan.label}/{name}", sec)
        with cache.writer("analyses", key) as tmp:
            from brainprobe.pipeline.outputs import _clean

            for name, ds in groups.items():
                _clean(ds).to_netcdf(tmp / f"{name}.nc", engine="h5netcdf")
        entry = cache.path("analyses", key)
        # read back what was stored so a fresh and a cached run hand identical objects onward
        results[plan.label] = {p.stem: xr.load_dataset(p, engine="h5netcdf") for p in sorted(entry.glob("*.nc"))}
    log.add("analyses", computed, cached, time.perf_counter() - t0)
    results["findings"] = compute_findings(results)
    return results


def compute_findings(results: dict[str, Any]) -> Any:
    import pandas as pd

    try:
        from brainprobe.analysis import findings
    except ImportError:
        warnings.warn("findings check: brainprobe.analysis.findings is unavailable; the findings table is empty",
                      stacklevel=2)
        return pd.DataFrame(columns=["finding", "brain", "statistic", "value", "ci_low", "ci_high", "held"])
    per_brain = {label: groups for label, groups in results.items() if label != "findings"}
    return findings(per_brain)


def compute_analyses(config: RunConfig, plan: DatasetPlan, dataset: Any, cache_root: str,
                     seconds: dict[str, float] | None = None) -> dict[str, Any]:
    """Every analysis the config asks for, on one dataset; returns {name: xarray.Dataset}.

    ``seconds`` (optional) receives the wall seconds of each analysis (the manifest's
    ``stages.analyses.parts``)."""
    seconds = {} if seconds is None else seconds
    import torch

    from brainprobe._images import to_float_tensor

    dev = resolve_device(config.device)
    encoders = {name: load_encoder(cache_root, e.key, dev) for name, e in plan.fits.items()}
    probes = gather_probes(plan, cache_root, config.probes.eps)
    first = next(iter(plan.fits))
    image_idx = [i for e in sorted((e for e in plan.probes if e.model == first and e.norm == config.probes.norms[0]),
                                   key=lambda e: e.chunk) for i in e.task["images"]]
    images = to_float_tensor(np.asarray(dataset.stimuli)[np.asarray(image_idx)])
    info = {name: {"training": model_info(name)["training"], "architecture": model_info(name)["family"]}
            for name in encoders}
    brain = make_brain(plan.brain, dev) if plan.brain is not None else None
    if brain is not None:
        brain.scale_from(dataset)  # its scale: SD of its noise-free responses on the training images
    from brainprobe.pipeline.stages import make_objective

    objective = make_objective(config.probes.objective, dataset)
    ctx = AnalysisContext(config, plan, dataset, encoders, probes, images, image_idx, info, brain, objective, cache_root)
    groups: dict[str, Any] = {"predictivity": predictivity_group(encoders, info),
                              "convergence": convergence_group(probes, info)}
    import brainprobe.analysis as analysis_pkg

    for name in config.analyses.include:
        fn = RUNNERS.get(name)
        if fn is None or not _available(analysis_pkg, name):
            warnings.warn(f"analysis check: {name} is not available in this brainprobe version; skipped", stacklevel=2)
            continue
        t0 = time.perf_counter()
        groups[name] = fn(ctx, groups)
        seconds[name] = time.perf_counter() - t0
    if brain is not None and groups.get("sensitivity") is not None:
        t0 = time.perf_counter()
        groups["brain_sensitivity"] = _brain_sensitivity(ctx, groups)  # finding 2 against the brain's own profile
        seconds["brain_sensitivity"] = time.perf_counter() - t0
    return {k: v for k, v in groups.items() if v is not None}


_FUNCTION = {"axes": "coding_axes"}


def _available(pkg: Any, name: str) -> bool:
    return hasattr(pkg, _FUNCTION.get(name, name))


@dataclass
class AnalysisContext:
    config: RunConfig
    plan: DatasetPlan
    dataset: Any
    encoders: dict[str, Any]
    probes: dict[str, list[ShardedProbes]]
    images: Any
    image_index: list[int]
    info: dict[str, dict[str, str]]
    brain: Any
    objective: Any
    cache_root: str

    def options(self, name: str) -> dict[str, Any]:
        return dict(self.config.analyses.options.get(name, {}))

    def groups(self, k: int | None = None) -> Any:
        """The dataset's group labels (e.g. source photos) of the first ``k`` probed images (all: None).

        Bootstraps resample these groups. None (with a warning) when they hold fewer than 2
        groups: a cluster bootstrap is then impossible and the images are resampled one by one.
        """
        idx = np.asarray(self.image_index if k is None else self.image_index[:k])
        labels = np.asarray(getattr(self.dataset, "groups", np.asarray(self.dataset.image_ids)))[idx].astype(str)
        if len(set(labels.tolist())) < 2:
            warnings.warn(f"bootstrap check: the {len(idx)} probed images come from {len(set(labels.tolist()))} group(s); "
                          "resampling single images instead of groups", stacklevel=2)
            return None
        return labels


def predictivity_group(encoders: dict[str, Any], info: dict[str, dict[str, str]]) -> Any:
    """The encoders' predictivity Datasets concatenated along a ``model`` dim."""
    import xarray as xr

    parts = []
    for name, enc in encoders.items():
        ds = enc.predictivity
        parts.append(ds.expand_dims(model=[name]))
    out = xr.concat(parts, dim="model", join="outer", combine_attrs="drop_conflicts")
    out = out.assign_coords(training=("model", [info[m]["training"] for m in out["model"].values]),
                            architecture=("model", [info[m]["architecture"] for m in out["model"].values]))
    out.attrs["analysis"] = "predictivity"
    return out


def _sensitivity(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    from brainprobe.analysis import sensitivity

    measure = "rms" if ctx.config.probes.objective.startswith("shift") else "mean"
    return sensitivity(ctx.encoders, ctx.images, ctx.probes, measure=measure, n_boot=ctx.config.analyses.n_boot,
                       seed=ctx.config.seed, info=ctx.info, groups=ctx.groups(), **ctx.options("sensitivity"))


def _discriminability(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """Predictivity and sensitivity per image, on the same probed images, side by side."""
    from brainprobe.analysis import discriminability, predictivity_scores, sensitivity_scores

    sens = done.get("sensitivity")
    if sens is None:
        sens = _sensitivity(ctx, done)
        done["sensitivity"] = sens
    responses = np.asarray(ctx.dataset.responses)[np.asarray(ctx.image_index)]
    pred = predictivity_scores(ctx.encoders, responses, images=ctx.images)
    scores = {"predictivity": pred, "sensitivity": sensitivity_scores(sens)}
    return discriminability(scores, n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed, groups=ctx.groups(),
                            **ctx.options("discriminability"))


def _transfer(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    from brainprobe.analysis import transfer

    return transfer(ctx.encoders, ctx.images, ctx.probes, objective=ctx.objective, brain=ctx.brain,
                    responses=transfer_responses(ctx), n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed,
                    info=ctx.info, groups=ctx.groups(), **ctx.options("transfer"))


def transfer_responses(ctx: AnalysisContext) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The transfer stage's shards as ``transfer(responses=)``: source -> norm -> receiver -> E x N x T.

    Other models and the brain (``brain``) come from the transfer shards, each source's own change
    from its probe shards, so the analysis computes none of them again (only the random baselines).
    """
    out = gather_transfer(ctx.plan, ctx.cache_root)
    for source, per_norm in ctx.probes.items():
        for p in per_norm:
            out.setdefault(source, {}).setdefault(p.norm, {})[source] = np.asarray(p.change)
    return out


def _brain_sensitivity(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """The image-computable brain probed like the models (same norms, budgets, objective, settings and
    images), read out like them: its sensitivity, for the brain-referenced criterion of finding 2.

    Runs on the driver (one probe per norm over all probed images); None for recorded data.
    """
    if ctx.brain is None or done.get("sensitivity") is None:
        return None
    from brainprobe.analysis import sensitivity
    from brainprobe.pipeline.stages import shard_seed
    from brainprobe.probes import probe

    pr = ctx.config.probes
    probes = [probe(ctx.brain, ctx.images, norm=nm, eps=pr.eps[nm], objective=ctx.objective, steps=pr.steps,
                    step_size=pr.step_size, random_start=pr.random_start, batch_size=pr.batch_size, progress=False,
                    seed=shard_seed(ctx.config.seed, "brain-probes", ctx.plan.label, nm),
                    convergence=False)  # the brain's own bound is not reported; it would cost a Jacobian SVD
              for nm in pr.norms]
    kind = model_info(ctx.plan.brain["backbone"])  # type: ignore[index]
    measure = "rms" if pr.objective.startswith("shift") else "mean"
    opts = {k: v for k, v in ctx.options("sensitivity").items() if k in ("rois", "targets")}
    ds = sensitivity({"brain": ctx.brain}, ctx.images, {"brain": probes}, measure=measure,
                     n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed,
                     info={"brain": {"training": kind["training"], "architecture": kind["family"]}},
                     groups=ctx.groups(), **opts)
    ds.attrs.update(analysis="brain_sensitivity", brain_training=kind["training"], brain_family=kind["family"],
                    brain_backbone=str(ctx.plan.brain["backbone"]))  # type: ignore[index]
    return ds


def _axes(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """Coding axes on the first ``axes_images`` probed images, in the brain's trial-noise units where known.

    Options (``analyses.options.axes``) go to ``coding_axes``; ``random_null`` (default true) adds
    the random-network null: per candidate architecture one randomly initialised encoder fitted
    on this dataset (:func:`brainprobe.analysis.random_encoder`), shared by the architecture's models.
    """
    from brainprobe.analysis import coding_axes
    from brainprobe.analysis._axes import random_encoder

    opts = ctx.options("axes")
    random_null = bool(opts.pop("random_null", True))
    k = min(ctx.config.analyses.axes_images, ctx.images.shape[0])
    targets = getattr(ctx.dataset, "targets", None)
    noise_sd = None
    if ctx.brain is not None and targets is not None and "noise_sd" in targets:
        noise_sd = np.asarray(targets["noise_sd"], dtype=float)
    randoms: dict[str, Any] = {}
    if random_null:
        by_arch: dict[str, Any] = {}
        dev = resolve_device(ctx.config.device)
        for name, enc in ctx.encoders.items():
            arch = ctx.info[name]["architecture"]
            if arch not in by_arch:
                by_arch[arch] = random_encoder(enc, ctx.dataset, seed=ctx.config.seed, device=dev)
            randoms[name] = by_arch[arch]
    info = dict(ctx.info)
    if ctx.brain is not None:
        kind = model_info(ctx.plan.brain["backbone"])  # type: ignore[index]
        info["brain"] = {"training": kind["training"], "architecture": kind["family"]}
    opts.setdefault("batch_size", 10)  # images per Jacobian batch: 1.7x faster than 4 on CPU for the encoders
    return coding_axes(ctx.encoders, ctx.images[:k], brain=ctx.brain, noise_sd=noise_sd, random_models=randoms or None,
                       n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed, info=info, groups=ctx.groups(k),
                       **opts)


def _attack_control(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """Standard models' probes re-made with input diversity and ensembles (``analyses.options.attack_control``:
    ``n_images`` (default 8), ``norms``, ``input_diversity`` (0.5), ``ensemble`` (true)); PGD settings of the probes."""
    from brainprobe.analysis import attack_control

    pr = ctx.config.probes
    opts = ctx.options("attack_control")
    k = min(int(opts.pop("n_images", 8)), ctx.images.shape[0])
    if not any(ctx.info[m]["training"] == "standard" for m in ctx.encoders):
        return None
    brain_arch = "brain"
    if ctx.brain is not None:
        brain_arch = model_info(ctx.plan.brain["backbone"])["family"]  # type: ignore[index]
    return attack_control(ctx.encoders, ctx.images, ctx.probes, objective=ctx.objective, brain=ctx.brain,
                          brain_architecture=brain_arch, n_images=k, steps=pr.steps, step_size=pr.step_size,
                          batch_size=pr.batch_size, n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed,
                          info=ctx.info, groups=ctx.groups(k), **opts)


def _l2_linf(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    from brainprobe.analysis import l2_linf

    if set(ctx.config.probes.norms) != {"l2", "linf"}:
        return None
    return l2_linf(ctx.encoders, ctx.images, ctx.probes, n_boot=ctx.config.analyses.n_boot, seed=ctx.config.seed,
                   info=ctx.info, groups=ctx.groups(), **ctx.options("l2_linf"))


def _controversial(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """Contrast probes for every ordered model pair on the first few probed images, then controversiality."""
    from brainprobe.analysis import controversial, predictivity_scores
    from brainprobe.probes import Contrast, probe

    a_cfg, pr = ctx.config.analyses, ctx.config.probes
    names = list(ctx.encoders)
    if len(names) < 2:
        return None
    k = min(a_cfg.contrast_images, ctx.images.shape[0])
    x = ctx.images[:k]
    norms = a_cfg.contrast_norms or [pr.norms[0]]
    probes: dict[tuple[str, str], list[Any]] = {}
    pairs = [(a, b) for a in names for b in names if a != b]
    from brainprobe._progress import progress
    from brainprobe.pipeline.stages import shard_seed

    for a, b in progress(pairs, desc="contrast probes"):
        objective = Contrast(ctx.encoders[a], ctx.encoders[b], a_cfg.contrast_targets)
        probes[(a, b)] = [
            probe(None, x, norm=nm, eps=pr.eps[nm], objective=objective, steps=pr.steps, step_size=pr.step_size,
                  random_start=pr.random_start, batch_size=pr.batch_size, progress=False,
                  seed=shard_seed(ctx.config.seed, "contrast", ctx.plan.label, a, b, nm))
            for nm in norms
        ]
    responses = np.asarray(ctx.dataset.responses)[np.asarray(ctx.image_index[:k])]
    pred = predictivity_scores(ctx.encoders, responses, images=x)
    nc = np.asarray(getattr(ctx.dataset, "noise_ceiling", None) if ctx.brain is not None else None, dtype=float)
    if nc.ndim and not (np.isfinite(nc).all() and (nc > 0).all()):
        warnings.warn("controversial check: the dataset has no noise ceiling for every target; the brain follows a "
                      "model on any change (no trial-noise threshold)", stacklevel=2)
    noise_ceiling = nc if nc.ndim and np.isfinite(nc).all() and (nc > 0).all() else None
    return controversial(ctx.encoders, x, probes, targets=a_cfg.contrast_targets, brain=ctx.brain, predictivity=pred,
                         noise_ceiling=noise_ceiling, n_boot=a_cfg.n_boot, seed=ctx.config.seed, groups=ctx.groups(k),
                         **ctx.options("controversial"))


def _linearity(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    from brainprobe.analysis import linearity

    return linearity(ctx.encoders, ctx.images, ctx.probes, objective=ctx.objective, n_boot=ctx.config.analyses.n_boot,
                     seed=ctx.config.seed, info=ctx.info, groups=ctx.groups(), **ctx.options("linearity"))


def _semantics(ctx: AnalysisContext, done: dict[str, Any]) -> Any:
    """Semantics of every probe (the first ``options.semantics.n_images`` probed images, default all) judged by ``analyses.judges`` (non-learned: Gabor
    energy, NLPD) and the optional ``analyses.classifier``; a judge that shares a family with a candidate
    or the brain is recorded as not independent (``judge_independent``)."""
    from brainprobe.analysis import semantics
    from brainprobe.analysis._semantics import GaborEnergy, NLPDistance

    a_cfg = ctx.config.analyses
    builders = {"gabor_energy": GaborEnergy, "nlpd": NLPDistance}
    judges = {name: builders[name]() for name in a_cfg.judges}
    classifier, dependent = None, {}
    families = {name: ctx.info[name]["architecture"] for name in ctx.encoders}
    if ctx.brain is not None:
        families["brain"] = model_info(ctx.plan.brain["backbone"])["family"]  # type: ignore[index]
    if a_cfg.classifier:
        from brainprobe.zoo import get_spec, load_backbone

        family = get_spec(a_cfg.classifier).family
        shared = sorted(m for m, f in families.items() if f == family)
        if shared:
            dependent[a_cfg.classifier] = f"family {family} shared with {', '.join(shared)}"
            warnings.warn(f"semantics check: classifier {a_cfg.classifier} is of family {family}, shared with "
                          f"{', '.join(shared)}; its judge row is reported as not independent", stacklevel=2)
        classifier = load_backbone(a_cfg.classifier, device=resolve_device(ctx.config.device))
    opts = ctx.options("semantics")
    k = min(int(opts.pop("n_images", ctx.images.shape[0])), ctx.images.shape[0])
    from brainprobe.analysis._common import ProbeSubset

    probes = {m: [ProbeSubset(pr, k) for pr in (prs if isinstance(prs, (list, tuple)) else [prs])]
              for m, prs in ctx.probes.items()}
    ds = semantics(ctx.images[:k], probes, classifier=classifier, classifier_name=a_cfg.classifier or "",
                   judges=judges, models=ctx.encoders, n_boot=a_cfg.n_boot, seed=ctx.config.seed, info=ctx.info,
                   groups=ctx.groups(k), **opts)
    if "judge" in ds.coords:
        ds = ds.assign_coords(judge_independent=("judge", [str(j) not in dependent for j in ds["judge"].values]))
        ds.attrs["dependent_judges"] = "; ".join(f"{j}: {why}" for j, why in dependent.items())
    return ds


RUNNERS: dict[str, Any] = {
    "controversial": _controversial,
    "linearity": _linearity,
    "semantics": _semantics,
    "sensitivity": _sensitivity,
    "discriminability": _discriminability,
    "transfer": _transfer,
    "axes": _axes,
    "l2_linf": _l2_linf,
    "attack_control": _attack_control,
}
"""analysis name -> runner(ctx, groups computed so far) -> xarray.Dataset or None (not applicable)."""
