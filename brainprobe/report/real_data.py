"""Figures and tables of the REAL panel (RSA with human / monkey IT and its fragility)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainprobe.report._style import (
    BRAIN_COLOR,
    NORM_LABEL,
    eps_scale,
    finish,
    model_colors,
    model_training,
    mpl,
    save_figure,
    short,
)

RSA_CAPTION = (
    "REAL data. RSA (Pearson r between RDMs, 1 - Pearson r dissimilarities) of each model's best layer "
    "(chosen on all subjects; leave-one-subject-out score as a dot) with the human IT RDMs of 4 subjects "
    "(bars: mean over subjects, whiskers: 95% rsatoolbox bootstrap over stimuli and subjects) and with monkey IT "
    "(diamonds). Grey band: human IT's lower-upper noise ceiling across subjects (monkey IT is one RDM, with no "
    "ceiling; its diamonds are not comparable with the band)."
)
FRAGILITY_CAPTION = (
    "REAL data. Each model's RSA with human IT after PGD perturbations of all images at once, per-image budget on "
    "the x axis (0 = clean): solid lines raise the score, dashed lines lower it. Human IT's RDM is held fixed "
    "(assumed unchanged below the perceptual threshold; docs/real_data.md). Grey band: noise ceiling."
)


def plot_rsa(rsa: Any) -> Any:
    """Bar chart of best-layer RSA with human IT (CI), monkey IT markers and the noise-ceiling band."""
    plt = mpl()
    models = [str(m) for m in rsa["model"].values]
    colors = model_colors(model_training(rsa, models))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(models) + 2), 3.6))
    x = np.arange(len(models))
    lo, hi = float(rsa["noise_ceiling_lower"]), float(rsa["noise_ceiling_upper"])
    ax.axhspan(lo, hi, color="0.85", zorder=0, label="noise ceiling (human IT)")
    v = rsa["rsa_human_best"].values
    err = np.abs(np.stack([v - rsa["rsa_human_best_ci_low"].values, rsa["rsa_human_best_ci_high"].values - v]))
    ax.bar(x, v, color=[colors[m] for m in models], yerr=err, capsize=3, label="human IT (best layer)")
    ax.plot(x, rsa["rsa_human_cv"].values, "o", color="k", ms=3, label="human IT, leave-one-subject-out")
    ax.plot(x, rsa["rsa_monkey_best"].values, "D", color=BRAIN_COLOR, ms=5, label="monkey IT")
    ax.axhline(float(rsa["human_monkey"]), color=BRAIN_COLOR, ls=":", lw=1, label="human IT subjects vs monkey IT")
    ax.set_xticks(x, [short(m, 22) for m in models], rotation=30, ha="right")
    ax.set_ylabel("RSA (Pearson r of RDMs)")
    ax.set_title("REAL · 92 images (Kriegeskorte 2008): RSA with IT")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish(fig)
    return fig


def plot_fragility(frag: Any) -> Any:
    """Score against budget per norm: raised (solid) and lowered (dashed) RSA with human IT."""
    plt = mpl()
    models = [str(m) for m in frag["model"].values]
    colors = model_colors(model_training(frag, models))
    norms = [str(n) for n in frag["norm"].values]
    fig, axes = plt.subplots(1, len(norms), figsize=(4.2 * len(norms) + 1.5, 3.4), squeeze=False)
    lo, hi = float(frag["noise_ceiling_lower"]), float(frag["noise_ceiling_upper"])
    for ax, norm in zip(axes[0], norms):
        scale, label = eps_scale(norm)
        eps = frag["eps"].sel(norm=norm).values
        ok = np.isfinite(eps)
        xs = np.concatenate([[0.0], eps[ok] * scale])
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        for m in models:
            clean = float(frag["clean_score"].sel(model=m))
            for d in [str(d) for d in frag["direction"].values]:
                ys = np.concatenate([[clean], frag["score"].sel(model=m, norm=norm, direction=d).values[ok]])
                ax.plot(xs, ys, "-" if d == "raise" else "--", marker="o", ms=3, color=colors[m],
                        label=m if d == str(frag["direction"].values[0]) else None)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xlabel(label)
        ax.set_ylabel("RSA with human IT (Pearson r)")
        ax.set_title(f"REAL · fragility of brain similarity, {NORM_LABEL.get(norm, norm)}")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish(fig)
    return fig


def rsa_table(rsa: Any, frag: Any | None = None) -> pd.DataFrame:
    """One row per model: training, best layer, RSA with human IT [95% CI], LOSO score, monkey IT, fragility."""
    rows = []
    for m in [str(x) for x in rsa["model"].values]:
        r = rsa.sel(model=m)
        row = {
            "model": m,
            "training": str(r["training"].values),
            "best layer": str(r["best_layer"].values),
            "RSA human IT": f"{float(r['rsa_human_best']):.3f} [{float(r['rsa_human_best_ci_low']):.3f}, "
                            f"{float(r['rsa_human_best_ci_high']):.3f}]",
            "RSA human IT (LOSO layer)": round(float(r["rsa_human_cv"]), 3),
            "RSA monkey IT": round(float(r["rsa_monkey_best"]), 3),
        }
        if frag is not None and m in [str(x) for x in frag["model"].values]:
            f = frag.sel(model=m)
            for norm in [str(n) for n in frag["norm"].values]:
                eps = f["eps"].sel(norm=norm).values
                k = int(np.nanargmax(eps))
                for d in [str(d) for d in frag["direction"].values]:
                    scale = 255 if norm == "linf" else 1
                    unit = "/255" if norm == "linf" else ""
                    row[f"{d}d, {norm} eps {eps[k] * scale:.3g}{unit}"] = round(
                        float(f["score"].sel(norm=norm, eps_index=k, direction=d)), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def real_section(label: str, groups: dict[str, Any], fig_root: Path, sec: Any) -> Any:
    """Fill the report Section ``sec`` of a REAL panel: intro, figures and tables (labelled REAL)."""
    from brainprobe.report.html import FigureItem, frame_table

    rsa, frag = groups.get("rsa"), groups.get("fragility")
    fig_dir = fig_root / label
    sec.title = f"REAL · {label}"
    if rsa is not None:
        sec.intro = (
            f"REAL brain data: human IT RDMs of 4 subjects and a monkey IT RDM for the 92-image set "
            f"({rsa.attrs.get('citation', 'Kriegeskorte et al. 2008')}). Noise ceiling "
            f"{float(rsa['noise_ceiling_lower']):.3f}-{float(rsa['noise_ceiling_upper']):.3f}; human IT vs monkey IT "
            f"{float(rsa['human_monkey']):.3f} (mean over subjects), {float(rsa['human_monkey_pooled']):.3f} "
            "(subject-mean RDM). See docs/real_data.md."
        )
    for stem, fn, ds, title, caption in (
        ("real_rsa", plot_rsa, rsa, "REAL: RSA with human and monkey IT", RSA_CAPTION),
        ("real_fragility", plot_fragility, frag, "REAL: fragility of brain similarity", FRAGILITY_CAPTION),
    ):
        if ds is None:
            continue
        try:
            fig = fn(ds)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the report
            sec.notes.append(f"{label}: figure '{stem}' not drawn: {type(exc).__name__}: {exc}")
            continue
        png, _ = save_figure(fig, fig_dir, stem)
        sec.figures.append(FigureItem(title=title, png=png.read_bytes(), caption=caption,
                                      files=f"figures/{fig_dir.name}/{stem}.png, .svg"))
    if rsa is not None:
        sec.tables.append(("REAL: RSA table (best layer by subjects; fragility: score at the largest budget)",
                           frame_table(rsa_table(rsa, frag))))
    return sec
