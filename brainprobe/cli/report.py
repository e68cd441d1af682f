"""CLI of brainprobe.report: ``brainprobe report RUN_DIR`` and ``brainprobe export-stimuli RUN_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from brainprobe.cli._common import parse_eps


def register(app: typer.Typer) -> None:
    """Add this module's commands to the brainprobe app."""

    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="Run folder written by `brainprobe run`."),
        gallery_eps: Optional[str] = typer.Option(None, "--gallery-eps", help="Budget of the probe galleries (e.g. 2/255)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML file (default RUN_DIR/report.html)."),
    ) -> None:
        """Rebuild report.html (and figures/) from results.nc and manifest.json, without recomputing."""
        from brainprobe.report import build_report

        path = build_report(run_dir, gallery_eps=parse_eps(gallery_eps, "--gallery-eps") if gallery_eps else None, out=output)
        typer.echo(f"report: {path}")

    @app.command("export-stimuli")
    def export_cmd(
        run_dir: Path = typer.Argument(..., help="Run folder written by `brainprobe run` with probes.keep_deltas > 0."),
        model: str = typer.Option(..., "--model", help="Model whose probes to export."),
        eps: str = typer.Option(..., "--eps", help="Budget, one of the run's (e.g. 0.1 or 2/255)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/stimuli/...)."),
        norm: Optional[str] = typer.Option(None, "--norm", help="l2 or linf (needed when eps is in both grids)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset label (default: all)."),
        bits: int = typer.Option(8, "--bits", help="Bits per channel of the PNG files: 8 or 16."),
        quantise: bool = typer.Option(True, "--quantise/--round", help="Lattice-aware probes (default) or plain rounding."),
        steps: int = typer.Option(10, "--steps", help="Lattice PGD steps of quantisation-aware probes."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    ) -> None:
        """Write probe images as lossless PNG + CSVs of each image's predicted change per ROI under every model."""
        import warnings

        import pandas as pd

        from brainprobe.errors import ConfigError
        from brainprobe.report import export_stimuli

        if bits not in (8, 16):
            raise ConfigError(f"--bits must be 8 or 16, got {bits}")
        if norm is not None and norm not in ("l2", "linf"):
            raise ConfigError(f"--norm must be l2 or linf, got {norm!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folders = export_stimuli(run_dir, model, parse_eps(eps), out, norm=norm, dataset=dataset, bits=bits,
                                     quantise=quantise, steps=steps, device=device)
        for folder in folders:
            s = pd.read_csv(folder / "probes.csv")
            typer.echo(
                f"{folder}: {len(s)} probes, budget used {s['budget_ratio'].max():.3f} x eps at most, "
                f"change kept median {s['kept'].median():.1%}, flagged (< 90% kept) {int(s['flagged'].sum())}, "
                f"over budget {int(s['over_budget'].sum())}"
            )
        for w in caught:
            if "export check" in str(w.message):
                typer.echo(f"warning: {w.message}", err=True)
