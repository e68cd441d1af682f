"""Reading a run folder: results.nc (groups per dataset and analysis, findings) and manifest.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from brainprobe._version import __version__
from brainprobe.errors import DataError


@dataclass
class RunResults:
    """Everything the report shows, read from a run folder without recomputing anything.

    Attributes
    ----------
    run_dir : Path
    attrs : dict
        Root attributes of results.nc (``brainprobe_version``, ``config_sha256``, ``simulated``,
        ``dataset_labels``).
    analyses : dict[str, dict[str, xarray.Dataset]]
        ``dataset_label -> analysis name -> Dataset`` (in memory, file closed).
    findings : pandas.DataFrame or None
        Columns ``finding, brain, statistic, value, ci_low, ci_high, held``.
    manifest : dict
        manifest.json (empty when the run has none).
    """

    run_dir: Path
    attrs: dict[str, Any]
    analyses: dict[str, dict[str, xr.Dataset]] = field(default_factory=dict)
    findings: pd.DataFrame | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        """True when any brain or dataset of the run is simulated (root attr or dataset attrs)."""
        flag = self.attrs.get("simulated")
        if flag is not None and bool(int(flag)):
            return True
        return any(bool(int(ds.attrs.get("simulated", 0) or 0)) for groups in self.analyses.values() for ds in groups.values())

    @property
    def labels(self) -> list[str]:
        """Dataset labels in the order the run lists them."""
        listed = [s for s in str(self.attrs.get("dataset_labels", "")).split(",") if s]
        return [s for s in listed if s in self.analyses] + [s for s in self.analyses if s not in listed]


def _findings_frame(ds: xr.Dataset) -> pd.DataFrame:
    frame = ds.to_dataframe().reset_index(drop=True)
    for col in ("finding", "brain", "statistic"):
        if col in frame:
            frame[col] = frame[col].astype(str)
    return frame


def _version_key(version: str) -> tuple[int, ...]:
    """``"0.1.0"`` -> (0, 1, 0); the leading numeric release part only ('' -> ())."""
    import re

    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def load_run(run_dir: str | Path) -> RunResults:
    """Read ``run_dir/results.nc`` and ``run_dir/manifest.json``.

    Raises
    ------
    DataError
        The folder or its results.nc is missing or unreadable, or results.nc was written by a newer
        brainprobe (names the path).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found; pass the folder `brainprobe run` wrote")
    path = run_dir / "results.nc"
    if not path.is_file():
        raise DataError(f"{path}: results.nc not found; the run has not finished its analyses (re-run `brainprobe run CONFIG`)")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise DataError(f"{path}: cannot read results.nc ({type(exc).__name__}: {exc}); re-run the analyses") from None
    written_by = str(tree.attrs.get("brainprobe_version", ""))
    if _version_key(written_by) > _version_key(__version__):
        tree.close()
        raise DataError(
            f"{path}: written by brainprobe {written_by}, newer than this brainprobe {__version__}; "
            "upgrade brainprobe (pip install -U brainprobe) or re-run the analyses with this version"
        )
    try:
        run = RunResults(run_dir=run_dir, attrs=dict(tree.attrs))
        for node in tree.subtree:
            if node is tree or not node.has_data:
                continue
            parts = node.path.strip("/").split("/")
            ds = node.to_dataset(inherit=False).load()
            if parts == ["findings"]:
                run.findings = _findings_frame(ds)
            elif len(parts) == 2:
                ds.attrs["_group"] = "/".join(parts)
                run.analyses.setdefault(parts[0], {})[parts[1]] = ds
    finally:
        tree.close()
    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        try:
            run.manifest = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest}: not valid JSON (line {exc.lineno}); re-run to rewrite it") from None
    return run
