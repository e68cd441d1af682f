"""CLI of brainprobe.validation: ``brainprobe validate [CONFIG]``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the brainprobe app."""

    @app.command("validate")
    def validate_cmd(
        config: Optional[Path] = typer.Argument(None, help="Validation YAML (default: the shipped validate.yaml)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (overrides output.dir)."),
        quick: bool = typer.Option(False, "--quick", help="A few-minute version: 2 brains, 1 seed, fewer images."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite a run folder of a different config."),
    ) -> None:
        """Score every criterion x readout by how often it picks a SIMULATED brain's own network."""
        from brainprobe.validation.config import ValidationConfig, load_validation_config
        from brainprobe.validation.run import run_validation

        cfg = load_validation_config(config)
        if output is not None:
            data = cfg.model_dump()
            data["output"]["dir"] = output
            cfg = ValidationConfig.model_validate(data)
        typer.echo("brainprobe validate: SIMULATED brains built on zoo networks (the true model is known).")
        t0 = time.perf_counter()
        run_dir = run_validation(cfg, source=str(config or "validate.yaml (shipped)"), replace=replace, quick=quick,
                                 echo=typer.echo)
        typer.echo((run_dir / "recovery.txt").read_text())
        typer.echo(f"done in {time.perf_counter() - t0:.0f} s; run folder {run_dir.resolve()}")
