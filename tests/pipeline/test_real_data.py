"""The REAL panel of a run: config section, findings rows, cache, results.nc groups and report section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainprobe.analysis._findings import COLUMNS
from brainprobe.pipeline.config import RealDataConfig, RunConfig
from brainprobe.pipeline.real_data import label_of, real_findings

pytest.importorskip("rsatoolbox")

MODELS = ["a_std", "a_rob", "b_std", "b_rob"]


def _config(**real):
    return RunConfig.model_validate({
        "dataset": {"kind": "simulated", "n_images": 10},
        "models": ["mobilenet_v2"],
        "probes": {"eps": {"l2": [0.5], "linf": ["1/255"]}},
        "real_data": real,
    })


def test_config_section():
    c = _config()
    assert isinstance(c.real_data, RealDataConfig)
    assert c.real_data.benchmark == "kriegeskorte92" and c.real_data.eps == {"l2": [0.5]}
    c = _config(norms=["linf"], eps={"linf": ["1/255"]})
    assert c.real_data.eps["linf"] == [pytest.approx(1 / 255)]
    with pytest.raises(ValueError, match="real_data.eps.linf"):
        _config(norms=["linf"])
    with pytest.raises(ValueError):
        _config(directions=["sideways"])
    base = RunConfig.model_validate({"dataset": {"kind": "simulated"}, "models": ["mobilenet_v2"],
                                     "probes": {"eps": {"l2": [0.5], "linf": [0.01]}}})
    assert base.real_data is None  # off unless set
    assert label_of("kriegeskorte92") == "real-kriegeskorte92" and label_of("/data/my_set") == "real-my_set"


def _rsa(scores, boot_sd, ceiling_ci=(0.2, 0.45)):
    rng = np.random.default_rng(0)
    n = 400
    boot = np.asarray(scores)[None] + rng.normal(scale=boot_sd, size=(n, 1))  # paired: shared resample noise
    boot = boot + rng.normal(scale=boot_sd / 10, size=(n, len(scores)))
    return xr.Dataset(
        {"rsa_human_best": ("model", np.asarray(scores)), "rsa_human_best_boot": (("boot", "model"), boot),
         "noise_ceiling_lower": 0.35, "noise_ceiling_upper": 0.6,
         "noise_ceiling_lower_ci_low": ceiling_ci[0], "noise_ceiling_lower_ci_high": ceiling_ci[1]},
        coords={"model": MODELS},
    )


def _frag(move_by_model):
    """Fragility results whose raised - lowered range at the largest budget is move_by_model (per subject)."""
    clean = np.full((4, 4), 0.15)
    sub = np.zeros((4, 1, 2, 2, 4))  # model, norm, eps_index, direction, subject
    for i, m in enumerate(move_by_model):
        sub[i, 0, 1, 1] = 0.15 + np.asarray(m) / 2
        sub[i, 0, 1, 0] = 0.15 - np.asarray(m) / 2
        sub[i, 0, 0] = 0.15
    return xr.Dataset(
        {"score_subject": (("model", "norm", "eps_index", "direction", "subject"), sub),
         "score": (("model", "norm", "eps_index", "direction"), sub.mean(-1)),
         "clean_score_subject": (("model", "subject"), clean), "eps": (("norm", "eps_index"), [[0.1, 0.5]])},
        coords={"model": MODELS, "norm": ["l2"], "direction": ["lower", "raise"], "subject": list("ABCD"),
                "training": ("model", ["standard", "robustified"] * 2), "architecture": ("model", ["a", "a", "b", "b"])},
    )


def test_findings_rows_tie_and_fragility():
    rsa = _rsa([0.17, 0.18, 0.16, 0.175], boot_sd=0.03)
    frag = _frag([[0.8, 0.7, 0.9, 0.75], [0.2, 0.25, 0.15, 0.2], [0.7, 0.8, 0.75, 0.7], [0.3, 0.2, 0.25, 0.3]])
    rows = real_findings(rsa, frag, n_boot=500)
    assert list(rows.columns) == COLUMNS and len(rows) == 3
    tie, differ, robust = (rows.iloc[i] for i in range(3))
    assert tie["value"] == pytest.approx(0.02) and tie["held"]  # 0.02 spread << ceiling CI width 0.25
    assert differ["held"] and differ["value"] == pytest.approx(0.7875 - 0.2, abs=1e-9)
    assert robust["held"] and robust["value"] == pytest.approx(np.mean([0.7875 - 0.2, 0.7375 - 0.2625]))
    assert rows["brain"].str.startswith("REAL").all()


def test_findings_rows_not_held_when_models_differ_and_robust_is_more_fragile():
    rsa = _rsa([0.1, 0.5, 0.1, 0.1], boot_sd=0.01, ceiling_ci=(0.3, 0.35))
    frag = _frag([[0.2] * 4, [0.6, 0.7, 0.65, 0.6], [0.2] * 4, [0.5, 0.6, 0.55, 0.5]])
    rows = real_findings(rsa, frag, n_boot=200)
    assert not rows.iloc[0]["held"]  # a 0.4 spread is far beyond the 0.05-wide ceiling CI
    assert rows.iloc[1]["held"]
    assert not rows.iloc[2]["held"] and rows.iloc[2]["value"] < 0
    # without fragility the two fragility rows say so and are not held
    rows = real_findings(rsa, None)
    assert len(rows) == 3 and not rows.iloc[1:]["held"].any() and "not computed" in rows.iloc[1]["note"]


@pytest.mark.slow
def test_run_real_data_cached_written_and_reported(tmp_path):
    """End to end on one real model (small: 48 px, one layer, one PGD step): results, findings rows,
    cache hit on the second call, results.nc groups, and the REAL report section with its figures."""
    from brainprobe.pipeline.cache import Cache
    from brainprobe.pipeline.outputs import write_results
    from brainprobe.pipeline.real_data import run_real_data
    from brainprobe.pipeline.run import StageLog
    from brainprobe.report.html import Section
    from brainprobe.report.real_data import real_section

    config = _config(layers=["features.2"], resolution=48, n_boot=10, steps=1, eps={"l2": [0.25]})
    results = {"findings": pd.DataFrame(columns=COLUMNS)}
    log = StageLog()
    cache = Cache(tmp_path / "cache")
    run_real_data(config, results, cache, log)
    groups = results["real-kriegeskorte92"]
    assert set(groups) == {"rsa", "fragility"}
    assert groups["rsa"].attrs["real"] == 1 and groups["fragility"].attrs["steps"] == 1
    assert len(results["findings"]) == 3 and results["findings"]["brain"].str.contains("REAL").all()
    again = {"findings": None}
    run_real_data(config, again, cache, log)
    assert log.as_dict()["real_data"]["cached"] == 1 and log.as_dict()["real_data"]["computed"] == 1
    xr.testing.assert_identical(again["real-kriegeskorte92"]["rsa"], groups["rsa"])
    path = tmp_path / "results.nc"
    write_results(config, results, path)
    back = xr.open_dataset(path, group="real-kriegeskorte92/fragility", engine="h5netcdf")
    np.testing.assert_allclose(back["score"].values, groups["fragility"]["score"].values)
    sec = real_section("real-kriegeskorte92", groups, tmp_path / "figures", Section(title="x", anchor="x"))
    assert sec.title.startswith("REAL") and len(sec.figures) == 2 and sec.tables and not sec.notes
    assert (tmp_path / "figures" / "real-kriegeskorte92" / "real_fragility.png").is_file()
