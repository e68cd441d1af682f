"""End to end on a tiny config: real brains, real encoders (himalaya ridge), real probes; cached re-run."""

from __future__ import annotations

import json

import pytest
import xarray as xr

from brainprobe.validation import run_validation
from brainprobe.validation.config import ValidationConfig

TINY = {
    "name": "tiny",
    "brains": [{"backbone": "mobilenet_v2", "form": "matched", "targets_per_roi": 4},
               {"backbone": "efficientnet_lite0", "form": "divnorm", "targets_per_roi": 4}],
    "candidates": ["mobilenet_v2", "efficientnet_lite0"],
    "n_images": 32, "resolution": 32,
    "probes": {"eps": [1.0], "steps": 2, "n_images": 4},
    "n_boot": 50, "power": {"n_sim": 50, "n_images": [4, 16, 64]},
}


@pytest.mark.slow
def test_tiny_validation_writes_groups_tables_report_and_reuses_its_cache(tmp_path):
    cfg = ValidationConfig.model_validate({**TINY, "output": {"dir": str(tmp_path / "run")}})
    run = run_validation(cfg)
    for f in ("results.nc", "manifest.json", "report.html", "recovery.txt", "tables/recovery.csv",
              "tables/confusion.csv", "tables/controversial.csv", "tables/power.csv"):
        assert (run / f).is_file(), f
    rec = xr.load_dataset(run / "results.nc", group="validation/recovery", engine="h5netcdf")
    assert set(rec["criterion"].values) == {"predictivity", "sensitivity", "closed_loop", "controversial", "axes"}
    acc = rec["accuracy"].sel(brain="all").values
    assert ((acc >= 0) & (acc <= 1)).all()
    assert int(rec["n_brains"].sel(brain="matched").max()) == 1 and int(rec["n_brains"].sel(brain="mismatched").max()) == 1
    for g in ("confusion", "controversial", "power"):
        xr.load_dataset(run / "results.nc", group=f"validation/{g}", engine="h5netcdf")
    assert "SIMULATED" in (run / "report.html").read_text()
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["validate_scores"]["computed"] == 2
    again = run_validation(cfg)
    stages = json.loads((again / "manifest.json").read_text())["stages"]
    assert all(stages[s]["computed"] == 0 for s in ("validate_data", "validate_fit", "validate_scores"))
