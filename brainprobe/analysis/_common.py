"""Shared plumbing of the analyses: probe results, forward passes, readouts, bootstrap, model info."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from brainprobe.errors import ConfigError

TargetSpec = Union[None, str, int, Sequence[str], Sequence[int]]

NORM_ALIASES = {"l2": "l2", "2": "l2", "linf": "linf", "inf": "linf", "l_inf": "linf", "li": "linf"}


class ProbeLike(Protocol):
    """What the analyses read from a probe result (``brainprobe.probes.ProbeResult`` has it).

    Attributes
    ----------
    delta : tensor E x N x 3 x H x W
        Perturbation per budget and image, in [0, 1] pixel units.
    eps : sequence of E floats
        Budgets (l2: Euclidean norm over all pixels and channels; linf: max abs pixel change).
    norm : {"l2", "linf"}
    """

    delta: torch.Tensor
    eps: Any
    norm: str


def norm_name(norm: str) -> str:
    """Canonical norm name ``"l2"`` or ``"linf"``."""
    key = str(norm).lower().replace("-", "_")
    if key not in NORM_ALIASES:
        raise ConfigError(f"unknown norm {norm!r}; use 'l2' or 'linf'")
    return NORM_ALIASES[key]


def eps_array(result: ProbeLike) -> np.ndarray:
    """The probe's budgets as a float64 array (E,), rounded to 7 significant digits.

    Probe results store eps in float32; rounding makes ``.sel(eps=0.1)`` work on the outputs.
    """
    eps = result.eps
    if isinstance(eps, torch.Tensor):
        eps = eps.detach().cpu().double().numpy()
    arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    return np.array([float(f"{e:.7g}") for e in arr])


def organise(probes: Mapping[str, Any], what: str = "probes") -> dict[str, dict[str, ProbeLike]]:
    """``{model: ProbeResult | [ProbeResult, ...]}`` -> ``{model: {norm: ProbeResult}}`` (checked)."""
    if not probes:
        raise ConfigError(f"{what} is empty; pass a dict model name -> ProbeResult (or a list of them, one per norm)")
    out: dict[str, dict[str, ProbeLike]] = {}
    for name, value in probes.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        by_norm: dict[str, ProbeLike] = {}
        for item in items:
            if not hasattr(item, "delta") or not hasattr(item, "eps") or not hasattr(item, "norm"):
                raise ConfigError(f"{what}[{name!r}] holds {type(item).__name__}; expected a ProbeResult (delta, eps, norm)")
            norm = norm_name(item.norm)
            if norm in by_norm:
                raise ConfigError(f"{what}[{name!r}] has two results for norm {norm}; pass one per norm")
            delta = item.delta
            e = eps_array(item)
            if delta.ndim != 5 or delta.shape[0] != len(e):
                raise ConfigError(
                    f"{what}[{name!r}] ({norm}): delta must be E x N x 3 x H x W with E = {len(e)} budgets, "
                    f"got shape {tuple(delta.shape)}"
                )
            by_norm[norm] = item
        out[str(name)] = by_norm
    return out


def as_images(images: Any) -> torch.Tensor:
    """Float images N x 3 x H x W in [0, 1] (uint8 N x H x W x 3 are converted)."""
    from brainprobe._images import to_float_tensor

    try:
        x = to_float_tensor(images)
    except ValueError as err:
        raise ConfigError(f"images: {err}") from None
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ConfigError("images must lie in [0, 1] (float) or be uint8; rescale them")
    return x


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@torch.no_grad()
def forward(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Responses of ``model`` to ``images`` (M x 3 x H x W), as float32 M x T on the CPU."""
    dev = model_device(model)
    outs = []
    for start in range(0, images.shape[0], batch_size):
        y = model(images[start : start + batch_size].to(dev))
        if y.ndim != 2:
            raise ConfigError(f"{type(model).__name__} returned shape {tuple(y.shape)}; response models return N x T")
        outs.append(y.detach().float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def probed_images(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """(E*N) x 3 x H x W perturbed images clamp(x + delta, 0, 1) for delta E x N x 3 x H x W."""
    if tuple(delta.shape[1:]) != tuple(images.shape):
        raise ConfigError(
            f"probe delta has images of shape {tuple(delta.shape[1:])} but the images are {tuple(images.shape)}; "
            "pass the images that were probed"
        )
    x = images.unsqueeze(0) + delta.detach().float().cpu()
    return x.clamp_(0, 1).reshape(-1, *images.shape[1:])


def response_change(
    model: nn.Module, images: torch.Tensor, delta: torch.Tensor, clean: torch.Tensor | None = None, batch_size: int = 64
) -> np.ndarray:
    """model(x + delta) - model(x): float64 E x N x T."""
    if clean is None:
        clean = forward(model, images, batch_size)
    moved = forward(model, probed_images(images, delta), batch_size)
    e, n = delta.shape[:2]
    return (moved.reshape(e, n, -1) - clean.unsqueeze(0)).double().numpy()


def targets_table(model: nn.Module, n_targets: int) -> pd.DataFrame:
    """The model's targets table (columns target, roi); one ROI ``all`` when it has none."""
    table = getattr(model, "targets", None)
    if table is None:
        return pd.DataFrame({"target": [str(i) for i in range(n_targets)], "roi": ["all"] * n_targets})
    table = pd.DataFrame(table).reset_index(drop=True)
    if "roi" not in table:
        raise ConfigError(f"{type(model).__name__}.targets has no 'roi' column; add one (one row per output)")
    if "target" not in table:
        table["target"] = [str(i) for i in range(len(table))]
    if len(table) != n_targets:
        raise ConfigError(f"{type(model).__name__}.targets has {len(table)} rows but the model outputs {n_targets}")
    return table.assign(target=table["target"].astype(str), roi=table["roi"].astype(str))


def resolve(model: nn.Module, spec: TargetSpec, n_targets: int) -> np.ndarray:
    """Column indices selected by a target spec (same rules as the probes)."""
    from brainprobe.probes._targets import resolve_targets

    return resolve_targets(model, spec, n_targets).numpy()


def roi_sets(model: nn.Module, n_targets: int, targets: TargetSpec = None) -> dict[str, np.ndarray]:
    """Named target sets: each ROI of the model when ``targets`` is None, else the chosen ones.

    A str or list of str gives one set per ROI name; ints give one set named ``custom``.
    """
    table = targets_table(model, n_targets)
    if targets is None:
        names = list(dict.fromkeys(table["roi"]))
    elif isinstance(targets, str):
        names = [targets]
    elif all(isinstance(t, str) for t in targets):  # type: ignore[union-attr]
        names = list(targets)  # type: ignore[arg-type]
    else:
        return {"custom": resolve(model, list(targets), n_targets)}  # type: ignore[arg-type]
    return {name: resolve(model, name, n_targets) for name in names}


# --- readouts: what scalar of the response change a probe targeted --------------------------------


@dataclass(frozen=True)
class Readout:
    """The scalar of a response change that an objective targeted.

    ``kind="drive"``: direction * mean change over ``targets`` (response units).
    ``kind="shift"``: size of the change over ``targets``; the change per target is divided by
    that target's across-image SD of the clean responses when ``normalize``.
    """

    kind: str
    targets: TargetSpec = None
    direction: int = 1
    normalize: bool = True

    @property
    def name(self) -> str:
        from brainprobe.probes._targets import describe_targets

        sign = "-" if self.direction < 0 else ""
        return f"{self.kind}{sign if self.kind == 'drive' else ''}:{describe_targets(self.targets)}"


def readout_of(objective: Any, probes: Mapping[str, Mapping[str, Any]] | None = None) -> Readout:
    """A :class:`Readout` from a Readout, a probes ``Drive``/``Shift`` objective or its string form.

    ``objective=None`` takes the objective name the probe results carry (``ProbeResult.objective``,
    e.g. ``"shift:all"``), which must be the same for all of them.
    """
    if isinstance(objective, Readout):
        return objective
    from brainprobe.probes.objectives import Drive, Shift, parse_objective

    if objective is None:
        found = {str(getattr(pr, "objective", "")) for d in (probes or {}).values() for pr in d.values()}
        if len(found) != 1 or "" in found:
            raise ConfigError(
                f"cannot tell which objective the probes used (found {sorted(found)}); pass objective= "
                "(e.g. 'drive:V1' or 'shift')"
            )
        objective = found.pop()
        head, _, rest = objective.partition(":")
        if rest == "all":  # describe_targets(None)
            objective = head
    obj = parse_objective(objective)
    if isinstance(obj, Drive):
        return Readout("drive", obj.targets, obj.direction)
    if isinstance(obj, Shift):
        return Readout("shift", obj.targets, 1, obj.normalize)
    raise ConfigError(
        f"analysis readout {getattr(obj, 'name', objective)!r} is not a Drive or Shift objective; "
        "pass the Drive/Shift objective the probes used (e.g. 'drive:V1' or 'shift')"
    )


def target_sd(clean: torch.Tensor | np.ndarray, what: str = "responses") -> np.ndarray:
    """Across-image SD (ddof=1) per column of N x T clean responses; errors when any is 0."""
    c = np.asarray(clean, dtype=np.float64)
    if c.shape[0] < 2:
        raise ConfigError(f"{what}: need >= 2 images to estimate across-image SDs")
    sd = c.std(axis=0, ddof=1)
    if np.any(sd <= 0):
        raise ConfigError(f"{what}: some targets have zero across-image SD; use more varied images")
    return sd


def model_sd(model: nn.Module, clean: torch.Tensor | np.ndarray, what: str = "responses") -> np.ndarray:
    """Per-output scale T of a model's readouts: its ``response_sd`` when it has one, else ``target_sd(clean)``.

    ``response_sd`` is the SD of the model's predictions on its training images (fitted Encoders
    carry it; a SimulatedBrain after ``set_response_scale``), the same scale its probe objectives
    used, so PGD maximised the quantity reported. Plain modules without it fall back to the SD
    across the clean probed images (``clean``, N x T).
    """
    own = getattr(model, "response_sd", None)
    if own is not None:
        sd = torch.as_tensor(own).detach().double().cpu().numpy().reshape(-1)
        if sd.shape[0] != np.asarray(clean).shape[-1]:
            raise ConfigError(f"{what}: response_sd has {sd.shape[0]} values but the model gives {np.asarray(clean).shape[-1]} outputs")
        if np.any(sd <= 0):
            raise ConfigError(f"{what}: some outputs have zero response_sd on the training images; drop them")
        return sd
    return target_sd(clean, what)


def model_mean_sd(model: nn.Module, clean: torch.Tensor | np.ndarray, idx: np.ndarray, what: str = "responses") -> float:
    """Scale of a target-set mean: SD of the model's mean prediction over ``idx`` on its training images.

    Known for a whole ROI or all outputs (``mean_response_sd``); otherwise (and for plain
    modules) the SD across the clean probed images of the mean over ``idx``.
    """
    from brainprobe.probes.objectives import model_mean_scale

    known = model_mean_scale(model, torch.as_tensor(np.asarray(idx)))
    if known is not None:
        if known <= 0:
            raise ConfigError(f"{what}: zero SD of the target-set mean on the training images")
        return float(known)
    c = np.asarray(clean, dtype=np.float64)
    return float(target_sd(c[:, idx].mean(axis=1, keepdims=True), what)[0])


def apply_readout(
    readout: Readout,
    change: np.ndarray,
    idx: np.ndarray,
    sd: np.ndarray | None = None,
    pattern: np.ndarray | None = None,
) -> np.ndarray:
    """Scalar readout of ``change`` (... x T) over columns ``idx``: shape ``change.shape[:-1]``.

    For ``shift``, ``pattern`` (same shape as ``change``) gives the direction the probe targeted:
    the result is the change projected on the unit pattern; without it, the size of the change.
    """
    c = change[..., idx]
    if readout.kind == "drive":
        return readout.direction * c.mean(axis=-1)
    if readout.normalize:
        if sd is None:
            raise ValueError("shift readout with normalize needs sd")
        c = c / sd[idx]
    if pattern is None:
        return np.linalg.norm(c, axis=-1)
    p = pattern[..., idx]
    if readout.normalize:
        p = p / sd[idx]
    size = np.linalg.norm(p, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, (c * p).sum(axis=-1) / size, np.nan)


# --- bootstrap over images ------------------------------------------------------------------------


def group_codes(groups: Any, n_images: int, what: str = "groups") -> np.ndarray | None:
    """Integer group index (N,) per image, numbered in order of first appearance; None passes through.

    Parameters
    ----------
    groups : sequence of N labels or None
        One label per image (e.g. the photo a crop was cut from); images sharing a label are one
        cluster of the bootstrap.
    n_images : int
        N, the number of images the labels must cover.
    """
    if groups is None:
        return None
    labels = np.asarray(groups, dtype=object).ravel()
    if labels.shape[0] != n_images:
        raise ConfigError(
            f"{what} has {labels.shape[0]} labels but there are {n_images} images; pass one label per probed image"
        )
    codes, _ = pd.factorize(pd.Series(labels.astype(str)), sort=False)
    return codes.astype(np.int64)


def boot_counts(n_images: int, n_boot: int, seed: int, groups: Any = None) -> np.ndarray:
    """Integer resampling counts B x N behind :func:`boot_weights` (same draws for the same arguments).

    Row b counts how often each image is drawn: per image (N draws) without ``groups``, else how
    often its group is drawn (G draws of the G groups). ``boot_weights`` = counts / row total.
    """
    if n_images < 2:
        raise ConfigError("a bootstrap over images needs >= 2 images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    codes = group_codes(groups, n_images)
    rng = np.random.default_rng(seed)
    if codes is None:
        draws = rng.integers(0, n_images, size=(n_boot, n_images))
        counts = np.zeros((n_boot, n_images))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n_images), draws.ravel()), 1.0)
        return counts
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise ConfigError(
            f"a bootstrap over groups needs >= 2 groups, but all {n_images} images share one group; "
            "pass finer groups (or groups=None to resample images)"
        )
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    group_counts = np.zeros((n_boot, n_groups))
    np.add.at(group_counts, (np.repeat(np.arange(n_boot), n_groups), draws.ravel()), 1.0)
    return group_counts[:, codes]


def boot_weights(n_images: int, n_boot: int, seed: int, groups: Any = None) -> np.ndarray:
    """Resampling weights B x N (each row sums to 1) for bootstrap means over images.

    Without ``groups``, row b counts how often each image is drawn (N draws with replacement),
    divided by N. With ``groups`` (one label per image), whole groups are resampled (cluster
    bootstrap): each row draws G groups with replacement (G = number of distinct labels), an
    image's count is how many times its group was drawn (expected count 1), and the row is divided
    by its total count. Labels that are all distinct give exactly the per-image weights.

    ``x @ W.T`` gives the bootstrap means of x (... x N) as ... x B; the same W applied to several
    quantities pairs their bootstrap (same resampled images for all).

    Parameters
    ----------
    n_images : int
        N.
    n_boot : int
        B, number of bootstrap samples.
    seed : int
        Seed of the generator (same seed, same weights).
    groups : sequence of N labels, optional
        One label per image (e.g. the source photo of each crop); bootstraps resample groups.

    Returns
    -------
    ndarray B x N, float64
    """
    counts = boot_counts(n_images, n_boot, seed, groups)
    return counts / counts.sum(axis=1, keepdims=True)


def boot_means(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bootstrap means of ``x`` (... x N) -> ... x B; NaN images are left out of each mean."""
    finite = np.isfinite(x)
    if finite.all():
        return x @ weights.T
    num = np.where(finite, x, 0.0) @ weights.T
    den = finite.astype(float) @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def ci(boot: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the last axis (NaN-aware; no interpolation across inf)."""
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (
                np.nanquantile(boot, lo, axis=-1, method="inverted_cdf"),
                np.nanquantile(boot, hi, axis=-1, method="inverted_cdf"),
            )


def pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along ``axis`` (broadcasting); NaN where a side is constant."""
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    num = (xm * ym).sum(axis=axis)
    den = np.sqrt((xm**2).sum(axis=axis) * (ym**2).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bootstrap correlations: x, y (... x N), weights B x N (rows sum to 1) -> ... x B."""
    mx, my = x @ weights.T, y @ weights.T
    sxx = (x * x) @ weights.T - mx**2
    syy = (y * y) @ weights.T - my**2
    sxy = (x * y) @ weights.T - mx * my
    den = np.sqrt(np.clip(sxx, 0, None) * np.clip(syy, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-300, sxy / np.where(den > 1e-300, den, 1.0), np.nan)


def nanmean_last(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis leaving NaN out (NaN where all are NaN), without warnings."""
    ok = np.isfinite(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(-1), np.where(ok, a, 0.0).sum(-1) / ok.sum(-1), np.nan)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values over the last axis (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.shape[-1]
    if m == 0:
        return p.copy()
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def log_crossing(eps: np.ndarray, values: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """Smallest eps where ``values`` (... x E, over ascending eps) first reach ``level``.

    Interpolates linearly in log(eps) between the grid points around the first crossing;
    ``eps[0]`` when already reached at the first budget (left-censored) and ``inf`` when never.
    """
    v = np.asarray(values, dtype=float)
    level = np.broadcast_to(np.asarray(level, dtype=float), v.shape[:-1])
    reached = v >= level[..., None]
    any_hit = reached.any(axis=-1)
    j = np.argmax(reached, axis=-1)
    out = np.full(v.shape[:-1], np.inf)
    log_e = np.log(eps)
    jm = np.maximum(j - 1, 0)
    v_hi = np.take_along_axis(v, j[..., None], -1)[..., 0]
    v_lo = np.take_along_axis(v, jm[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((level - v_lo) / (v_hi - v_lo), 0, 1)
    interp = np.exp(log_e[jm] + np.nan_to_num(frac) * (log_e[j] - log_e[jm]))
    out = np.where(any_hit, np.where(j == 0, eps[0], interp), np.inf)
    return out


# --- model metadata ---------------------------------------------------------------------------------


def model_info(models: Mapping[str, Any], info: Mapping[str, Mapping[str, str]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: ``training`` (standard / adversarial / robustified / unknown) and ``architecture``.

    Taken from ``info`` (a DataFrame indexed by model name or a dict name -> {training,
    architecture}) where given, else from the model: a zoo ``Backbone`` (``.spec``), an Encoder
    (``.backbone_name``, looked up in the zoo), or attributes ``training_kind`` / ``architecture``.
    Models whose training cannot be found are ``unknown`` (findings then say they are untestable).
    """
    rows = {}
    given = pd.DataFrame(info).T if isinstance(info, Mapping) else info
    for name, model in models.items():
        training, arch = _infer_info(model)
        if given is not None and name in given.index:
            row = given.loc[name]
            training = str(row.get("training", training))
            arch = str(row.get("architecture", arch))
        rows[name] = {"training": training, "architecture": arch}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["training", "architecture"])


def _infer_info(model: Any) -> tuple[str, str]:
    training = getattr(model, "training_kind", None)
    arch = getattr(model, "architecture", None)
    spec = getattr(model, "spec", None)
    if spec is None and isinstance(getattr(model, "backbone_name", None), str):
        try:
            from brainprobe.zoo import get_spec

            spec = get_spec(model.backbone_name)
        except Exception:  # unknown to the zoo (user module): stays unknown, reported by findings
            spec = None
    if spec is not None and hasattr(spec, "training"):
        training = training or spec.training.kind
        arch = arch or getattr(spec, "family", None)
    return str(training or "unknown"), str(arch or "unknown")


class ProbeSubset:
    """A probe result restricted to its first ``k`` images and the budgets ``sel`` (delta E' x k x ..., change E' x k x T)."""

    def __init__(self, pr: Any, k: int, sel: np.ndarray | None = None) -> None:
        sel = np.arange(len(eps_array(pr))) if sel is None else np.asarray(sel)
        self.delta = pr.delta[torch.as_tensor(sel)][:, :k] if isinstance(pr.delta, torch.Tensor) else pr.delta[sel][:, :k]
        self.eps = eps_array(pr)[sel]
        self.norm = pr.norm
        self.objective = getattr(pr, "objective", None)
        if getattr(pr, "change", None) is not None:
            self.change = np.asarray(pr.change)[sel][:, :k]
