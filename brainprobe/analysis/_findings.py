"""findings(): the paper's findings as one table, measured on the user's models and data."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

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

    Parameters
    ----------
    results : dict
        Either ``{analysis: Dataset}`` for one dataset / brain (labelled ``"data"``), or
        ``{dataset_label: {analysis: Dataset}}`` (the layout of results.nc). Analyses used, by
        name: ``sensitivity``, ``discriminability`` (with scores ``sensitivity`` and
        ``predictivity``), ``transfer``, ``l2_linf``. Models are grouped by the ``training``
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
        rows.append(_separation(label, analyses.get("discriminability"), n_boot, level, w_seed))
        rows.append(_standard_transfer(label, analyses.get("transfer"), poor_transfer, n_boot, level, w_seed))
        rows.append(_robust_transfer(label, analyses.get("transfer"), n_boot, level, w_seed))
        rows.append(_robust_to_brain(label, analyses.get("transfer"), n_boot, level, w_seed))
        rows.append(_l2_linf(label, analyses.get("l2_linf"), r_threshold, level))
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


def _robust_eps(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name, stat = "robust models need larger eps", "sensitivity AUC, standard / robust (> 1: robust need larger eps)"
    if ds is None:
        return _row(name, label, stat, note="not testable: no sensitivity results")
    robust, standard = _groups(ds, "training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard models (training coordinate)")
    auc = ds["auc_image"].transpose("model", "norm", "roi", "image").values
    w = boot_weights(auc.shape[-1], n_boot, seed)
    b = boot_means(auc, w)  # model x norm x roi x B
    ratio_b = b[standard].mean((0, 1, 2)) / b[robust].mean((0, 1, 2))
    value = auc[standard].mean() / auc[robust].mean()
    lo, hi = ci(ratio_b, level)
    note = f"{int(standard.sum())} standard vs {int(robust.sum())} robust models, mean over norms and ROIs"
    if "min_eps" in ds:
        med = ds["min_eps"].transpose("model", "norm", "roi").values
        per_norm = [f"{nm} median min eps {np.median(med[robust, i]):.3g} (robust) vs {np.median(med[standard, i]):.3g}"
                    for i, nm in enumerate(ds["norm"].values)]
        note += "; " + "; ".join(per_norm)
    return _row(name, label, stat, value, lo, hi, bool(lo > 1), note=note)


def _separation(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "sensitivity separates more model pairs than predictivity"
    stat = "fraction of model pairs separated (Holm), sensitivity minus predictivity"
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
    w = boot_weights(change.shape[-1], n_boot, seed)
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


def _standard_transfer(label: str, ds: xr.Dataset | None, poor: float, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "standard probes transfer poorly across architectures"
    stat = f"mean transfer ratio of standard models' probes to other architectures (poor: CI below {poor:g})"
    if ds is None:
        return _row(name, label, stat, note="not testable: no transfer results")
    _, standard = _groups(ds, "source_training")
    if not standard.any():
        return _row(name, label, stat, note="not testable: no standard source models (training coordinate)")
    mask, how = _pairs(ds, standard)
    if not mask.any():
        return _row(name, label, stat, note="not testable: no pair of a standard source and another architecture")
    ratio, boot = _boot_transfer(ds, n_boot, seed)
    value = float(_mean_over(ratio, mask))
    lo, hi = ci(_mean_over(boot, mask), level)
    return _row(name, label, stat, value, lo, hi, bool(hi < poor), note=f"{int(mask.sum())} {how}, mean over norms and eps")


def _robust_transfer(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "robust probes transfer"
    stat = "mean transfer ratio to other models: robust sources minus standard sources"
    if ds is None:
        return _row(name, label, stat, note="not testable: no transfer results")
    robust, standard = _groups(ds, "source_training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard source models")
    m = len(ds["source_model"])
    off = ~np.eye(m, dtype=bool)
    ratio, boot = _boot_transfer(ds, n_boot, seed)
    r_mean = _mean_over(ratio, robust[:, None] & off)
    s_mean = _mean_over(ratio, standard[:, None] & off)
    diff_b = _mean_over(boot, robust[:, None] & off) - _mean_over(boot, standard[:, None] & off)
    lo, hi = ci(diff_b, level)
    return _row(name, label, stat, float(r_mean - s_mean), lo, hi, bool(lo > 0),
                note=f"robust {float(r_mean):.3f} vs standard {float(s_mean):.3f}, mean over targets, norms and eps")


def _robust_to_brain(label: str, ds: xr.Dataset | None, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    name = "robust probes transfer to the brain"
    stat = "brain's change / model-predicted change: robust sources minus standard sources"
    if ds is None or "brain_change" not in ds:
        return _row(name, label, stat, note="not testable: no image-computable brain in the transfer results")
    robust, standard = _groups(ds, "source_training")
    if not robust.any() or not standard.any():
        return _row(name, label, stat, note=f"not testable: {int(robust.sum())} robust and {int(standard.sum())} "
                    "standard source models")
    bc = ds["brain_change"].transpose("source_model", "norm", "eps", "image").values
    pc = ds["predicted"].transpose("source_model", "norm", "eps", "image").values
    w = boot_weights(bc.shape[-1], n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio = nanmean_last(bc) / nanmean_last(pc)  # S x norm x eps
        boot = boot_means(bc, w) / boot_means(pc, w)
        rv, sv = np.nanmean(ratio[robust]), np.nanmean(ratio[standard])
        diff_b = np.nanmean(boot[robust], axis=(0, 1, 2)) - np.nanmean(boot[standard], axis=(0, 1, 2))
    lo, hi = ci(diff_b, level)
    rr = float(np.nanmean(ds["brain_r"].values[robust])) if "brain_r" in ds else np.nan
    rs = float(np.nanmean(ds["brain_r"].values[standard])) if "brain_r" in ds else np.nan
    return _row(name, label, stat, float(rv - sv), lo, hi, bool(lo > 0),
                note=f"robust {rv:.3f} vs standard {sv:.3f}; closed-loop r across images robust {rr:.2f} vs standard {rs:.2f}")


def _l2_linf(label: str, ds: xr.Dataset | None, threshold: float, level: float) -> dict[str, Any]:
    name = "l2 and linf target-wise sensitivity agree"
    stat = f"Pearson R across targets, l2 vs linf (mean over models by Fisher z; paper .97; holds at >= {threshold:g})"
    if ds is None:
        return _row(name, label, stat, note="not testable: no l2_linf results")
    r = np.clip(ds["r_model"].values, -0.999999, 0.999999)
    value = float(np.tanh(np.arctanh(r).mean()))
    if "r_model_boot" in ds:
        b = np.clip(ds["r_model_boot"].transpose("model", "boot").values, -0.999999, 0.999999)
        lo, hi = ci(np.tanh(np.arctanh(b).mean(0)), level)
    else:
        lo = hi = np.nan
    return _row(name, label, stat, value, lo, hi, bool(value >= threshold),
                note=f"{len(r)} models; per model " + ", ".join(f"{m}: {v:.2f}" for m, v in zip(ds['model'].values, r)))
