"""CLI of brainprobe.pipeline: ``brainprobe run CONFIG`` and ``brainprobe demo``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the brainprobe app."""

    @app.command("run")
    def run_cmd(
        config: Path = typer.Argument(..., help="YAML run config (see configs/demo.yaml)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (overrides output.dir)."),
        executor: Optional[str] = typer.Option(None, "--executor", help="local or ray (overrides executor.kind)."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (overrides executor.address)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto (overrides device)."),
        replace: bool = typer.Option(
            False, "--replace", help="Overwrite a run folder that holds the results of a different config."
        ),
    ) -> None:
        """Run a whole study: data -> fit -> probes -> transfer -> analyses -> report."""
        from brainprobe.config import load_yaml_model
        from brainprobe.pipeline.config import RunConfig

        cfg = load_yaml_model(config, RunConfig)
        cfg = _override(cfg, output=output, executor=executor, address=address, device=device, source=str(config))
        _run(cfg, str(config), replace=replace)

    @app.command("demo")
    def demo_cmd(
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (default runs/demo)."),
        executor: Optional[str] = typer.Option(None, "--executor", help="local or ray."),
        replace: bool = typer.Option(
            False, "--replace", help="Overwrite a run folder that holds the results of another config."
        ),
    ) -> None:
        """The offline demo: two SIMULATED brains, offline candidate models, every finding per brain."""
        from brainprobe.pipeline.demo import demo_config

        cfg, source = demo_config()
        cfg = _override(cfg, output=output, executor=executor, address=None, device=None, source=source)
        typer.echo("brainprobe demo: SIMULATED data (two image-computable brains); nothing is trained.")
        # a previous demo's folder (same shipped config file, e.g. of an older brainprobe) is the demo's own
        _run(cfg, source, replace=replace or _config_source(cfg.output.dir) == source)


def _override(cfg, *, output, executor, address, device, source):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from brainprobe.config import format_validation_error
    from brainprobe.errors import ConfigError

    data = cfg.model_dump()
    if output is not None:
        data["output"]["dir"] = output
    if executor is not None:
        data["executor"]["kind"] = executor
    if address is not None:
        data["executor"]["address"] = address
    if device is not None:
        data["device"] = device
    try:
        return type(cfg).model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{source} (with command-line options)")) from None


def _config_source(run_dir: Path) -> str | None:
    """``config_source`` recorded in ``run_dir/manifest.json`` (None when there is none to read)."""
    import json

    try:
        return json.loads((Path(run_dir) / "manifest.json").read_text()).get("config_source")
    except (OSError, ValueError, AttributeError):
        return None


def _run(cfg, source: str, *, replace: bool = False) -> None:  # type: ignore[no-untyped-def]
    from brainprobe.pipeline import run_pipeline

    t0 = time.perf_counter()
    run_dir = run_pipeline(cfg, source=source, replace=replace)
    report = run_dir / "report.html"
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s; run folder {run_dir.resolve()}")
    if report.is_file():
        typer.echo(f"report: {report.resolve()}")
