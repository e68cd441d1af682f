"""CLI commands of brainprobe.zoo: ``brainprobe models [NAME]`` and ``brainprobe weights ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

weights_app = typer.Typer(
    name="weights",
    help="Fetch, locate and check backbone weights.",
    no_args_is_help=True,
    add_completion=False,
)


def _models_table() -> str:
    from brainprobe.zoo import is_available, list_models

    rows = [("name", "family", "training", "res", "weight source", "offline")]
    for s in list_models():
        rows.append(
            (
                s.name,
                s.family,
                s.training.describe(),
                str(s.resolution),
                s.weights.describe(),
                "yes" if is_available(s) else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _model_details(name: str) -> str:
    from brainprobe.zoo import get_spec, is_available
    from brainprobe.zoo.weights import expected_path, fetch_command

    s = get_spec(name)
    n = s.normalization
    try:
        where = str(expected_path(s) or "(user-supplied file: --weights PATH)")
    except Exception as err:  # a missing package: say so in the listing
        where = f"unavailable ({err})"
    lines = [
        f"{s.name}: {s.description}",
        f"  family       {s.family}",
        f"  training     {s.training.describe()}" + (f"  [{s.training.reference}]" if s.training.reference else ""),
        f"  resolution   {s.resolution} px",
        f"  input        RGB in [0,1] -> {'BGR, ' if n.channel_order == 'bgr' else ''}x*{n.scale:g}, "
        f"mean ({', '.join(f'{v:.4g}' for v in n.mean)}), std ({', '.join(f'{v:.4g}' for v in n.std)})",
        f"  weights      {s.weights.describe()}: {where}",
        f"  offline      {'yes' if is_available(s) else 'no'}"
        + ("" if is_available(s) or s.weights.kind != "url" else f"  (run `{fetch_command(s.name)}`)"),
        "  layers (* = default readout layers):",
    ]
    lines += [f"  {'*' if layer in s.default_layers else ' '} {layer}" for layer in s.layers]
    return "\n".join(lines)


def models(name: Optional[str] = typer.Argument(None, help="A model name: print its details and layers.")) -> None:
    """List the backbone zoo, or one model's layers (defaults marked *)."""
    typer.echo(_models_table() if name is None else _model_details(name))


@weights_app.command("fetch")
def weights_fetch(
    name: str = typer.Argument(..., help="Model name (see `brainprobe models`)."),
    force: bool = typer.Option(False, "--force", help="Download again even if the file is present."),
) -> None:
    """Download a model's weights into $BRAINPROBE_HOME/weights and verify sha256."""
    from brainprobe.zoo import fetch, get_spec

    path = fetch(get_spec(name), force=force)
    typer.echo(str(path))


@weights_app.command("path")
def weights_path(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Print where a model's weights file is (or would be after fetching)."""
    from brainprobe.zoo import get_spec
    from brainprobe.zoo.weights import expected_path

    path = expected_path(get_spec(name))
    typer.echo(str(path) if path is not None else "(no default file: pass --weights PATH)")


@weights_app.command("check")
def weights_check(
    name: str = typer.Argument(..., help="Model name."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Use this local weights file."),
) -> None:
    """Load a model (its own weights or --weights PATH) and print its provenance."""
    import json

    from brainprobe.zoo import load_backbone

    bb = load_backbone(name, weights=weights)
    typer.echo(json.dumps(bb.provenance(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the brainprobe app."""
    app.command("models")(models)
    app.add_typer(weights_app, name="weights")
