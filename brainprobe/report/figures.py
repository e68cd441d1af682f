"""Figures of a run, one function per analysis; each takes the analysis' xarray Dataset.

Every function returns a matplotlib ``Figure`` (Agg backend) with a title, axis labels with
units and a legend where colours or styles carry meaning. Save with
:func:`brainprobe.report._style.save_figure` (PNG + SVG).

The variables each function reads are listed in its docstring (dims in brackets); the
analysis functions of :mod:`brainprobe.analysis` write them. Dims not named are averaged over
(``image``) or selected with the function's arguments.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from brainprobe.errors import DataError
from brainprobe.report._style import (
    plain_log_axis,
    finish,
    BRAIN_COLOR,
    eps_ticks,
    NORM_LABEL,
    ROBUST_COLOR,
    STANDARD_COLOR,
    eps_scale,
    finite,
    model_colors,
    model_training,
    mpl,
    short,
)


def pick(ds: xr.Dataset, names: Sequence[str], what: str) -> xr.DataArray:
    """The first variable of ``ds`` among ``names``; DataError naming the analysis otherwise."""
    for name in names:
        if name in ds.data_vars:
            return ds[name]
    label = ds.attrs.get("_group", ds.attrs.get("analysis", what))
    raise DataError(
        f"results group '{label}' has none of the variables {list(names)} needed for the {what} figure "
        f"(has {sorted(ds.data_vars)}); rebuild the run with a matching brainprobe version"
    )


def _optional(ds: xr.Dataset, names: Sequence[str]) -> xr.DataArray | None:
    for name in names:
        if name in ds.data_vars:
            return ds[name]
    return None


def _reduce(da: xr.DataArray, keep: Sequence[str]) -> xr.DataArray:
    """Mean over every dim not in ``keep`` (NaN-aware)."""
    drop = [d for d in da.dims if d not in keep]
    return da.mean(drop, skipna=True) if drop else da


def _models(da: xr.DataArray, dim: str = "model") -> list[str]:
    return [str(m) for m in da[dim].values]


def predictivity_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Grouped bars of noise-ceiling-normalised predictivity per ROI and model.

    Reads ``roi_r_normalised`` [model, roi] (ROI median over targets) with its bootstrap CI
    ``roi_r_normalised_ci`` [model, roi, bound=low/high]; falls back to ``r_normalised``
    [model, target] with a ``roi_of`` coord (summarised by the ROI median, no CI), and to the
    raw ``roi_r`` when no noise ceiling is known.
    """
    plt = mpl()
    da = pick(ds, ["roi_r_normalised", "r_normalised", "roi_r", "r"], "predictivity")
    normalised = "normalised" in str(da.name)
    name = str(da.name)
    ci_da = _optional(ds, [f"{name}_ci"])
    if "roi" not in da.dims and "target" in da.dims:
        roi_coord = "roi_of" if "roi_of" in da.coords else "roi"
        da = da.groupby(roi_coord).median().rename({roi_coord: "roi"})
        ci_da = None
    da = _reduce(da, ["model", "roi"]).transpose("model", "roi")
    models, rois = _models(da), [str(r) for r in da["roi"].values]
    robust = model_training(ds, models)
    colors = model_colors(robust)
    fig, ax = plt.subplots(figsize=(max(5.5, 0.35 * len(rois) * max(1, len(models)) + 3), 3.6))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(rois))
    for i, m in enumerate(models):
        vals = finite(da.sel(model=m).values)
        yerr = None
        if ci_da is not None and "bound" in ci_da.dims:
            c = ci_da.sel(model=m).transpose("roi", "bound")
            lo_m, hi_m = finite(c.sel(bound="low").values), finite(c.sel(bound="high").values)
            yerr = np.nan_to_num(np.abs(np.vstack([vals - lo_m, hi_m - vals])))
        ax.bar(x + (i - (len(models) - 1) / 2) * width, np.nan_to_num(vals), width, yerr=yerr, color=colors[m],
               label=m, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, rois)
    ax.set_xlabel("ROI")
    ax.set_ylabel("predictivity r / noise ceiling" if normalised else "predictivity r (Pearson)")
    ax.set_title("Predictivity per model and ROI (median over targets, 95% CI)" + title_suffix)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="model (blue: robust)")
    finish(fig)
    return fig


def sensitivity_figure(ds: xr.Dataset, *, roi: str | None = None, title_suffix: str = ""):
    """Response change vs budget, one panel per norm, robust (blue) vs standard (orange).

    Reads ``curve`` [model, norm, eps, roi] (or ``change`` [..., image], averaged over images) in
    units of each ROI's across-image SD and, when present, ``curve_ci_low`` / ``curve_ci_high``.
    Budgets a norm was not probed at are NaN and skipped. ``roi=None`` averages over ROIs.
    """
    plt = mpl()
    da = pick(ds, ["curve", "change", "sensitivity"], "sensitivity")
    if roi is not None and "roi" in da.dims:
        da = da.sel(roi=roi)
    keep = ["model", "norm", "eps"]
    mean = _reduce(da, keep)
    lo = _optional(ds, [f"{da.name}_ci_low"])
    hi = _optional(ds, [f"{da.name}_ci_high"])
    if roi is not None:
        lo = lo.sel(roi=roi) if lo is not None and "roi" in lo.dims else lo
        hi = hi.sel(roi=roi) if hi is not None and "roi" in hi.dims else hi
    norms = [str(n) for n in mean["norm"].values] if "norm" in mean.dims else ["l2"]
    models = _models(mean)
    robust = model_training(ds, models)
    colors = model_colors(robust)
    fig, axes = plt.subplots(1, len(norms), figsize=(4.4 * len(norms) + 1.8, 3.5), squeeze=False)
    for ax, norm in zip(axes[0], norms):
        sub = mean.sel(norm=norm) if "norm" in mean.dims else mean
        scale, xlabel = eps_scale(norm)
        shown: set[float] = set()
        for m in models:
            line = sub.sel(model=m)
            eps = finite(line["eps"].values) * scale
            y = finite(line.values)
            ok = np.isfinite(y) & (eps > 0)
            ax.plot(eps[ok], y[ok], "o-", ms=3, color=colors[m], label=m, lw=1.4)
            if lo is not None and hi is not None:
                lo_m = _reduce(lo, keep).sel(model=m)
                hi_m = _reduce(hi, keep).sel(model=m)
                if "norm" in lo_m.dims:
                    lo_m, hi_m = lo_m.sel(norm=norm), hi_m.sel(norm=norm)
                ax.fill_between(eps[ok], finite(lo_m.values)[ok], finite(hi_m.values)[ok], color=colors[m], alpha=0.15, lw=0)
            shown.update(eps[ok].tolist())
        eps_ticks(ax, shown)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("response change (ROI SDs across images)")
        ax.set_title(f"{NORM_LABEL.get(norm, norm)} probes")
    where = f"ROI {roi}" if roi is not None else "mean over ROIs"
    fig.suptitle(f"Sensitivity: predicted response change vs budget ({where}; 95% CI)" + title_suffix, fontsize=10)
    axes[0, -1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model (blue: robust)")
    finish(fig)
    return fig


def minimal_eps_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Bars of the minimal budget reaching the criterion change, per model, one panel per norm.

    Reads ``min_eps`` [model, norm, (roi), (image)] (or ``minimal_eps``); image and ROI are
    summarised by the median (never-reached ``inf`` included). Models that never reach the criterion within
    the grid (NaN / inf) are marked "not reached".
    """
    plt = mpl()
    da = pick(ds, ["min_eps", "minimal_eps", "min_eps_image"], "minimal-eps")
    drop = [d for d in da.dims if d not in ("model", "norm")]
    med = da.median(drop, skipna=True) if drop else da  # inf (never reached) counts in the median
    norms = [str(n) for n in med["norm"].values] if "norm" in med.dims else ["l2"]
    models = _models(med)
    robust = model_training(ds, models)
    colors = model_colors(robust)
    crit = ds.attrs.get("criterion", 1.0)
    crit = f"{crit:g} ROI SD" if isinstance(crit, (int, float, np.floating)) else str(crit)
    fig, axes = plt.subplots(1, len(norms), figsize=(5.2 * len(norms) + 0.6, 0.32 * len(models) + 1.9), squeeze=False)
    for j, (ax, norm) in enumerate(zip(axes[0], norms)):
        sub = med.sel(norm=norm) if "norm" in med.dims else med
        scale, _ = eps_scale(norm)
        vals = finite([float(sub.sel(model=m)) for m in models]) * scale
        y = np.arange(len(models))
        ax.barh(y, np.nan_to_num(vals, nan=0.0), color=[colors[m] for m in models])
        for yi, v in zip(y, vals):
            if not np.isfinite(v):
                ax.text(0, yi, " not reached", ha="left", va="center", fontsize=7, color="0.3")
        ax.set_yticks(y, [short(m) for m in models], fontsize=7)
        ax.invert_yaxis()
        positive = vals[np.isfinite(vals) & (vals > 0)]
        if positive.size and positive.max() / positive.min() > 20:
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_xlabel("minimal ε (ℓ∞, units of 1/255)" if norm == "linf" else "minimal ε (ℓ2, pixels in [0, 1])")
        ax.set_ylabel("model")
        ax.set_title(f"{NORM_LABEL.get(norm, norm)}")
    from matplotlib.patches import Patch

    axes[0, -1].legend(handles=[Patch(color=ROBUST_COLOR, label="robust"), Patch(color=STANDARD_COLOR, label="standard")],
                       loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"Minimal budget for a {crit} change (median over images)" + title_suffix, fontsize=10)
    finish(fig)
    return fig


def discriminability_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Predictivity vs sensitivity (and other scores) side by side as model discriminators.

    Reads ``fraction_significant`` [score] (fraction of model pairs whose difference is
    significant, paired bootstrap, Holm) and, when present, ``variance_ratio`` [score]
    (between-model / within-model bootstrap variance). Other dims (roi, norm) are averaged.
    """
    plt = mpl()
    frac = _reduce(pick(ds, ["fraction_significant", "fraction_separated"], "discriminability"), ["score"])
    ratio = _optional(ds, ["variance_ratio"])
    scores = [str(s) for s in frac["score"].values]
    palette = {"predictivity": "#756bb1", "sensitivity": "#e6550d", "transfer": BRAIN_COLOR}
    cols = [palette.get(s.split("_")[0], "#636363") for s in scores]
    n_panels = 2 if ratio is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(4.0 * n_panels + 0.6, 3.5), squeeze=False)
    x = np.arange(len(scores))
    ax = axes[0, 0]
    ax.bar(x, finite(frac.values), color=cols)
    for xi, v in zip(x, finite(frac.values)):
        ax.text(xi, (v if np.isfinite(v) else 0) + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xticks(x, scores, rotation=15)
    ax.set_xlabel("score used to compare models")
    ax.set_ylabel("pairs separated (fraction; α=.05, Holm)")
    ax.set_title("Pairs told apart")
    if ratio is not None:
        ax = axes[0, 1]
        r = _reduce(ratio, ["score"]).sel(score=frac["score"].values)
        ax.bar(x, finite(r.values), color=cols)
        for xi, v in zip(x, finite(r.values)):
            if np.isfinite(v):
                ax.text(xi, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_xticks(x, scores, rotation=15)
        ax.set_xlabel("score used to compare models")
        ax.set_ylabel("between / within-model variance (ratio)")
        ax.set_title("Separation strength")
    fig.suptitle("Discriminability: predictivity vs sensitivity, same bootstrap images" + title_suffix, fontsize=10)
    finish(fig)
    return fig


def _heatmap(ax, matrix: np.ndarray, rows: list[str], cols: list[str], *, vmin=None, vmax=None, cmap="viridis"):
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(np.arange(len(cols)), [short(c, 24) for c in cols], rotation=40, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(rows)), [short(r, 30) for r in rows], fontsize=7)
    if matrix.size <= 144:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                v = matrix[i, j]
                if np.isfinite(v):
                    norm_v = (v - (vmin if vmin is not None else np.nanmin(matrix))) / max(
                        1e-12, (vmax if vmax is not None else np.nanmax(matrix)) - (vmin if vmin is not None else np.nanmin(matrix))
                    )
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if norm_v < 0.55 else "black")
    return im


def _select_norm_eps(da: xr.DataArray, norm: str | None, eps: float | None) -> tuple[xr.DataArray, str, float | None]:
    """Select one norm and the budget nearest ``eps`` among those probed under that norm.

    The eps coordinate is the union of the norms' grids (NaN where a norm was not probed);
    the default budget is the middle of the selected norm's own grid.
    """
    if "norm" in da.dims:
        norm = norm or str(da["norm"].values[0])
        da = da.sel(norm=norm)
    if "eps" in da.dims:
        other = [d for d in da.dims if d != "eps"]
        have = np.isfinite(da).any(other) if other else np.isfinite(da)
        grid = finite(da["eps"].values)[np.asarray(have.values, dtype=bool)]
        if grid.size == 0:
            grid = finite(da["eps"].values)
        if eps is None:
            eps = float(grid[len(grid) // 2])
        eps = float(grid[np.argmin(np.abs(np.log(grid) - np.log(eps)))])
        da = da.sel(eps=eps)
    return da, norm or "l2", eps


def _eps_text(norm: str, eps: float | None) -> str:
    if eps is None:
        return ""
    scale, _ = eps_scale(norm)
    return f", ε = {eps * scale:.3g}" + ("/255" if norm == "linf" else "")


def transfer_figure(ds: xr.Dataset, *, norm: str | None = None, eps: float | None = None, title_suffix: str = ""):
    """Heatmap of probe transfer: source model (columns) -> target model (rows), plus a brain row.

    Reads ``transfer`` [source_model, target_model, norm, eps] (target's change in the direction
    the source targeted / the target's own white-box change) and, when the brain is
    image-computable, ``brain_ratio`` [source_model, norm, eps] (brain's actual change / the
    source's predicted change). ``eps`` defaults to the middle of the norm's grid, ``norm`` to
    the first.
    """
    plt = mpl()
    da = pick(ds, ["transfer", "transfer_ratio"], "transfer")
    da, norm, eps = _select_norm_eps(da, norm, eps)
    mat = _reduce(da, ["source_model", "target_model"]).transpose("target_model", "source_model")
    sources = [str(s) for s in mat["source_model"].values]
    targets = [str(t) for t in mat["target_model"].values]
    matrix = finite(mat.values)
    rows = list(targets)
    brain = _optional(ds, ["brain_ratio", "brain_transfer"])
    if brain is not None:
        b, _, _ = _select_norm_eps(brain, norm, eps)
        b = _reduce(b, ["source_model"]).sel(source_model=mat["source_model"].values)
        matrix = np.vstack([matrix, finite(b.values)[None, :]])
        rows.append(f"brain: {ds.attrs.get('brain') or 'simulated'}")
    ok = np.isfinite(matrix)
    vmin = min(0.0, float(matrix[ok].min())) if ok.any() else 0.0
    vmax = max(1.0, float(matrix[ok].max())) if ok.any() else 1.0
    fig, ax = plt.subplots(figsize=(0.62 * len(sources) + 4.2, 0.42 * len(rows) + 2.4))
    im = _heatmap(ax, matrix, rows, sources, vmin=vmin, vmax=vmax)
    if brain is not None:
        ax.axhline(len(targets) - 0.5, color="white", lw=2.5)
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label("transfer (target change / own white-box change)", fontsize=7)
    ax.set_xlabel("probe made on (source model)")
    ax.set_ylabel("probe applied to (target)")
    ax.set_title(f"Probe transfer ({NORM_LABEL.get(norm, norm)}{_eps_text(norm, eps)})" + title_suffix)
    finish(fig)
    return fig


def axes_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Heatmap of local coding-axes alignment between models (the brain included when present).

    Reads ``alignment`` [roi, model_a, model_b] (mean squared cosine of principal angles, 0..1,
    averaged over ROIs here) and, for the chance line, ``chance`` [roi]. When the run has an
    image-computable brain it is one of the models (``attrs['brain']``); its row is set apart.
    """
    plt = mpl()
    da = pick(ds, ["alignment", "axes_alignment"], "coding-axes")
    if "model_a" in da.dims:
        row_dim, col_dim = "model_a", "model_b"
    elif "source_model" in da.dims:
        row_dim, col_dim = "target_model", "source_model"
    else:
        raise DataError(f"coding-axes alignment has dims {da.dims}; expected model_a, model_b")
    mat = _reduce(da, [row_dim, col_dim]).transpose(row_dim, col_dim)
    rows = [str(s) for s in mat[row_dim].values]
    cols = [str(s) for s in mat[col_dim].values]
    matrix = finite(mat.values)
    brain = str(ds.attrs.get("brain") or "")
    if brain and brain in rows:  # move the brain's row last and mark it
        order = [i for i, r in enumerate(rows) if r != brain] + [rows.index(brain)]
        matrix = matrix[order]
        rows = [rows[i] for i in order]
        rows[-1] = "brain (simulated)" if brain == "brain" else f"brain: {brain}"
    fig, ax = plt.subplots(figsize=(0.62 * len(cols) + 4.2, 0.42 * len(rows) + 2.4))
    im = _heatmap(ax, matrix, rows, cols, vmin=0.0, vmax=1.0, cmap="magma")
    if brain and rows[-1].startswith("brain:"):
        ax.axhline(len(rows) - 1.5, color="white", lw=2.5)
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    chance = _optional(ds, ["chance"])
    label = "alignment (mean cos² of principal angles)"
    if chance is not None:
        label += f"; chance ≈ {float(chance.mean()):.2g}"
    cb.set_label(label, fontsize=7)
    ax.set_xlabel("model")
    ax.set_ylabel("model")
    k = ds.attrs.get("k")
    ax.set_title("Local coding-axes alignment" + (f" (top-{k} subspaces)" if k else "") + title_suffix)
    finish(fig)
    return fig


def l2_linf_figure(ds: xr.Dataset, *, max_panels: int = 8, title_suffix: str = ""):
    """Scatter of target-wise (voxel-wise) sensitivity under l2 vs linf, one panel per model.

    Reads ``target_sensitivity_l2`` [model, l2_eps, target] and ``target_sensitivity_linf``
    [model, linf_eps, target] (each target's mean |change| / its across-image SD under a Shift
    probe) at the middle budget of each grid, and ``r`` [model, l2_eps, linf_eps] (Pearson R
    across targets) at that pair; ``r_model`` (Fisher-z mean over budget pairs) is shown too.
    """
    plt = mpl()
    l2 = pick(ds, ["target_sensitivity_l2", "l2"], "l2 vs linf")
    linf = pick(ds, ["target_sensitivity_linf", "linf"], "l2 vs linf")
    sel: dict[str, float] = {}
    for da, dim in ((l2, "l2_eps"), (linf, "linf_eps")):
        if dim in da.dims:
            sel[dim] = float(da[dim].values[len(da[dim]) // 2])
    l2 = l2.sel({k: v for k, v in sel.items() if k in l2.dims})
    linf = linf.sel({k: v for k, v in sel.items() if k in linf.dims})
    r = _optional(ds, ["r"])
    r_model = _optional(ds, ["r_model"])
    models = _models(l2)[:max_panels]
    robust = model_training(ds, models)
    colors = model_colors(robust)
    n = len(models)
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 0.4, 2.8 * nrows + 0.7), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, models):
        a = finite(_reduce(l2.sel(model=m), ["target"]).values)
        b = finite(_reduce(linf.sel(model=m), ["target"]).values)
        ok = np.isfinite(a) & np.isfinite(b)
        if r is not None and set(sel) <= set(r.dims):
            rv = float(r.sel(model=m).sel(sel))
        else:
            rv = float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        label = f"R = {rv:.2f}"
        if r_model is not None:
            label += f"\nall budgets: {float(r_model.sel(model=m)):.2f}"
        ax.scatter(a[ok], b[ok], s=6, alpha=0.6, color=colors[m], lw=0, label=label)
        ax.set_title(short(m, 30), fontsize=8)
        ax.set_xlabel("ℓ2 |change| (target SDs)")
        ax.set_ylabel("ℓ∞ |change| (target SDs)")
        ax.legend(fontsize=7, frameon=False, loc="upper left", handlelength=0, handletextpad=0)
    budgets = []
    if "l2_eps" in sel:
        budgets.append(f"ℓ2 ε = {sel['l2_eps']:.3g}")
    if "linf_eps" in sel:
        budgets.append(f"ℓ∞ ε = {sel['linf_eps'] * 255:.3g}/255")
    fig.suptitle("Voxel-wise sensitivity: ℓ2 vs ℓ∞ probes, Pearson R across targets"
                 + (f" ({', '.join(budgets)})" if budgets else "") + title_suffix, fontsize=10)
    finish(fig)
    return fig


def linearity_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Achieved change vs the box-constrained first-order optimum as the budget grows.

    Reads ``actual`` and ``predicted`` [model, norm, eps, image] (objective units, averaged over
    images here) and ``eps_depart`` [model, norm] (budget where they part by the tolerance,
    ``inf`` when they never do), marked with a dotted vertical line.
    """
    plt = mpl()
    actual = pick(ds, ["actual", "actual_change"], "linearity")
    first = pick(ds, ["predicted", "first_order"], "linearity")
    dep = _optional(ds, ["eps_depart", "departure_eps"])
    keep = ["model", "norm", "eps"]
    actual, first = _reduce(actual, keep), _reduce(first, keep)
    norms = [str(n) for n in actual["norm"].values] if "norm" in actual.dims else ["l2"]
    models = _models(actual)
    robust = model_training(ds, models)
    colors = model_colors(robust)
    tol = ds.attrs.get("tolerance", 0.1)
    fig, axes = plt.subplots(1, len(norms), figsize=(4.4 * len(norms) + 2.0, 3.5), squeeze=False)
    for ax, norm in zip(axes[0], norms):
        scale, xlabel = eps_scale(norm)
        shown: set[float] = set()
        for m in models:
            a = actual.sel(model=m)
            f = first.sel(model=m)
            if "norm" in a.dims:
                a, f = a.sel(norm=norm), f.sel(norm=norm)
            eps = finite(a["eps"].values) * scale
            av, fv = finite(a.values), finite(f.values)
            ok_a = np.isfinite(av) & (av > 0)
            ok_f = np.isfinite(fv) & (fv > 0)
            ax.plot(eps[ok_a], av[ok_a], "o-", ms=3, color=colors[m], lw=1.4, label=f"{m}")
            ax.plot(eps[ok_f], fv[ok_f], "--", color=colors[m], lw=1.0)
            shown.update(eps[ok_a].tolist())
            if dep is not None:
                d = dep.sel(model=m)
                d = d.sel(norm=norm) if "norm" in d.dims else d
                if np.isfinite(float(d)):
                    ax.axvline(float(d) * scale, color=colors[m], lw=0.8, ls=":")
        eps_ticks(ax, shown)
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("objective change (objective units)")
        ax.set_title(f"{NORM_LABEL.get(norm, norm)} probes")
    from matplotlib.lines import Line2D

    handles, labels = axes[0, -1].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", lw=1.4, marker="o", ms=3), Line2D([], [], color="0.3", ls="--"),
                Line2D([], [], color="0.3", ls=":")]
    labels += ["actual (PGD)", "first-order optimum", f"{float(tol):.0%} departure"]
    axes[0, -1].legend(handles, labels, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Linearity: achieved change vs box-constrained first-order prediction" + title_suffix, fontsize=10)
    finish(fig)
    return fig


def convergence_figure(ds: xr.Dataset, *, title_suffix: str = ""):
    """Fraction of the first-order bound the probes reach at the smallest budget, per model x norm.

    Reads ``fraction`` [model, norm, image] (achieved objective / first-order bound, see
    :mod:`brainprobe.probes.convergence`) and ``eps`` [norm]; bars are medians over images, ticks
    each image, and the dashed line the convergence threshold (``threshold`` attribute, 0.95).
    """
    plt = mpl()
    frac = pick(ds, ["fraction"], "convergence")
    models = _models(frac)
    norms = [str(n) for n in frac["norm"].values]
    robust = model_training(ds, models)
    colors = model_colors(robust)
    thr = float(ds.attrs.get("threshold", 0.95))
    fig, axes = plt.subplots(1, len(norms), figsize=(3.2 * len(norms) + 1.6, 0.45 * len(models) + 1.8),
                             squeeze=False, sharey=True)
    for ax, norm in zip(axes[0], norms):
        for i, m in enumerate(models):
            v = np.asarray(frac.sel(model=m, norm=norm).values, dtype=float)
            v = v[np.isfinite(v)]
            if not v.size:
                ax.text(0.02, i, "no bound", va="center", fontsize=7, color="0.4")
                continue
            med = float(np.median(v))
            ax.barh(i, med, color=colors[m], alpha=0.85, height=0.6)
            ax.plot(v, np.full(v.shape, i), "|", color="0.15", ms=8)
            ax.text(max(med, float(v.max())) + 0.01, i, f"{med:.2f}", va="center", fontsize=7,
                    color="#b2182b" if med < thr else "0.1")
        ax.axvline(thr, color="#b2182b", ls="--", lw=0.9)
        ax.axvline(1.0, color="0.4", lw=0.6)
        ax.set_yticks(np.arange(len(models)), [short(m) for m in models], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.15)
        eps = float(ds["eps"].sel(norm=norm)) if "eps" in ds else float("nan")
        ax.set_title(f"{NORM_LABEL.get(norm, norm)}{_eps_text(norm, eps)}", fontsize=9)
        ax.set_xlabel("fraction of the first-order bound")
        ax.set_ylabel("model")
    fig.suptitle(f"Probe convergence at the smallest budget{title_suffix}", fontsize=10)
    finish(fig)
    return fig


FIGURES = {
    "predictivity": [("predictivity", predictivity_figure)],
    "sensitivity": [("sensitivity", sensitivity_figure), ("minimal_eps", minimal_eps_figure)],
    "discriminability": [("discriminability", discriminability_figure)],
    "transfer": [("transfer", transfer_figure)],
    "axes": [("axes", axes_figure)],
    "l2_linf": [("l2_linf", l2_linf_figure)],
    "linearity": [("linearity", linearity_figure)],
    "convergence": [("convergence", convergence_figure)],
}
"""analysis group name -> [(figure stem, function)], in report order."""
