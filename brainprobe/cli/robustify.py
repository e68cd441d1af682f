"""``brainprobe robustify``: make a robust copy of a backbone, or report the quality of one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from brainprobe.cli._common import parse_eps

from brainprobe.errors import ConfigError


def parse_duration(text: str) -> float:
    """``"600"``, ``"600s"``, ``"10m"``, ``"1h"`` -> seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ConfigError(f"--time: expected seconds or a duration such as 600, 10m or 1h, got {text!r}") from None
    if not value > 0:
        raise ConfigError(f"--time: must be > 0, got {text!r}")
    return value


def register(app: typer.Typer) -> None:
    """Add ``brainprobe robustify`` to the brainprobe app."""

    @app.command("robustify")
    def robustify_cmd(
        source: Optional[str] = typer.Argument(None, help="Zoo name of the backbone to robustify."),
        evaluate: Optional[str] = typer.Option(
            None, "--evaluate", help="Print the quality report of robustified model NAME (held-out images only)."
        ),
        layers: Optional[str] = typer.Option(None, help="Distilled layer(s), comma-separated (default per model)."),
        norm: str = typer.Option("l2", help="Threat model of the inner attack: l2 or linf."),
        eps: str = typer.Option("1", help="Budget: l2 in [0,1]-pixel units, linf e.g. 1/255."),
        pgd_steps: int = typer.Option(2, help="Inner PGD steps per training step."),
        steps: Optional[int] = typer.Option(None, help="Budget in training steps."),
        time: Optional[str] = typer.Option(None, "--time", help="Budget in wall-clock time: 600, 10m, 1h."),
        lr: Optional[float] = typer.Option(None, help="Learning rate (default: sgd 3e-3, adam 1e-4)."),
        optimizer: str = typer.Option("sgd", help="sgd (Nesterov momentum 0.9) or adam."),
        batch_size: int = typer.Option(32, help="Training crops per step."),
        resolution: Optional[int] = typer.Option(None, help="Crop size in px (default: the model's resolution)."),
        images: str = typer.Option("library", help="'library' (the stimulus library's training photos), 'procedural' (seeded dead-leaves images, no photo) or a folder."),
        clean_weight: float = typer.Option(1.0, help="Weight of the clean-feature term."),
        kl_weight: float = typer.Option(0.0, help="Weight of KL(teacher || student) on clean logits."),
        seed: int = typer.Option(0, help="Seed of the crops and PGD starts."),
        name: Optional[str] = typer.Option(None, help="Model name (default <source>_robust_<norm>_eps<e>)."),
        out: Optional[Path] = typer.Option(None, help="Output folder (default $BRAINPROBE_HOME/robustified)."),
        checkpoint: Optional[Path] = typer.Option(None, help="Resumable checkpoint file (default <out>/<name>.ckpt)."),
        fp32: bool = typer.Option(False, "--fp32", help="Store float32 weights (default float16)."),
        device: Optional[str] = typer.Option(None, help="Torch device (default cpu)."),
        channels_last: bool = typer.Option(
            True, "--channels-last/--nchw", help="Train in channels-last memory format (faster on CPU)."
        ),
        n_crops: int = typer.Option(200, "--n-crops", help="--evaluate: held-out library crops (>= 200)."),
        eval_l2: str = typer.Option("0.25,0.5,1", "--eval-l2", help="--evaluate: l2 budgets, comma-separated."),
        eval_linf: str = typer.Option(
            "0.5/255,1/255,2/255", "--eval-linf", help="--evaluate: linf budgets, comma-separated."
        ),
        eval_steps: int = typer.Option(10, "--eval-steps", help="--evaluate: PGD steps of the probes."),
        eval_layer: Optional[str] = typer.Option(
            None, "--eval-layer", help="--evaluate: layer read out (default: the last distilled layer)."
        ),
        json_out: Optional[Path] = typer.Option(None, "--json", help="--evaluate: also write the report as JSON."),
    ) -> None:
        """Robustify SOURCE by adversarial self-distillation, or --evaluate a robustified model."""
        if evaluate is not None:
            if source is not None:
                raise ConfigError("robustify: give either SOURCE (to train) or --evaluate NAME, not both")
            from brainprobe.robust import evaluate_robustified

            if eval_steps < 1:
                raise ConfigError(f"--eval-steps must be >= 1, got {eval_steps}")
            report = evaluate_robustified(
                evaluate, resolution=resolution, n_crops=n_crops, seed=seed, device=device, pgd_steps=eval_steps,
                layer=eval_layer,
                l2_budgets=[parse_eps(e, "--eval-l2") for e in eval_l2.split(",") if e.strip()],
                linf_budgets=[parse_eps(e, "--eval-linf") for e in eval_linf.split(",") if e.strip()],
            )
            typer.echo(report.to_text())
            if json_out is not None:
                report.save_json(json_out)
                typer.echo(f"report written to {json_out}")
            return
        if source is None:
            raise ConfigError("robustify: give the backbone to robustify (e.g. mobilenet_v2) or --evaluate NAME")
        from brainprobe.robust import default_output_dir, robustify
        from brainprobe.zoo import robust_name

        eps_value = parse_eps(eps)
        budget = parse_duration(time) if time is not None else None
        if steps is None and budget is None:
            raise ConfigError("robustify: give a budget with --steps N or --time 10m")
        model_name = name or robust_name(source, norm, eps_value)
        out_dir = out or default_output_dir()
        ckpt = checkpoint or (out_dir / f"{model_name}.ckpt")
        result = robustify(
            source,
            layers=[s.strip() for s in layers.split(",") if s.strip()] if layers else None,
            norm=norm, eps=eps_value, pgd_steps=pgd_steps, steps=steps, time_budget_s=budget, lr=lr,
            optimizer=optimizer, batch_size=batch_size, resolution=resolution,
            images=images if images in ("library", "procedural") else Path(images),
            clean_weight=clean_weight, kl_weight=kl_weight, seed=seed, name=model_name, out_dir=out_dir,
            checkpoint=ckpt, fp16=not fp32, device=device, channels_last=channels_last,
        )
        typer.echo(str(result))
        typer.echo(f"recipe: {result.recipe_path}")
        typer.echo(f"evaluate it with: brainprobe robustify --evaluate {result.name}")
