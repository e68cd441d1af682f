"""All analyses on one simulated scenario with known answers, written to results.nc, condensed by findings()."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from _analysis_helpers import scenario
from brainprobe.analysis import (
    coding_axes,
    controversial,
    discriminability,
    findings,
    l2_linf,
    linearity,
    predictivity_scores,
    semantics,
    sensitivity,
    sensitivity_scores,
    transfer,
)
from brainprobe.errors import ConfigError
from brainprobe.probes import Contrast, probe

pytestmark = pytest.mark.filterwarnings("ignore::brainprobe.probes.ProbeCheckWarning")

EPS = {"l2": [0.05, 0.2, 0.8], "linf": [1 / 255, 4 / 255, 16 / 255]}


@pytest.fixture(scope="module")
def results() -> dict[str, xr.Dataset]:
    models, x, brain = scenario()
    drive = {k: [probe(m, x, norm=nm, eps=e, objective="drive:V1", progress=False) for nm, e in EPS.items()]
             for k, m in models.items()}
    shift = {k: [probe(m, x, norm=nm, eps=e[:1], objective="shift", steps=20, progress=False) for nm, e in EPS.items()]
             for k, m in models.items()}
    pair = ("std1", "rob1")
    contrast = {(a, b): probe(None, x, norm="l2", eps=[0.2], objective=Contrast(models[a], models[b], "V1"), progress=False)
                for a, b in (pair, pair[::-1])}
    rng = np.random.default_rng(0)
    measured = brain(x).detach().numpy() + 0.05 * rng.normal(size=(x.shape[0], 6))
    pred = predictivity_scores(models, measured, images=x)
    sens = sensitivity(models, x, drive, rois=["V1"], n_boot=200)
    return {
        "sensitivity": sens,
        "discriminability": discriminability({"predictivity": pred, "sensitivity": sensitivity_scores(sens)}, n_boot=500),
        "transfer": transfer(models, x, drive, objective="drive:V1", brain=brain, n_boot=200),
        "controversial": controversial({k: models[k] for k in pair}, x, contrast, targets="V1", brain=brain,
                                       predictivity=pred.sel(model=list(pair)), n_boot=100),
        "axes": coding_axes(models, x, k=2, brain=brain, n_boot=100),
        "l2_linf": l2_linf(models, x, shift, n_boot=200),
        "linearity": linearity(models, x, drive, objective="drive:V1", n_boot=100),
        "semantics": semantics(x, drive, models=models, n_boot=100),
    }


def test_findings_on_a_scenario_with_known_answers(results: dict[str, xr.Dataset]) -> None:
    table = findings({"sim-linear": results}, n_boot=300)
    assert list(table.columns) == ["finding", "brain", "statistic", "value", "ci_low", "ci_high", "held", "note"]
    assert (table["brain"] == "sim-linear").all() and len(table) == 6
    row = table.set_index("finding")
    # built in: robust models read the axes along which images vary -> less sensitive in SD units
    assert row.loc["robust models need larger eps", "held"] and row.loc["robust models need larger eps", "value"] > 2
    # random pixel readouts: probes are orthogonal to other models' gradients (transfer ~ cos ~ 0)
    std = row.loc["standard probes transfer poorly across architectures"]
    assert std["held"] and abs(std["value"]) < 0.2 and std["ci_low"] <= std["value"] <= std["ci_high"]
    assert row.loc["robust probes transfer", "held"]
    assert row.loc["robust probes transfer to the brain", "held"]
    # linear models: the linearity analysis says so
    assert np.isinf(results["linearity"]["eps_depart"].sel(norm="linf")).all()


def test_findings_report_failures_with_numbers(results: dict[str, xr.Dataset]) -> None:
    # relabel: call the robust models standard and vice versa; the findings must now fail, with numbers
    swapped = {}
    for name, ds in results.items():
        new = ds
        for coord in ("training", "source_training", "target_training"):
            if coord in ds.coords:
                flip = {"standard": "robustified", "robustified": "standard", "adversarial": "standard"}
                new = new.assign_coords({coord: (ds[coord].dims, [flip.get(v, v) for v in ds[coord].values.astype(str)])})
        swapped[name] = new
    table = findings(swapped, n_boot=200).set_index("finding")
    eps_row = table.loc["robust models need larger eps"]
    assert not eps_row["held"] and eps_row["value"] < 1 and np.isfinite(eps_row["ci_high"])
    assert not table.loc["robust probes transfer", "held"]
    # now the "standard" sources include the models whose probes do transfer: the mean rises
    before = findings(results, n_boot=200).set_index("finding")
    key = "standard probes transfer poorly across architectures"
    assert table.loc[key, "value"] > before.loc[key, "value"] + 0.05
    assert (table["brain"] == "data").all()  # a plain {analysis: Dataset} dict is one brain called "data"


def test_untestable_findings_say_why(results: dict[str, xr.Dataset]) -> None:
    table = findings({"only-l2linf": {"l2_linf": results["l2_linf"]}}).set_index("finding")
    assert table["note"].str.startswith("not testable").sum() == 5
    assert np.isnan(table.loc["robust models need larger eps", "value"])
    assert not table.loc["robust models need larger eps", "held"]
    r = table.loc["l2 and linf target-wise sensitivity agree"]
    assert -1 <= r["value"] <= 1 and r["ci_low"] <= r["value"] <= r["ci_high"]
    with pytest.raises(ConfigError):
        findings({})


def test_results_write_to_netcdf_groups(results: dict[str, xr.Dataset], tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "results.nc"
    for i, (name, ds) in enumerate(results.items()):
        ds.to_netcdf(path, group=f"sim-linear/{name}", engine="h5netcdf", mode="w" if i == 0 else "a")
    table = findings({"sim-linear": results})
    table.to_xarray().rename(index="row").to_netcdf(path, group="findings", engine="h5netcdf", mode="a")
    for name, ds in results.items():
        back = xr.load_dataset(path, group=f"sim-linear/{name}", engine="h5netcdf")
        xr.testing.assert_allclose(back, ds)
        assert back.attrs["analysis"] == name
    back = xr.load_dataset(path, group="findings", engine="h5netcdf")
    assert list(back["finding"].values) == list(table["finding"])


def test_separation_finding_with_ci() -> None:
    rng = np.random.default_rng(5)
    m, n = 5, 60
    image = rng.normal(size=n)
    models = [f"m{i}" for i in range(m)]
    sep = xr.DataArray(image + np.arange(m)[:, None] * 0.6 + 0.3 * rng.normal(size=(m, n)), dims=("model", "image"),
                       coords={"model": models})
    null = xr.DataArray(image + 0.3 * rng.normal(size=(m, n)), dims=("model", "image"), coords={"model": models})
    good = findings({"disc": {"discriminability": discriminability({"sensitivity": sep, "predictivity": null},
                                                                   n_boot=300)}}, n_boot=300)
    row = good.set_index("finding").loc["sensitivity separates more model pairs than predictivity"]
    assert row["held"] and row["value"] == pytest.approx(1.0) and 0 < row["ci_low"] <= row["value"] <= row["ci_high"]
    bad = findings({"disc": {"discriminability": discriminability({"sensitivity": null, "predictivity": sep},
                                                                  n_boot=300)}}, n_boot=300)
    row = bad.set_index("finding").loc["sensitivity separates more model pairs than predictivity"]
    assert not row["held"] and row["value"] < -0.5 and "predictivity 1.00" in row["note"]
