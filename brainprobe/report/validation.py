"""The validation report: recovery table, confusion matrices, controversial shares and power curves.

``validation_report(run_dir)`` reads a ``brainprobe validate`` run folder (``results.nc`` groups
``/validation/*``) and writes ``figures/validation_*.png|svg`` and a self-contained ``report.html``
(figures embedded), labelled SIMULATED.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import xarray as xr

from brainprobe.report._style import finish, mpl, save_figure


def _group(path: Path, name: str) -> xr.Dataset | None:
    try:
        return xr.load_dataset(path, group=f"validation/{name}", engine="h5netcdf")
    except (OSError, KeyError, ValueError):
        return None


def _img(png: Path) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" style="max-width:100%">'


def recovery_figure(rec: xr.Dataset):
    """Bars: recovery accuracy per criterion (x) and readout (colour), panels matched / mismatched."""
    plt = mpl()
    cols = [b for b in ("matched", "mismatched") if int(rec["n_brains"].sel(brain=b).max()) > 0] or ["all"]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.2), squeeze=False)
    crits, ros = list(rec["criterion"].values), list(rec["readout"].values)
    width = 0.8 / max(len(ros), 1)
    for ax, b in zip(axes[0], cols):
        for k, ro in enumerate(ros):
            v = rec.sel(brain=b, readout=ro)
            acc = v["accuracy"].values
            err = np.vstack([acc - v["ci_low"].values, v["ci_high"].values - acc])
            ax.bar(np.arange(len(crits)) + k * width, acc, width, yerr=np.nan_to_num(err), label=ro, capsize=2)
        ax.set_xticks(np.arange(len(crits)) + width * (len(ros) - 1) / 2, crits, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"brains of {b} form")
        ax.set_ylabel("own network ranked first")
    axes[0][0].legend(fontsize=7, title="readout")
    fig.suptitle("SIMULATED validation: recovery per criterion")
    finish(fig)
    return fig


def power_figure(power: xr.Dataset):
    """Power vs number of controversial images, per noise ceiling (colour) and repeats (style); median over pairs."""
    plt = mpl()
    ros = list(power["readout"].values)
    fig, axes = plt.subplots(1, len(ros), figsize=(4.2 * len(ros), 3.2), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, ro in zip(axes[0], ros):
        p = power["power"].sel(readout=ro)
        med = p.median(("brain", "other"), skipna=True)
        for i, nc in enumerate(power["noise_ceiling"].values):
            for j, r in enumerate(power["repeats"].values):
                ax.plot(power["n_images"].values, med.sel(noise_ceiling=nc, repeats=r).values,
                        styles[j % len(styles)], color=f"C{i}", label=f"NC {nc:g}, R={int(r)}")
        ax.axhline(float(power.attrs.get("target_power", 0.8)), color="grey", lw=0.7)
        ax.set_xscale("log")
        ax.set_xlabel("controversial images")
        ax.set_ylabel("power (median pair)")
        ax.set_title(f"readout {ro}")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("images x repeats needed to decide own vs other network")
    finish(fig)
    return fig


def validation_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` (and the figures) of a validation run folder; returns the report path."""
    from brainprobe.pipeline.cache import write_bytes_atomic
    from brainprobe.validation.recovery import format_recovery

    run_dir = Path(run_dir)
    path = run_dir / "results.nc"
    rec, conf = _group(path, "recovery"), _group(path, "confusion")
    cont, power = _group(path, "controversial"), _group(path, "power")
    figs = run_dir / "figures"
    parts = ["<h1>brainprobe validation — SIMULATED brains</h1>",
             "<p>Every brain is image-computable and built on a zoo network, so the right model is known. A "
             "criterion is trusted on real data only as far as it recovers that network here "
             "(docs/validation.md).</p>"]
    if rec is not None:
        parts += ["<h2>Recovery</h2>", f"<pre>{html.escape(format_recovery(rec, cont))}</pre>"]
        png, _ = save_figure(recovery_figure(rec), figs, "validation_recovery")
        parts.append(_img(png))
    if conf is not None:
        parts.append("<h2>Confusion (share of picks)</h2>")
        for ro in conf["readout"].values:
            for crit in conf["criterion"].values:
                frame = conf["share"].sel(readout=ro, criterion=crit).to_pandas()
                frame.index = [f"{b} (own {o})" for b, o in zip(frame.index, conf["own"].values)]
                parts.append(f"<h3>{html.escape(str(crit))}, readout {html.escape(str(ro))}</h3>"
                             + frame.round(2).to_html(na_rep="-"))
    if cont is not None:
        parts.append("<h2>Controversial probes: share of decided images where the brain sides with its own network</h2>")
        frame = cont[["share", "ci_low", "ci_high", "n_controversial", "n_decided"]].to_dataframe().dropna(subset=["share"])
        parts.append(frame.round(3).to_html())
    if power is not None:
        parts.append("<h2>Power: controversial images needed (power {:.0%})</h2>".format(
            float(power.attrs.get("target_power", 0.8))))
        png, _ = save_figure(power_figure(power), figs, "validation_power")
        parts.append(_img(png))
        parts.append(power["images_needed"].to_dataframe().dropna().to_html())
    doc = ("<!doctype html><html><head><meta charset='utf-8'><title>brainprobe validation (SIMULATED)</title></head>"
           f"<body style='font-family:sans-serif;max-width:1100px;margin:auto'>{''.join(parts)}</body></html>")
    out = run_dir / "report.html"
    write_bytes_atomic(out, doc.encode())
    return out
