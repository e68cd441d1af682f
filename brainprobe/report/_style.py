"""Shared plotting style: robust vs standard colours, eps axis labels, saving PNG + SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# Robust (adversarially trained or robustified) models in blues, standard ones in oranges/reds,
# so the paper's first finding reads off every figure at a glance.
_ROBUST_SHADES = ["#08519c", "#3182bd", "#6baed6", "#2171b5", "#4292c6", "#9ecae1", "#084594"]
_STANDARD_SHADES = ["#d94801", "#a63603", "#fd8d3c", "#e6550d", "#f16913", "#fdae6b", "#7f2704"]
ROBUST_COLOR = _ROBUST_SHADES[0]
STANDARD_COLOR = _STANDARD_SHADES[0]
BRAIN_COLOR = "#238b45"

NORM_LABEL = {"l2": "ℓ2", "linf": "ℓ∞"}


def mpl():
    """matplotlib.pyplot with the non-interactive Agg backend (safe on headless machines)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
        }
    )
    return plt


def is_robust_name(name: str) -> bool:
    """Fallback robustness flag from a model name when the results carry no ``training`` coord."""
    lowered = name.lower()
    return "robust" in lowered or "madry" in lowered or "_adv" in lowered


def model_training(ds, models: Sequence[str]) -> dict[str, bool]:
    """Map each model to True when it is robust (adversarially trained or robustified).

    Uses, in order: a training coordinate on a model dim (``training`` on ``model``,
    ``source_training`` on ``source_model``, ``target_training`` on ``target_model``; values
    ``standard``, ``adversarial``, ``robustified``), the zoo spec of the name, and the name
    itself (``*_robust_*``) for user models the zoo does not know.
    """
    known: dict[str, str] = {}
    coords = getattr(ds, "coords", {})
    for coord, dim in (("training", "model"), ("source_training", "source_model"), ("target_training", "target_model")):
        if coord in coords and dim in coords and coords[coord].dims == (dim,):
            known.update({str(m): str(t) for m, t in zip(coords[dim].values, coords[coord].values)})
    out: dict[str, bool] = {}
    for name in models:
        kind = known.get(name)
        if kind is None or kind in ("", "unknown"):
            try:
                from brainprobe.zoo import get_spec

                kind = get_spec(name).training.kind
            except Exception:  # noqa: BLE001 - a user model the zoo does not know: judge by its name
                kind = "robustified" if is_robust_name(name) else "standard"
        out[name] = kind in ("adversarial", "robustified", "robust")
    return out


def model_colors(robust: dict[str, bool]) -> dict[str, str]:
    """A distinct shade per model, blue family for robust and orange family for standard."""
    colors: dict[str, str] = {}
    n_r = n_s = 0
    for name, flag in robust.items():
        if flag:
            colors[name] = _ROBUST_SHADES[n_r % len(_ROBUST_SHADES)]
            n_r += 1
        else:
            colors[name] = _STANDARD_SHADES[n_s % len(_STANDARD_SHADES)]
            n_s += 1
    return colors


def eps_scale(norm: str) -> tuple[float, str]:
    """Factor and axis label for budgets: linf in units of 1/255, l2 in [0,1] pixel units."""
    if norm == "linf":
        return 255.0, "budget ε (ℓ∞, max |δ| in units of 1/255)"
    return 1.0, "budget ε (ℓ2 norm of δ, pixels in [0, 1])"


def eps_ticks(ax, values) -> None:
    """Log x axis with ticks at the budgets actually probed, written plainly (no 10^x overlap)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    vals = np.unique(np.asarray([v for v in values if np.isfinite(v) and v > 0], dtype=float))
    ax.set_xscale("log")
    if vals.size:
        if vals.size > 8:
            vals = vals[:: int(np.ceil(vals.size / 8))]
        ax.xaxis.set_major_locator(FixedLocator(vals))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="x", labelsize=7, labelrotation=0)


def short(name: str, width: int = 28) -> str:
    """Shorten a long model name for tick labels (full names stay in legends and tables)."""
    return name if len(name) <= width else name[: width - 1] + "…"


def plain_log_axis(axis) -> None:
    """Log-scaled axis with plain tick labels (40, not 4×10¹) and no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # 1-2-5 steps so that a range under one decade still gets labelled ticks
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def finish(fig) -> None:
    """tight_layout that leaves room for the suptitle (tight_layout alone lets top tick labels hit it)."""
    top = 1.0
    if fig._suptitle is not None and fig._suptitle.get_text():
        lines = fig._suptitle.get_text().count("\n") + 1
        top = 1.0 - (lines * fig._suptitle.get_fontsize() * 1.25 / 72) / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top), w_pad=1.4, h_pad=1.0)


def save_figure(fig, directory: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` into ``directory``; returns both paths."""
    plt = mpl()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{stem}.png", directory / f"{stem}.svg"
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return png, svg


def finite(values) -> np.ndarray:
    """Float array with non-finite values kept as NaN (for safe plotting)."""
    arr = np.asarray(values, dtype=float)
    return np.where(np.isfinite(arr), arr, np.nan)
