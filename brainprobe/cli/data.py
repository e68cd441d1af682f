"""CLI commands of brainprobe.data: ``brainprobe data info|simulate|photos``."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    name="data",
    help="Inspect datasets, simulate a SIMULATED brain dataset, list the stimulus library.",
    no_args_is_help=True,
    add_completion=False,
)

_DEFAULT_BRAIN = "efficientnet_lite2"
_DEFAULT_NC = (0.1, 0.8)


def _simulated_info(brain: str, targets_per_roi: int) -> str:
    from brainprobe.data.simulated import _default_rois
    from brainprobe.data.stimuli import library_photos
    from brainprobe.zoo import get_spec

    spec = get_spec(brain)
    rois = _default_rois(spec)
    photos = library_photos("eval")
    lines = [
        f"*** SIMULATED brain: responses computed by model '{spec.name}', not fMRI ***",
        f"brain backbone: {spec.name} ({spec.training.describe()})",
        f"{'roi':<12}{'layer':<14}{'targets':>8}",
    ]
    lines += [f"{roi:<12}{layer:<14}{targets_per_roi:>8}" for roi, layer in rois.items()]
    lines += [
        "readout: per target a Gaussian receptive field x sparse random channel weights, softplus (fixed by seed)",
        f"trial noise: Gaussian, scaled so each target's true NC is drawn from {_DEFAULT_NC[0]}-{_DEFAULT_NC[1]} "
        "for the repeat-averaged responses",
        f"stimuli: seeded random crops of {len(photos)} library 'eval' photos",
        "make one: brainprobe data simulate --out sim.nc",
    ]
    return "\n".join(lines)


def info(
    path: str = typer.Argument(..., help="A dataset file (.nc) or the word 'simulated'."),
    brain: str = typer.Option(_DEFAULT_BRAIN, "--brain", help="Backbone of the simulated brain (with 'simulated')."),
) -> None:
    """Counts, ROIs and noise-ceiling summary of a dataset (SIMULATED banner where it applies)."""
    if path == "simulated":
        typer.echo(_simulated_info(brain, 100))
        return
    from brainprobe.data import Dataset

    ds = Dataset.load(path)
    typer.echo(f"{path}")
    typer.echo(ds.summary())


def simulate(
    out: Path = typer.Option(..., "--out", help="Output dataset file (.nc)."),
    brain: str = typer.Option(_DEFAULT_BRAIN, "--brain", help="Zoo model used as the brain (robustified ones too)."),
    n_images: int = typer.Option(300, "--n-images", min=4, help="Number of stimuli."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Trial repeats per image."),
    resolution: int = typer.Option(128, "--resolution", min=16, help="Stimulus side in px."),
    targets_per_roi: int = typer.Option(100, "--targets-per-roi", min=1, help="Targets in each simulated ROI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the brain, stimuli, noise and split."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Simulate a SIMULATED dataset: library crops shown to a brain model, with trial noise."""
    from brainprobe.errors import DataError

    if out.exists() and not force:
        raise DataError(f"{out}: file exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        what = "is a file, not a folder" if out.parent.exists() else "does not exist"
        raise DataError(f"{out}: folder {out.parent} {what}; choose an existing folder for --out")
    from brainprobe.zoo import get_spec

    get_spec(brain)  # unknown model: one-line error before any heavy work
    import torch

    from brainprobe.data import SimulatedBrain, sample_stimuli, simulate_dataset

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    stimuli, prov = sample_stimuli(n_images, resolution, split="eval", seed=seed)
    sim = SimulatedBrain(brain, targets_per_roi=targets_per_roi, seed=seed, calibration_resolution=resolution)
    info = {"sampler": "sample_stimuli", "n": n_images, "resolution": resolution, "split": "eval", "seed": seed}
    ds = simulate_dataset(
        sim, stimuli, repeats=repeats, seed=seed, noise_ceiling=_DEFAULT_NC, stimulus_info=info,
        groups=prov["photo"].astype(str).to_numpy(),
    )
    tmp = out.with_name(out.name + ".part")
    ds.save(tmp)
    tmp.replace(out)
    typer.echo(f"wrote {out}")
    typer.echo(ds.summary())


def photos(split: str = typer.Option("all", "--split", help="train, eval or all.")) -> None:
    """The stimulus library: photos per split, source and licence."""
    from brainprobe.data import library_photos

    table = library_photos(split)
    counts = table.groupby(["split", "source", "license"]).size().reset_index(name="photos")
    typer.echo(f"{len(table)} photos ({split})")
    typer.echo(counts.to_string(index=False))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the brainprobe app."""
    data_app.command("info")(info)
    data_app.command("simulate")(simulate)
    data_app.command("photos")(photos)
    app.add_typer(data_app, name="data")
