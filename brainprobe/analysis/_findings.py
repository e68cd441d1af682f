"""findings(): the paper's findings as one table, measured on the user's models and data."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from brainprobe.analysis._bca import bca_interval, jackknife_weights
from brainprobe.analysis._common import boot_means, boot_weights, ci, nanmean_last
from brainprobe.errors import ConfigError

ROBUST = ("adversarial", "robustified")
STANDARD = ("standard",)
COLUMNS = ["finding", "brain", "statistic", "value", "ci_low", "ci_high", "held", "note"]


def findings(
    results: Mapping[str, Any],
    *,
    poor_transfer: float = 0.5,
    r_threshold: float = 0.9,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (finding, brain) with its measured figure, CI and whether it held.

    Claims about classes of models (robust vs standard) use a hierarchical bootstrap: each
    replicate resamples the models within a class that has >= 2 members and the images (whole
    photos when the analysis carries a ``group`` coordinate on its image dim); intervals are BCa
    (acceleration from the leave-one-image-or-photo-out jackknife). Transfer findings compare
    robust and standard sources on the same cross-architecture pairs and must beat equal-norm
    random perturbations (white and 1/f). A row whose interval does not contain its value is
    reported as not held.

    Parameters
    ----------
    results : dict
        Either ``{analysis: Dataset}`` for one dataset / brain (labelled ``"data"``), or
        ``{dataset_label: {analysis: Dataset}}`` (the layout of results.nc). Analyses used, by
        name: ``sensitivity``, ``discriminability`` (with scores ``sensitivity`` and
        ``predictivity``), ``transfer``, ``l2_linf``, ``brain_sensitivity`` (the image-computable
        brain's own sensitivity, probed like the models; its ``brain_training`` attribute says
        which candidates are brain-matched). Models are grouped by the ``training``
        coordinate of their dim: ``adversarial`` / ``robustified`` = robust, ``standard`` =
        standard; ``architecture`` separates architectures.
    poor_transfer : float
        A transfer ratio whose CI lies below this is "poor".
    r_threshold : float
        l2 vs linf agreement holds when the mean R is at least this.

    Returns
    -------
    pandas.DataFrame
        Columns ``finding, brain, statistic, value, ci_low, ci_high, held, note``. A finding that
        cannot be tested (analysis missing, no robust models, ...) has value NaN, held False and
        says why in ``note``; one that does not reproduce has its numbers and held False.
    """
    if not isinstance(results, Mapping) or not results:
        raise ConfigError(
            f"findings needs results: {{analysis: Dataset}} or {{dataset_label: {{analysis: Dataset}}}}, "
            f"got {'an empty dict' if isinstance(results, Mapping) else type(results).__name__}"
        )
    per_brain = {"data": results} if all(isinstance(v, xr.Dataset) for v in results.values()) else results
    rows: list[dict[str, Any]] = []
    for label, analyses in per_brain.items():
        if not isinstance(analyses, Mapping):
            raise ConfigError(f"findings: results[{label!r}] must be a dict analysis name -> Dataset")
        w_seed = seed
        rows.append(_robust_eps(label, analyses.get("sensitivity"), n_boot, level, w_seed))
        rows.append(_brain_match(label, analyses.get("brain_sensitivity"), analyses.get("sensitivity"),
                                 analyses.get("discriminability"), n_boot, level, w_seed))
        rows.append(_separation(label, analyses.get("discriminability"), n_boot, level, w_seed))
        rows.append(_standard_transfer(label, analyses.get("transfer"), poor_transfer, n_boot, level, w_seed))
        rows.append(_robust_transfer(label, analyses.get("transfer"), n_boot, level, w_seed))
        rows.append(_robust_to_brain(label, analyses.get("transfer"), n_boot, level, w_seed))
        rows.append(_l2_linf(label, analyses.get("l2_linf"), r_threshold, level))
        rows.append(_axes_row(label, analyses.get("axes"), n_boot, level, w_seed))
        rows.extend(_semantics_rows(label, analyses.get("semantics"), n_boot, level, w_seed))
        rows.append(_attack_row(label, analyses.get("attack_control"), poor_transfer, n_boot, level, w_seed))
    rows = [_checked(r) for r in rows]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["held"] = table["held"].astype(bool)
    return table


def _row(finding: str, brain: str, statistic: str, value: float = np.nan, lo: float = np.nan, hi: float = np.nan,
         held: bool = False, note: str = "") -> dict[str, Any]:
    return {"finding": finding, "brain": brain, "statistic": statistic, "value": float(value), "ci_low": float(lo),
            "ci_high": float(hi), "held": bool(held), "note": note}


def _groups(ds: xr.Dataset, coord: str) -> tuple[np.ndarray, np.ndarray]:
    kind = np.asarray(ds[coord].values).astype(str) if coord in ds.coords else np.array([], dtype=str)
    return np.isin(kind, ROBUST), np.isin(kind, STANDARD)


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    """A row whose finite interval does not contain its value is not held (and says so)."""
    v, lo, hi = row["value"], row["ci_low"], row["ci_high"]
    if np.isfinite(v) and np.isfinite(lo) and np.isfinite(hi) and not (lo <= v <= hi):
        row = {**row, "held": False,
               "note": row["note"] + "; the interval does not contain the value (bootstrap bias): not held"}
    return row


def _image_groups(ds: xr.Dataset) -> Any:
    """The ``group`` labels of the image dim (photos), or None to resample images."""
    if "group" in ds.coords and ds["group"].dims == ("image",):
        return np.asarray(ds["group"].values).astype(str)
    return None


def _model_weights(masks: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """Per class, B x M weights resampling the class's models (rows sum to 1 over its members).

    A class with one member keeps it (weight 1): nothing to resample.
    """
    rng = np.random.default_rng(seed + 7919)
    out = []
    for mask in masks:
        idx = np.flatnonzero(mask)
        w = np.zeros((n_boot, len(mask)))
        if len(idx) >= 2:
            draws = rng.integers(0, len(idx), size=(n_boot, len(idx)))
            for k in range(len(idx)):
                w[:, idx[k]] = (draws == k).sum(1) / len(idx)
        elif len(idx) == 1:
            w[:, idx[0]] = 1.0
        out.append(w)
    return out


def _class_mean(per_model: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over models of per-model replicates (M x K) with weights K x M (NaN left out)."""
    v = per_model.T  # K x M
    ok = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, v, 0.0) * weights).sum(-1) / (ok * weights).sum(-1)


def _hierarchical(per_model: Any, n_images: int, masks: list[np.ndarray], combine: Any, n_boot: int, level: float,
                  seed: int, groups: Any = None) -> tuple[float, float, float]:
    """Value and BCa interval of ``combine([class means])`` with models and images resampled.

    ``per_model(w)`` maps image weights K x N to per-model replicates M x K; each class mean is
    its models' weighted mean (models resampled within a class of >= 2 in the bootstrap, all
    weighted equally for the estimate and the image jackknife that gives the acceleration).
    """
    uniform_img = np.full((1, n_images), 1.0 / n_images)
    equal = [np.where(m, 1.0 / max(int(m.sum()), 1), 0.0)[None] for m in masks]
    value = combine([_class_mean(per_model(uniform_img), q) for q in equal])[0]
    w = boot_weights(n_images, n_boot, seed, groups=groups)
    boot = combine([_class_mean(per_model(w), q) for q in _model_weights(masks, n_boot, seed)])
    jk = per_model(jackknife_weights(n_images, groups))
    jack = combine([_class_mean(jk, q) for q in equal])
    lo, hi = bca_interval(value, boot, jack, level)
    return float(value), float(lo), float(hi)


def _per_source(num: np.ndarray, den: np.ndarray | None, mask: np.ndarray) -> Any:
    """per_model(w) for transfer-like ratios: mean over each source's masked targets, norms and eps.

    ``num`` S x T x norm x eps x N (or S x norm x eps x N with a 1-column mask), ``den`` the
    receivers' own changes T x norm x eps x N (None: plain means).
    """
    def fn(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = boot_means(num, w)
            if den is not None:
                x = x / boot_means(den, w)[None]
            if x.ndim == 4:  # S x norm x eps x K: no target axis
                return np.nanmean(x.reshape(x.shape[0], -1, x.shape[-1]), axis=1)
            sel = np.where(mask[:, :, None, None, None], x, np.nan)
            return np.nanmean(sel.reshape(sel.shape[0], -1, sel.shape[-1]), axis=1)
    return fn


def _class_note(robust: np.ndarray, standard: np.ndarray) -> str:
    how = lambda k: "resampled" if k >= 2 else "fixed (one model)"  # noqa: E731
    return (f"hierarchical bootstrap: {int(robust.sum())} robust models ({how(int(robust.sum()))}), "
            f"{int(standard.sum())} standard ({how(int(standard.sum()))}), images / photos resampled; BCa")


def _robust_eps(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name, stat = "robust models need larger eps", "sensitivity AUC, standard / robust (> 1: robust need larger eps)"
    if ds is None:
        return _row(name, label, stat, note="not testable: no sensitivity results")
    robust, standard = _groups(ds, "training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard models (training coordinate)")
    auc = ds["auc_image"].transpose("model", "norm", "roi", "image").values
    flat = auc.reshape(auc.shape[0], -1, auc.shape[-1])

    def per_model(w: np.ndarray) -> np.ndarray:
        return np.nanmean(boot_means(flat, w), axis=1)  # M x K

    value, lo, hi = _hierarchical(per_model, auc.shape[-1], [standard, robust], lambda c: c[0] / c[1], n_boot, level,
                                  seed, _image_groups(ds))
    note = f"mean over norms and ROIs; {_class_note(robust, standard)}"
    if "min_eps" in ds:
        med = ds["min_eps"].transpose("model", "norm", "roi").values
        per_norm = [f"{nm} median min eps {np.median(med[robust, i]):.3g} (robust) vs {np.median(med[standard, i]):.3g}"
                    for i, nm in enumerate(ds["norm"].values)]
        note += "; " + "; ".join(per_norm)
    return _row(name, label, stat, value, lo, hi, bool(lo > 1), note=note)


def _brain_match(label: str, brain: xr.Dataset | None, sens: xr.Dataset | None, disc: xr.Dataset | None,
                 n_boot: int, level: float, seed: int) -> dict[str, Any]:
    """Finding 2, brain-referenced: does the sensitivity profile pick the brain-matched candidate?

    Each candidate's profile = its mean sensitivity AUC per (norm, ROI) on the probed images; the
    brain's profile is measured the same way (same probes, norms, budgets, objective, images).
    Distance = Euclidean distance between log profiles. The brain-matched candidates are those
    whose training class (robust: adversarial / robustified; standard) is the brain's. The
    statistic is 1[closest profile is brain-matched] - 1[most predictive candidate is
    brain-matched] (per image predictivity on the same images); its interval resamples images.
    """
    name = "sensitivity profile identifies the brain-matched candidate (predictivity does not)"
    stat = ("1[closest sensitivity profile is brain-matched] - 1[most predictive is brain-matched] "
            "(+1: only sensitivity recovers it)")
    if brain is None:
        return _row(name, label, stat, note="not testable: needs an image-computable brain probed like the models "
                    "(simulated data); recorded data cannot be probed")
    if sens is None or disc is None or "score_image" not in disc:
        return _row(name, label, stat, note="not testable: needs the sensitivity and discriminability results")
    kind = str(brain.attrs.get("brain_training", "unknown"))
    klass = ROBUST if kind in ROBUST else STANDARD if kind in STANDARD else ()
    training = np.asarray(sens["training"].values).astype(str)
    matched = np.isin(training, klass)
    if not matched.any() or matched.all():
        return _row(name, label, stat, note=f"not testable: the brain's training is {kind!r}; need candidates of its "
                    f"class and of another ({int(matched.sum())} of {len(matched)} match)")
    models = [str(m) for m in sens["model"].values]
    a = sens["auc_image"].transpose("model", "norm", "roi", "image").values
    b = brain["auc_image"].transpose("model", "norm", "roi", "image").values[0]
    pred = disc["score_image"].sel(score="predictivity").transpose("model", "image").sel(model=models).values
    n = a.shape[-1]
    if b.shape != a.shape[1:] or pred.shape[-1] != n:
        return _row(name, label, stat, note="not testable: brain and candidate profiles differ in norms, ROIs or images")

    def stat_of(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            pa = np.log(np.clip(boot_means(a, w), 1e-12, None))  # M x norm x roi x K
            pb = np.log(np.clip(boot_means(b, w), 1e-12, None))[None]
        dist = np.sqrt(((pa - pb) ** 2).sum((1, 2)))  # M x K
        by_sens = matched[np.argmin(dist, axis=0)].astype(float)
        by_pred = matched[np.argmax(boot_means(pred, w), axis=0)].astype(float)
        return by_sens - by_pred, dist, by_sens

    v, dist, _ = stat_of(np.full((1, n), 1.0 / n))
    boot, _, by_sens_b = stat_of(boot_weights(n, n_boot, seed, groups=_image_groups(sens)))
    lo, hi = ci(boot, level)
    ranked = ", ".join(f"{m}{'*' if k else ''} {d:.2f}" for m, k, d in sorted(zip(models, matched, dist[:, 0]),
                                                                               key=lambda t: t[2]))
    best_pred = models[int(np.argmax(pred.mean(-1)))]
    note = (f"brain trained {kind}; profile distance (log AUC per norm x ROI; * = brain-matched): {ranked}; most "
            f"predictive: {best_pred}; sensitivity picks a matched candidate in {float(by_sens_b.mean()):.0%} of "
            "image resamples; held: sensitivity recovers it and predictivity does not in >= 97.5% of resamples")
    return _row(name, label, stat, float(v[0]), lo, hi, bool(v[0] > 0 and lo > 0), note=note)


def _separation(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "sensitivity is more repeatable across images than predictivity"
    stat = ("fraction of model pairs separated (Holm), sensitivity minus predictivity: repeatability, "
            "not brain-likeness (see the brain-matched recovery row)")
    if ds is None:
        return _row(name, label, stat, note="not testable: no discriminability results")
    scores = [str(s) for s in ds["score"].values]
    if "sensitivity" not in scores or "predictivity" not in scores:
        return _row(name, label, stat, note=f"not testable: discriminability scores are {scores}; need "
                    "'sensitivity' and 'predictivity'")
    fs = float(ds["fraction_significant"].sel(score="sensitivity"))
    fp = float(ds["fraction_significant"].sel(score="predictivity"))
    vs = float(ds["variance_ratio"].sel(score="sensitivity"))
    vp = float(ds["variance_ratio"].sel(score="predictivity"))
    pairs = int(ds.attrs.get("n_pairs", 0))
    note = (f"sensitivity {fs:.2f} vs predictivity {fp:.2f} of {pairs} pairs on {ds.attrs.get('n_images', '?')} "
            f"images; variance ratio {vs:.3g} vs {vp:.3g}")
    if "score_image" not in ds:
        return _row(name, label, stat, fs - fp, held=fs > fp, note=note + "; no per-image scores, no CI")
    scores_img = ds["score_image"].sel(score=["sensitivity", "predictivity"]).transpose("score", "model", "image").values
    boot = _fraction_boot(scores_img, float(ds.attrs.get("alpha", 0.05)), n_boot, seed)
    lo, hi = ci(boot[0] - boot[1], level)
    return _row(name, label, stat, fs - fp, lo, hi, bool(fs > fp and lo > 0),
                note=note + "; CI: images resampled, pairs re-tested by paired t-tests with Holm")


def _fraction_boot(s: np.ndarray, alpha: float, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap over images of the Holm-significant fraction of pairs, per score: K x B.

    Inside each resample the pairs are tested with a paired t-test (a fast stand-in for the
    analysis' own inner bootstrap), so the interval reflects which images happened to be drawn.
    """
    from scipy.stats import t as t_dist

    from brainprobe.analysis._common import holm

    m, n = s.shape[1], s.shape[2]
    iu = np.triu_indices(m, 1)
    d = s[:, iu[0]] - s[:, iu[1]]  # K x P x N
    w = boot_weights(n, n_boot, seed)
    mean = d @ w.T  # K x P x B
    var = np.clip((d * d) @ w.T - mean**2, 0, None) * n / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = np.where(var > 0, np.abs(mean) / np.sqrt(var / n), np.where(mean == 0, 0.0, np.inf))
    p = 2 * t_dist.sf(tval, n - 1)
    adjusted = holm(np.moveaxis(p, 1, -1))  # K x B x P
    return (adjusted < alpha).mean(-1)


def _boot_transfer(ds: xr.Dataset, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Transfer ratios (S x T x norm x eps) and their bootstrap (... x B) from per-image changes."""
    change = ds["change"].transpose("source_model", "target_model", "norm", "eps", "image").values
    own = np.stack([change[j, j] for j in range(change.shape[1])])
    w = boot_weights(change.shape[-1], n_boot, seed, groups=_image_groups(ds))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = nanmean_last(change) / nanmean_last(own)[None]
        boot = boot_means(change, w) / boot_means(own, w)[None]
    return ratio, boot


def _mean_over(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """nanmean over the selected (source, target) entries and all norms / eps; keeps a trailing B axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = values[mask]  # K x norm x eps (x B)
        return np.nanmean(sel.reshape(-1, *sel.shape[3:]) if sel.ndim > 3 else sel.reshape(-1), axis=0)


def _pairs(ds: xr.Dataset, source: np.ndarray) -> tuple[np.ndarray, str]:
    s_arch = np.asarray(ds["source_architecture"].values).astype(str) if "source_architecture" in ds.coords else None
    t_arch = np.asarray(ds["target_architecture"].values).astype(str) if "target_architecture" in ds.coords else None
    m = len(ds["source_model"])
    off = ~np.eye(m, dtype=bool)
    if s_arch is None or t_arch is None or "unknown" in s_arch:
        return source[:, None] & off, "architectures unknown: all pairs A != B"
    return source[:, None] & (s_arch[:, None] != t_arch[None, :]), "pairs of different architectures"


def _cross_pairs(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, str]:
    """Cross-architecture (S x T) and same-architecture off-diagonal pair masks, for every source."""
    m = len(ds["source_model"])
    cross, how = _pairs(ds, np.ones(m, dtype=bool))
    same = ~cross & ~np.eye(m, dtype=bool)
    return cross, same, how


def _changes(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    change = ds["change"].transpose("source_model", "target_model", "norm", "eps", "image").values
    return change, np.stack([change[j, j] for j in range(change.shape[1])])


def _random_check(ds: xr.Dataset, sources: np.ndarray, mask: np.ndarray, n_boot: int, level: float,
                  seed: int) -> tuple[bool, str]:
    """Do the given sources' probes beat equal-norm random perturbations on the same pairs and images?"""
    if "random_change" not in ds:
        return False, "no random baselines in the transfer results (cannot show the probes beat noise): not held"
    change, own = _changes(ds)
    rand = ds["random_change"].transpose("noise", "source_model", "target_model", "norm", "eps", "image").values
    ok, parts = True, []
    n = change.shape[-1]
    for q, kind in enumerate(ds["noise"].values):
        diff = change - rand[q]
        fn = _per_source(diff, own, mask)
        v, lo, hi = _hierarchical(fn, n, [sources], lambda c: c[0], n_boot, level, seed, _image_groups(ds))
        ok &= bool(lo > 0)
        parts.append(f"probe - {kind} noise {v:.3f} [{lo:.3f}, {hi:.3f}]")
    return ok, "; ".join(parts)


def _standard_transfer(label: str, ds: xr.Dataset | None, poor: float, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "standard probes transfer poorly across architectures"
    stat = f"mean transfer ratio of standard models' probes to other architectures (poor: CI below {poor:g})"
    if ds is None:
        return _row(name, label, stat, note="not testable: no transfer results")
    _, standard = _groups(ds, "source_training")
    if not standard.any():
        return _row(name, label, stat, note="not testable: no standard source models (training coordinate)")
    cross, _, how = _cross_pairs(ds)
    if not (cross & standard[:, None]).any():
        return _row(name, label, stat, note="not testable: no pair of a standard source and another architecture")
    change, own = _changes(ds)
    value, lo, hi = _hierarchical(_per_source(change, own, cross), change.shape[-1], [standard], lambda c: c[0],
                                  n_boot, level, seed, _image_groups(ds))
    note = f"{int((cross & standard[:, None]).sum())} {how}, mean over norms and eps; {int(standard.sum())} standard sources"
    if "random_transfer" in ds:
        rt = ds["random_transfer"].transpose("noise", "source_model", "target_model", "norm", "eps").values
        note += "; random baselines on the same pairs " + ", ".join(
            f"{k} {float(_mean_over(rt[q], cross & standard[:, None])):.3f}" for q, k in enumerate(ds["noise"].values))
    return _row(name, label, stat, value, lo, hi, bool(hi < poor), note=note)


def _robust_transfer(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "robust probes transfer"
    stat = ("mean transfer ratio to other architectures: robust sources minus standard sources (same cross-architecture "
            "targets); must also beat equal-norm random perturbations")
    if ds is None:
        return _row(name, label, stat, note="not testable: no transfer results")
    robust, standard = _groups(ds, "source_training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard source models")
    cross, same, how = _cross_pairs(ds)
    # the same pairs for both classes: sources of architectures that have a robust and a standard member
    s_arch = np.asarray(ds["source_architecture"].values).astype(str) if "source_architecture" in ds.coords else None
    if s_arch is not None and "unknown" not in s_arch:
        both = sorted(set(s_arch[robust]) & set(s_arch[standard]))
        if both:
            keep = np.isin(s_arch, both)
            robust, standard = robust & keep, standard & keep
            how += f" (sources of architectures with both kinds: {', '.join(both)}, so both kinds share the targets)"
        else:
            how += " (no architecture has both kinds: the target sets differ between the kinds)"
    change, own = _changes(ds)
    n = change.shape[-1]
    fn = _per_source(change, own, cross)
    value, lo, hi = _hierarchical(fn, n, [robust, standard], lambda c: c[0] - c[1], n_boot, level, seed,
                                  _image_groups(ds))
    r_mean = float(np.nanmean(fn(np.full((1, n), 1.0 / n))[robust]))
    s_mean = float(np.nanmean(fn(np.full((1, n), 1.0 / n))[standard]))
    beats, rnote = _random_check(ds, robust, cross, n_boot, level, seed)
    same_v = float(_mean_over(*_ratio_and_mask(ds, same))) if same.any() else np.nan
    note = (f"robust {r_mean:.3f} vs standard {s_mean:.3f} on {how}, mean over norms and eps; robust sources vs "
            f"equal-norm random perturbations: {rnote}; same-architecture (teacher/student) transfer, reported apart: "
            f"{same_v:.3f} over {int(same.sum())} pairs; {_class_note(robust, standard)}")
    return _row(name, label, stat, value, lo, hi, bool(lo > 0 and beats), note=note)


def _ratio_and_mask(ds: xr.Dataset, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    change, own = _changes(ds)
    with np.errstate(invalid="ignore", divide="ignore"):
        return nanmean_last(change) / nanmean_last(own)[None], mask


def _robust_to_brain(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "robust probes transfer to the brain"
    stat = ("brain's change along the targeted direction in brain SD units (same eps): robust sources minus "
            "standard sources; robust must also beat equal-norm random perturbations")
    if ds is None or "brain_change" not in ds:
        return _row(name, label, stat, note="not testable: no image-computable brain in the transfer results")
    if "brain_abs" not in ds:
        return _row(name, label, stat, note="not testable: transfer results predate brain_abs (re-run the analysis)")
    robust, standard = _groups(ds, "source_training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard source models")
    dims = ("source_model", "norm", "eps", "image")
    ba = ds["brain_abs"].transpose(*dims).values
    cos = ds["brain_cos"].transpose(*dims).values
    n = ba.shape[-1]
    one = np.ones((ba.shape[0], 1), dtype=bool)
    value, lo, hi = _hierarchical(_per_source(ba, None, one), n, [robust, standard], lambda c: c[0] - c[1], n_boot,
                                  level, seed, _image_groups(ds))
    beats, parts = True, []
    if "brain_random_abs" in ds:
        ra = ds["brain_random_abs"].transpose("noise", *dims).values
        rc = ds["brain_random_cos"].transpose("noise", *dims).values
        for q, kind in enumerate(ds["noise"].values):
            v, l_, h_ = _hierarchical(_per_source(ba - ra[q], None, one), n, [robust], lambda c: c[0], n_boot, level,
                                      seed, _image_groups(ds))
            beats &= bool(l_ > 0)
            parts.append(f"robust probe - {kind} noise {v:.3f} SD [{l_:.3f}, {h_:.3f}], cosine under {kind} noise "
                         f"{float(np.nanmean(rc[q][robust])):.2f}")
    else:
        beats = False
        parts.append("no random baselines: not held")
    uni = np.full((1, n), 1.0 / n)
    mean = lambda arr, m: float(np.nanmean(_per_source(arr, None, one)(uni)[m]))  # noqa: E731
    note = (f"brain SD units: robust {mean(ba, robust):.3f} vs standard {mean(ba, standard):.3f}; pattern cosine "
            f"brain vs model robust {mean(cos, robust):.2f} vs standard {mean(cos, standard):.2f}; " + "; ".join(parts))
    if "predicted" in ds:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            bc = ds["brain_change"].transpose(*dims).values
            pc = ds["predicted"].transpose(*dims).values
            ratio = nanmean_last(bc) / nanmean_last(pc)
            note += (f"; secondary: brain / predicted change robust {np.nanmean(ratio[robust]):.3f} vs standard "
                     f"{np.nanmean(ratio[standard]):.3f}")
    if "brain_r" in ds:
        note += (f", closed-loop r robust {float(np.nanmean(ds['brain_r'].values[robust])):.2f} vs standard "
                 f"{float(np.nanmean(ds['brain_r'].values[standard])):.2f}")
    note += "; " + _class_note(robust, standard)
    return _row(name, label, stat, value, lo, hi, bool(lo > 0 and beats), note=note)


def _l2_linf(label: str, ds: xr.Dataset | None, threshold: float, level: float) -> dict[str, Any]:
    name = "l2 and linf target-wise sensitivity agree"
    stat = (f"Pearson R across targets, l2 vs linf at budgets matched by first-order effect, corrected for "
            f"attenuation (mean over models; paper .97; holds when the BCa lower bound >= {threshold:g})")
    if ds is None:
        return _row(name, label, stat, note="not testable: no l2_linf results")
    r = ds["r_model"].values
    value = float(np.nanmean(r))
    if "r_model_boot" in ds and "r_model_jack" in ds:
        boot = np.nanmean(ds["r_model_boot"].transpose("model", "boot").values, axis=0)
        jack = np.nanmean(ds["r_model_jack"].transpose("model", "jack").values, axis=0)
        lo, hi = bca_interval(value, boot, jack, level)
        lo, hi, how = float(lo), float(hi), "BCa over images"
    else:
        lo = hi = np.nan
        how = "results predate the BCa replicates: no interval, not held"
    note = f"{len(r)} models; {how}; per model " + ", ".join(f"{m}: {v:.2f}" for m, v in zip(ds["model"].values, r))
    if "r_model_uncorrected" in ds:
        note += f"; uncorrected mean {float(np.nanmean(ds['r_model_uncorrected'].values)):.2f}"
    if "matched_linf_eps" in ds:
        first = ds["matched_linf_eps"].isel(model=0)
        note += "; matched budgets (first model) " + ", ".join(
            f"l2 {float(e):g} ~ linf {float(v):.3g}" for e, v in zip(first["l2_eps"].values, first.values))
    return _row(name, label, stat, value, lo, hi, bool(np.isfinite(lo) and lo >= threshold), note=note)


def _axes_row(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    """Robust minus standard brain-axes excess over the mismatched-image null, on candidates of other architectures."""
    name = "robust models' local axes align better with the brain's"
    stat = ("brain alignment of local coding axes in units above the mismatched-image null (matched / mismatched - 1), "
            "robust minus standard, candidates of architectures other than the brain's, mean over ROIs")
    if ds is None or "brain_alignment_image" not in ds:
        return _row(name, label, stat, note="not testable: no coding-axes results with an image-computable brain")
    robust, standard = _groups(ds, "training")
    models = [str(m) for m in ds["model"].values]
    arch = np.asarray(ds["architecture"].values).astype(str)
    b = models.index(str(ds.attrs.get("brain", "brain"))) if str(ds.attrs.get("brain", "brain")) in models else -1
    cross = arch != (arch[b] if b >= 0 else "brain")
    if b >= 0:
        cross[b] = False
    robust, standard = robust & cross, standard & cross
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard candidates of another architecture than the brain's")
    al = ds["brain_alignment_image"].transpose("model", "roi", "image").values
    mm = ds["brain_mismatched_image"].transpose("model", "roi", "image").values

    def per_model(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(boot_means(al, w) / boot_means(mm, w) - 1, axis=1)  # M x K

    n = al.shape[-1]
    value, lo, hi = _hierarchical(per_model, n, [robust, standard], lambda c: c[0] - c[1], n_boot, level, seed,
                                  _image_groups(ds))
    uni = per_model(np.full((1, n), 1.0 / n))[:, 0]
    parts = ", ".join(f"{m} {uni[i]:.3f}" for i, m in enumerate(models) if robust[i] or standard[i])
    note = (f"{n} images, {ds.attrs.get('units', '?')} units, k={ds.attrs.get('k', '?')}; excess per model: {parts}")
    if "random_brain_excess" in ds:
        rnd = np.nanmean(ds["random_brain_excess"].transpose("model", "roi").values, axis=1)
        note += "; random-init null (same architecture, own readout): " + ", ".join(
            f"{m} {rnd[i]:.3f}" for i, m in enumerate(models) if (robust[i] or standard[i]) and np.isfinite(rnd[i]))
    note += f"; {_class_note(robust, standard)}"
    return _row(name, label, stat, value, lo, hi, bool(lo > 0), note=note)


def _semantics_rows(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> list[dict[str, Any]]:
    """Robust minus standard: each judge's log10 (probe change / stronger equal-norm noise's), and the
    low-frequency share minus 1/f noise's share."""
    name = "robust probes are more semantic"
    if ds is None or "noise" not in ds.coords:
        return [_row(name, label, "judge change and low-frequency share against equal-norm noise",
                     note="not testable: no semantics results with noise baselines")]
    robust, standard = _groups(ds, "training")
    if not robust.any() or not standard.any():
        return [_row(name, label, "judge change and low-frequency share against equal-norm noise",
                     note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} standard models")]
    n = ds.sizes["image"]
    groups = _image_groups(ds)
    note_cls = _class_note(robust, standard)
    rows = []
    if "judge_change" in ds and "judge_noise_change" in ds:
        for judge in ds["judge"].values:
            jp = ds["judge_change"].sel(judge=judge).transpose("model", "norm", "eps", "image").values
            jn = ds["judge_noise_change"].sel(judge=judge).transpose("noise", "model", "norm", "eps", "image").values
            flat_p = jp.reshape(jp.shape[0], -1, n)
            flat_n = jn.reshape(jn.shape[0], jn.shape[1], -1, n)

            def per_model(w: np.ndarray, fp: np.ndarray = flat_p, fn: np.ndarray = flat_n) -> np.ndarray:
                with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = np.log10(boot_means(fp, w) / boot_means(fn, w).max(0))
                    return np.nanmean(np.where(np.isfinite(r), r, np.nan), axis=1)

            v, lo, hi = _hierarchical(per_model, n, [robust, standard], lambda c: c[0] - c[1], n_boot, level, seed,
                                      groups)
            uni = per_model(np.full((1, n), 1.0 / n))[:, 0]
            kind = str(ds["judge_kind"].sel(judge=judge).values) if "judge_kind" in ds.coords else "?"
            if "judge_independent" in ds.coords and not bool(ds["judge_independent"].sel(judge=judge)):
                why = [p.split(": ", 1)[1] for p in str(ds.attrs.get("dependent_judges", "")).split("; ")
                       if p.startswith(f"{judge}: ")]
                rows.append(_row(f"{name} (judge {judge})", label, f"{kind} judge",
                                 note=f"not testable: judge {judge} is not independent ({', '.join(why) or '?'}); its "
                                 "change measures adversarial transfer to a relative of the models, not semantics"))
                continue
            rows.append(_row(f"{name} (judge {judge})", label,
                             f"log10(judge change under the probe / under the stronger equal-norm noise, white or 1/f), "
                             f"robust minus standard, mean over norms and eps ({kind} judge)", v, lo, hi, bool(lo > 0),
                             note=f"{n} images; per model " + ", ".join(
                                 f"{m} {uni[i]:.2f}" for i, m in enumerate(ds['model'].values)) + f"; {note_cls}"))
    share = ds["low_freq_share"].transpose("model", "norm", "eps", "image").values
    noise = ds["noise_low_freq_share"].sel(noise="pink" if "pink" in ds["noise"].values else ds["noise"].values[0])
    ex = share - noise.transpose("model", "norm", "eps", "image").values
    flat = ex.reshape(ex.shape[0], -1, n)

    def per_model_lf(w: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(boot_means(flat, w), axis=1)

    v, lo, hi = _hierarchical(per_model_lf, n, [robust, standard], lambda c: c[0] - c[1], n_boot, level, seed, groups)
    uni = per_model_lf(np.full((1, n), 1.0 / n))[:, 0]
    rows.append(_row(f"{name} (low-frequency share)", label,
                     f"energy share below {ds.attrs.get('cutoff_cycles_per_pixel', '?')} cycles/px minus that of "
                     "equal-norm 1/f noise, robust minus standard, mean over norms and eps", v, lo, hi, bool(lo > 0),
                     note=f"white noise share {ds.attrs.get('white_noise_share', float('nan')):.3f}; per model "
                     + ", ".join(f"{m} {uni[i]:.3f}" for i, m in enumerate(ds['model'].values)) + f"; {note_cls}"))
    return rows


def _attack_row(label: str, ds: xr.Dataset | None, poor: float, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    """Standard probes' cross-architecture transfer under the strongest control attack (survives: CI below ``poor``)."""
    name = "standard probes' poor transfer survives stronger attacks (input diversity, ensembles)"
    stat = (f"cross-architecture transfer ratio of standard models' probes under the strongest control attack "
            f"(mean over tested pairs, norms, eps); survives when the CI lies below {poor:g}")
    if ds is None:
        return _row(name, label, stat, note="not testable: no attack_control results (analyses.include attack_control)")
    variants = [str(v) for v in ds["variant"].values]
    change = ds["change"].transpose("variant", "source_model", "target_model", "norm", "eps", "image").values
    own = ds["own"].transpose("target_model", "norm", "eps", "image").values
    n = change.shape[-1]
    w = boot_weights(n, n_boot, seed, groups=_image_groups(ds))
    best, parts = None, []
    for vi, v in enumerate(variants):
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ratio = nanmean_last(change[vi]) / nanmean_last(own)[None]
            mask = np.isfinite(ratio)
            if not mask.any():
                parts.append(f"{v}: no tested pair")
                continue
            value = float(np.mean(ratio[mask]))
            boot = np.nanmean((boot_means(change[vi], w) / boot_means(own, w)[None])[mask], axis=0)
            plain = float(np.mean((nanmean_last(change[0]) / nanmean_last(own)[None])[mask]))
        lo, hi = ci(boot, level)
        parts.append(f"{v} {value:.3f} [{float(lo):.3f}, {float(hi):.3f}] (plain on the same {int(mask.sum())} pairs "
                     f"{plain:.3f})")
        if v != "plain" and (best is None or value > best[0]):
            best = (value, float(lo), float(hi), v)
    if "brain_change" in ds:
        parts.append("brain SD change " + ", ".join(
            f"{v} {float(ds['brain_change'].sel(variant=v)):.3f}" for v in variants))
    note = f"{n} images; ensembles: {ds.attrs.get('ensembles', '?')}; " + "; ".join(parts)
    if best is None:
        return _row(name, label, stat, note="not testable: no control attack had a tested pair; " + note)
    value, lo, hi, v = best
    return _row(name, label, stat, value, lo, hi, bool(hi < poor), note=f"strongest: {v}; " + note)
