"""All analyses on one simulated scenario with known answers, written to results.nc, condensed by findings()."""

from __future__ import annotations

import re

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
    assert (table["brain"] == "sim-linear").all() and len(table) == 10  # 7 rows + coding axes, semantics, attack control (untestable here)
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
    assert table["note"].str.startswith("not testable").sum() == 9  # 6 + coding axes, semantics, attack control
    assert np.isnan(table.loc["robust models need larger eps", "value"])
    assert not table.loc["robust models need larger eps", "held"]
    r = table.loc["l2 and linf target-wise sensitivity agree"]
    # an attenuation-corrected r estimates a true-score correlation and may pass 1 by sampling error
    assert -1.1 <= r["value"] <= 1.1 and r["ci_low"] <= r["value"] <= r["ci_high"]
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
    row = good.set_index("finding").loc["sensitivity is more repeatable across images than predictivity"]
    assert row["held"] and row["value"] == pytest.approx(1.0) and 0 < row["ci_low"] <= row["value"] <= row["ci_high"]
    bad = findings({"disc": {"discriminability": discriminability({"sensitivity": null, "predictivity": sep},
                                                                  n_boot=300)}}, n_boot=300)
    row = bad.set_index("finding").loc["sensitivity is more repeatable across images than predictivity"]
    assert not row["held"] and row["value"] < -0.5 and "predictivity 1.00" in row["note"]


def _transfer_matrix(cross: dict[str, float], same: float = 0.8, noise: float = 0.1, n: int = 30,
                     seed: int = 0) -> xr.Dataset:
    """A constructed transfer result: 2 architectures x (standard, robust); per-image changes around known ratios.

    ``cross[kind]`` is the ratio of that kind's sources to the other architecture, ``same`` the
    teacher/student ratio within an architecture, ``noise`` the size of equal-norm random baselines.
    """
    rng = np.random.default_rng(seed)
    names = ["std_a", "rob_a", "std_b", "rob_b"]
    arch = np.array(["a", "a", "b", "b"])
    kind = np.array(["standard", "robustified", "standard", "robustified"])
    ratio = np.eye(4)
    for i in range(4):
        for j in range(4):
            if i != j:
                ratio[i, j] = same if arch[i] == arch[j] else cross["robust" if kind[i] != "standard" else "standard"]
    jitter = 1 + 0.2 * rng.normal(size=(4, 4, 1, 1, n))
    change = ratio[:, :, None, None, None] * jitter
    for j in range(4):
        change[j, j] = 1 + 0.2 * rng.normal(size=(1, 1, n))
    rand = noise * np.abs(1 + 0.2 * rng.normal(size=(2, 4, 4, 1, 1, n)))
    return xr.Dataset(
        {"change": (("source_model", "target_model", "norm", "eps", "image"), change),
         "random_change": (("noise", "source_model", "target_model", "norm", "eps", "image"), rand)},
        coords={"source_model": names, "target_model": names, "norm": ["l2"], "eps": [0.5], "image": np.arange(n),
                "noise": ["white", "pink"], "source_training": ("source_model", kind),
                "target_training": ("target_model", kind), "source_architecture": ("source_model", arch),
                "target_architecture": ("target_model", arch)},
    )


def test_pair_masks_compare_robust_and_standard_on_the_same_cross_architecture_pairs() -> None:
    # same-architecture (teacher/student) transfer is high, cross-architecture transfer equal for both kinds
    equal = findings({"m": {"transfer": _transfer_matrix({"robust": 0.3, "standard": 0.3}, same=0.8)}}, n_boot=400)
    row = equal.set_index("finding").loc["robust probes transfer"]
    assert row["value"] == pytest.approx(0.0, abs=0.03) and not row["held"]
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["ci_low"] < 0 < row["ci_high"]
    assert re.search(r"transfer, reported apart: 0\.[78]\d\d over 4 pairs", row["note"])  # teacher/student transfer reported on its own
    # averaging over every pair (the old statistic) would have shown a robust advantage only if kinds differed; here
    # robust sources transfer more across architectures and beat noise: held
    better = findings({"m": {"transfer": _transfer_matrix({"robust": 0.5, "standard": 0.1})}}, n_boot=400)
    row = better.set_index("finding").loc["robust probes transfer"]
    assert row["held"] and row["value"] == pytest.approx(0.4, abs=0.05) and row["ci_low"] > 0.3
    # the same contrast, but random perturbations of the same norm move the targets more: not held
    noisy = findings({"m": {"transfer": _transfer_matrix({"robust": 0.5, "standard": 0.1}, noise=0.7)}}, n_boot=400)
    row = noisy.set_index("finding").loc["robust probes transfer"]
    assert row["ci_low"] > 0.3 and not row["held"] and re.search(r"white noise -0\.[12]\d\d \[-", row["note"])
    std = noisy.set_index("finding").loc["standard probes transfer poorly across architectures"]
    assert std["value"] == pytest.approx(0.1, abs=0.03) and std["held"]


def test_every_row_interval_contains_its_value(results: dict[str, xr.Dataset]) -> None:
    per_brain = {"sim-linear": results,
                 "constructed": {"transfer": _transfer_matrix({"robust": 0.4, "standard": 0.2}, seed=3),
                                 "l2_linf": results["l2_linf"], "discriminability": results["discriminability"]}}
    table = findings(per_brain, n_boot=300)
    finite = table[np.isfinite(table["ci_low"]) & np.isfinite(table["ci_high"])]
    assert len(finite) >= 8
    assert ((finite["ci_low"] <= finite["value"]) & (finite["value"] <= finite["ci_high"])).all(), finite
    # a row whose interval misses its value is reported as not held
    from brainprobe.analysis._findings import _checked, _row

    bad = _checked(_row("f", "b", "s", 1.0, 1.5, 2.0, True, "n"))
    assert not bad["held"] and "does not contain" in bad["note"]
    assert _checked(_row("f", "b", "s", 1.7, 1.5, 2.0, True, "n"))["held"]


def test_hierarchical_bootstrap_resamples_models_within_a_class() -> None:
    from brainprobe.analysis._findings import _hierarchical

    rng = np.random.default_rng(1)
    n = 40
    # 3 robust models with very different levels, 1 standard: model-to-model spread must widen the interval
    levels = np.array([1.0, 2.0, 3.0, 0.5])
    x = levels[:, None] + 0.05 * rng.normal(size=(4, n))
    robust, standard = np.array([1, 1, 1, 0], bool), np.array([0, 0, 0, 1], bool)

    def per_model(w: np.ndarray) -> np.ndarray:
        return x @ w.T

    v, lo, hi = _hierarchical(per_model, n, [robust, standard], lambda c: c[0] - c[1], 1000, 0.95, 0)
    assert v == pytest.approx(1.5, abs=0.02)
    assert hi - lo > 1.0  # dominated by which robust models are drawn (images alone give ~0.03)
    v2, lo2, hi2 = _hierarchical(per_model, n, [robust, standard], lambda c: c[0] - c[1], 1000, 0.95, 0,
                                 groups=np.repeat(np.arange(10), 4))
    assert lo2 <= v2 <= hi2


def test_axes_semantics_and_attack_rows_on_constructed_results() -> None:
    import torch

    from _analysis_helpers import LinearModel, Probe, mid_images
    from brainprobe.analysis import coding_axes, findings, semantics

    size = 6
    p = 3 * size * size
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(p, p)))[0].T
    x = mid_images(6, size=size)
    brain = LinearModel(torch.tensor(np.stack([q[0], q[1]])), training="standard", architecture="vgg")
    models = {"r": LinearModel(torch.tensor(np.stack([q[0], q[1]])), training="robustified", architecture="a"),
              "s": LinearModel(torch.tensor(np.stack([q[0], q[2]])), training="standard", architecture="b")}
    axes = coding_axes(models, x, k=2, method="exact", brain=brain, n_boot=50, whiten=False)
    # linear models: matched == mismatched, so both excesses are 0 and so is the difference
    g = torch.Generator().manual_seed(0)
    eps = torch.tensor([0.1, 0.3])
    smooth = torch.randn(1, 6, 3, 1, 1, generator=g).expand(1, 6, 3, size, size)
    rough = torch.randn(1, 6, 3, size, size, generator=g)
    unit = lambda d: d / d.flatten(2).norm(dim=-1)[..., None, None, None]  # noqa: E731
    probes = {"r": Probe(eps.reshape(-1, 1, 1, 1, 1) * unit(smooth), eps, "l2"),
              "s": Probe(eps.reshape(-1, 1, 1, 1, 1) * unit(rough), eps, "l2")}
    sem = semantics(x, probes, n_boot=50, info={"r": {"training": "robustified", "architecture": "a"},
                                                 "s": {"training": "standard", "architecture": "b"}})
    table = findings({"axes": axes, "semantics": sem}, n_boot=200)
    row = table.set_index("finding").loc["robust models' local axes align better with the brain's"]
    assert row["value"] == pytest.approx(0.0, abs=1e-6)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    lf = table.set_index("finding").loc["robust probes are more semantic (low-frequency share)"]
    # a DC-only probe has share 1; the white one about the bins' share: robust minus standard is large and held
    share = sem["low_freq_share"].values
    noise = sem["noise_low_freq_share"].sel(noise="pink").values
    assert lf["value"] == pytest.approx(np.mean((share - noise)[0]) - np.mean((share - noise)[1]), abs=1e-9)
    assert lf["held"] and lf["ci_low"] <= lf["value"] <= lf["ci_high"]
    att = table.set_index("finding").loc["standard probes' poor transfer survives stronger attacks (input diversity, ensembles)"]
    assert "not testable" in att["note"]
