"""CLI of brainprobe.encoding: ``brainprobe fit`` (encoding models and their predictivity table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _load_data(data: str, *, brain: str, n_images: int, resolution: int, targets_per_roi: int, seed: int) -> Any:
    from brainprobe.data import Dataset, SimulatedBrain, sample_stimuli, simulate_dataset
    from brainprobe.errors import DataError

    if data == "simulated":
        stimuli, _ = sample_stimuli(n_images, resolution, seed=seed)
        sim = SimulatedBrain(brain, targets_per_roi=targets_per_roi, seed=seed)
        return simulate_dataset(sim, stimuli, repeats=3, seed=seed)
    path = Path(data)
    if not path.is_file():
        raise DataError(f"--data {data}: no such file; give a dataset .nc file (Dataset.save) or 'simulated'")
    return Dataset.load(path)


def _cell(ds: Any, roi: str) -> str:
    value = float(ds["roi_r_normalised"].sel(roi=roi))
    low, high = (float(v) for v in ds["roi_r_normalised_ci"].sel(roi=roi).values)
    if value != value:  # NaN: no noise ceiling, show raw r
        value = float(ds["roi_r"].sel(roi=roi))
        low, high = (float(v) for v in ds["roi_r_ci"].sel(roi=roi).values)
        return f"r {value:.2f} [{low:.2f}, {high:.2f}]"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def fit(
    data: str = typer.Option(..., "--data", help="Dataset file (.nc, from Dataset.save) or 'simulated'."),
    models: str = typer.Option("mobilenet_v2,efficientnet_lite0", "--models", help="Comma-separated model names (brainprobe models)."),
    layer: Optional[str] = typer.Option(
        None, "--layer", help="Readout layer, or comma-separated candidates chosen per ROI by CV (default: each model's default layers)."
    ),
    readout: str = typer.Option("ridge", "--readout", help="Readout: ridge, spatial_ridge or factorized (docs/encoding.md)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="avg, avgpool{k} (e.g. avgpool2) or flatten (default: the readout's: avg for ridge, flatten otherwise)."),
    pca: Optional[int] = typer.Option(None, "--pca", help="Principal components of the standardised features (default: none)."),
    cv: int = typer.Option(5, "--cv", help="Cross-validation folds on the training split."),
    seed: int = typer.Option(0, "--seed", help="Seeds folds, PCA, bootstrap (and the simulated data)."),
    device: Optional[str] = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for predictivity_<model>.nc and predictivity.csv."),
    brain: str = typer.Option("efficientnet_lite2", "--brain", help="Simulated data only: backbone of the SIMULATED brain."),
    n_images: int = typer.Option(300, "--n-images", help="Simulated data only: number of stimuli."),
    resolution: int = typer.Option(128, "--resolution", help="Simulated data only: stimulus side in pixels."),
    targets_per_roi: int = typer.Option(20, "--targets-per-roi", help="Simulated data only: targets per ROI."),
) -> None:
    """Fit encoding models and print their predictivity: model x ROI, median r / sqrt(NC) [95% CI]."""
    import pandas as pd

    from brainprobe.encoding import fit_encoder, get_readout
    from brainprobe.errors import ConfigError
    from brainprobe.zoo import get_spec

    names = _split(models)
    if not names:
        raise ConfigError("--models: give at least one model name, e.g. --models mobilenet_v2,efficientnet_lite0")
    for name in names:
        get_spec(name)  # unknown names fail before any work
    spec = get_readout(readout)
    if pooling is not None:
        spec.check_pooling(pooling)
    layers = _split(layer) or None
    dataset = _load_data(data, brain=brain, n_images=n_images, resolution=resolution, targets_per_roi=targets_per_roi, seed=seed)
    if dataset.attrs.get("simulated"):
        typer.echo(f"data: SIMULATED ({dataset.attrs.get('brain', dataset.attrs.get('source', ''))}), "
                   f"{dataset.n_images} images, {dataset.n_targets} targets", err=True)
    rows, results = [], {}
    for name in names:
        enc = fit_encoder(name, dataset, layer=layers, readout=readout, pooling=pooling, pca=pca, cv=cv, device=device, batch_size=batch_size, seed=seed)
        ds = enc.predictivity
        results[name] = ds
        row: dict[str, Any] = {"model": name, "layer": enc.layer}
        for roi in ds["roi"].values.tolist():
            row[roi] = _cell(ds, roi)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    typer.echo("normalised predictivity: median over targets of r / sqrt(noise ceiling) [95% bootstrap CI over test images]")
    typer.echo(table.to_string())
    if out is not None:
        from brainprobe.pipeline.cache import write_bytes_atomic

        out.mkdir(parents=True, exist_ok=True)
        # serialised in memory, written through temporaries + renames: a full disk leaves old files intact
        for name, ds in results.items():
            write_bytes_atomic(out / f"predictivity_{name}.nc", bytes(ds.to_netcdf(engine="h5netcdf")))
        write_bytes_atomic(out / "predictivity.csv", table.to_csv().encode())
        typer.echo(f"wrote {out}/predictivity.csv and predictivity_<model>.nc", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the brainprobe app."""
    app.command("fit")(fit)
