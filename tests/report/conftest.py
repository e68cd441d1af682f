"""Synthetic analysis Datasets with the documented dims, for figure and HTML tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

MODELS = ["mobilenet_v2", "efficientnet_lite0", "mobilenet_v2_robust_l2_eps1", "efficientnet_lite0_robust_l2_eps1"]
TRAINING = ["standard", "standard", "robustified", "robustified"]
ROIS = ["early", "mid", "late"]
EPS = {"l2": [0.03, 0.1, 0.3, 1.0], "linf": [0.5 / 255, 1 / 255, 2 / 255, 4 / 255]}


def synthetic_analyses(seed: int = 0) -> dict[str, xr.Dataset]:
    """One Dataset per analysis group, laid out as brainprobe.analysis / the pipeline write them.

    Robust models are 5x less sensitive than standard ones; the eps coordinate is the union of
    the norms' grids with NaN where a norm was not probed, as in the real analyses.
    """
    rng = np.random.default_rng(seed)
    nm, nr = len(MODELS), len(ROIS)
    coords = {"model": MODELS, "training": ("model", TRAINING)}
    robust = np.array([t != "standard" for t in TRAINING])
    gain = np.where(robust, 1.0, 5.0)

    r = rng.uniform(0.3, 0.8, (nm, nr))
    pred = xr.Dataset(
        {"roi_r_normalised": (("model", "roi"), r),
         "roi_r_normalised_ci": (("model", "roi", "bound"), np.stack([r - 0.05, r + 0.05], axis=-1)),
         "r_normalised": (("model", "target"), rng.uniform(0.2, 0.9, (nm, 6)))},
        coords={**coords, "roi": ROIS, "bound": ["low", "high"], "target": [f"t{i}" for i in range(6)],
                "roi_of": ("target", ROIS * 2)},
        attrs={"analysis": "predictivity"},
    )
    norms = ["l2", "linf"]
    all_eps = np.unique(np.concatenate([EPS["l2"], EPS["linf"]]))
    curve = np.full((nm, 2, len(all_eps), nr), np.nan)
    for ni, nm_ in enumerate(norms):
        pos = np.searchsorted(all_eps, EPS[nm_])
        unit = 3.0 if nm_ == "l2" else 3.0 * 60  # a linf budget buys more change than the same l2 one
        curve[:, ni, pos] = gain[:, None, None] * (np.asarray(EPS[nm_]) * unit)[None, :, None] * rng.uniform(0.8, 1.2, (nm, 4, nr))
    min_eps = np.stack([1.0 / (3 * gain), 1.0 / (180 * gain)], axis=1)[:, :, None] * np.ones((nm, 2, nr))
    min_eps[0, 1, 0] = np.inf  # one model x ROI never reaches the criterion
    sens = xr.Dataset(
        {"curve": (("model", "norm", "eps", "roi"), curve),
         "curve_ci_low": (("model", "norm", "eps", "roi"), curve * 0.8),
         "curve_ci_high": (("model", "norm", "eps", "roi"), curve * 1.2),
         "min_eps": (("model", "norm", "roi"), min_eps)},
        coords={**coords, "norm": norms, "eps": all_eps, "roi": ROIS},
        attrs={"analysis": "sensitivity", "criterion": 1.0},
    )
    disc = xr.Dataset(
        {"fraction_significant": (("score",), [0.33, 1.0]), "variance_ratio": (("score",), [2.0, 40.0])},
        coords={"score": ["predictivity", "sensitivity"]},
        attrs={"analysis": "discriminability"},
    )
    t = np.where(robust[None, :] & robust[:, None], 0.7, 0.15) + rng.uniform(0, 0.05, (nm, nm))
    np.fill_diagonal(t, 1.0)
    transfer_vals = np.full((nm, nm, 2, len(all_eps)), np.nan)
    brain_vals = np.full((nm, 2, len(all_eps)), np.nan)
    for ni, nm_ in enumerate(norms):
        pos = np.searchsorted(all_eps, EPS[nm_])
        transfer_vals[:, :, ni, pos] = t[:, :, None]
        brain_vals[:, ni, pos] = np.where(robust, 0.6, 0.1)[:, None]
    transfer = xr.Dataset(
        {"transfer": (("source_model", "target_model", "norm", "eps"), transfer_vals),
         "brain_ratio": (("source_model", "norm", "eps"), brain_vals)},
        coords={"source_model": MODELS, "target_model": MODELS, "norm": norms, "eps": all_eps,
                "source_training": ("source_model", TRAINING), "target_training": ("target_model", TRAINING)},
        attrs={"analysis": "transfer", "brain": "efficientnet_lite2 (SIMULATED)", "has_brain": 1},
    )
    names = MODELS + ["brain"]
    rb = np.append(robust, True)
    a = np.where(rb[None, :] & rb[:, None], 0.5, 0.1)
    np.fill_diagonal(a, 1.0)
    axes = xr.Dataset(
        {"alignment": (("roi", "model_a", "model_b"), np.repeat(a[None], nr, axis=0)),
         "chance": (("roi",), np.full(nr, 0.01))},
        coords={"roi": ROIS, "model_a": names, "model_b": names, "model": names,
                "training": ("model", TRAINING + ["unknown"])},
        attrs={"analysis": "axes", "k": 4, "brain": "brain"},
    )
    nt = 60
    base = rng.gamma(2.0, 1.0, (nm, 2, nt))
    l2l = xr.Dataset(
        {"target_sensitivity_l2": (("model", "l2_eps", "target"), base),
         "target_sensitivity_linf": (("model", "linf_eps", "target"), base * 1.1 + rng.normal(0, 0.2, (nm, 2, nt))),
         "r": (("model", "l2_eps", "linf_eps"), np.full((nm, 2, 2), 0.97)),
         "r_model": (("model",), np.full(nm, 0.96))},
        coords={**coords, "target": [f"t{i}" for i in range(nt)], "l2_eps": EPS["l2"][:2], "linf_eps": EPS["linf"][:2]},
        attrs={"analysis": "l2_linf"},
    )
    predicted = np.full((nm, 2, len(all_eps), 3), np.nan)
    for ni, nm_ in enumerate(norms):
        pos = np.searchsorted(all_eps, EPS[nm_])
        predicted[:, ni, pos] = gain[:, None, None] * np.asarray(EPS[nm_])[None, :, None] * (3.0 if nm_ == "l2" else 180) * np.ones((nm, 4, 3))
    actual = predicted / (1 + 0.5 * predicted / gain[:, None, None, None])
    lin = xr.Dataset(
        {"actual": (("model", "norm", "eps", "image"), actual), "predicted": (("model", "norm", "eps", "image"), predicted),
         "eps_depart": (("model", "norm"), np.stack([0.2 / gain, 2 / 255 / gain], axis=1))},
        coords={**coords, "norm": norms, "eps": all_eps, "image": np.arange(3)},
        attrs={"analysis": "linearity", "tolerance": 0.1},
    )
    contro = xr.Dataset(
        {"controversiality": (("model_a", "model_b", "norm", "eps"), rng.uniform(0, 1, (nm, nm, 1, 2)))},
        coords={"model_a": MODELS, "model_b": MODELS, "norm": ["l2"], "eps": EPS["l2"][:2]},
        attrs={"analysis": "controversial"},
    )
    frac = np.clip(rng.normal(0.97, 0.04, (nm, 2, 3)), 0.5, 1.1)
    frac[0] = 0.8  # one model that did not converge
    conv = xr.Dataset(
        {"fraction": (("model", "norm", "image"), frac),
         "fraction_median": (("model", "norm"), np.median(frac, -1)),
         "eps": (("norm",), np.array([EPS["l2"][0], EPS["linf"][0]]))},
        coords={**coords, "norm": ["l2", "linf"], "image": np.arange(3)},
        attrs={"analysis": "convergence", "threshold": 0.95},
    )
    return {"predictivity": pred, "sensitivity": sens, "discriminability": disc, "transfer": transfer,
            "axes": axes, "l2_linf": l2l, "linearity": lin, "controversial": contro, "convergence": conv}


def synthetic_findings(brains: list[str]) -> pd.DataFrame:
    rows = []
    for b in brains:
        rows += [
            {"finding": "robust models need larger eps", "brain": b, "statistic": "median minimal-eps ratio robust/standard",
             "value": 5.0, "ci_low": 3.9, "ci_high": 6.2, "held": True},
            {"finding": "sensitivity separates more model pairs than predictivity", "brain": b,
             "statistic": "fraction separated: sensitivity - predictivity", "value": 0.67, "ci_low": 0.5, "ci_high": 0.83, "held": True},
            {"finding": "l2 vs linf agree voxel-wise", "brain": b, "statistic": "Pearson R", "value": 0.95,
             "ci_low": 0.93, "ci_high": 0.97, "held": False},
        ]
    return pd.DataFrame(rows)


@pytest.fixture
def analyses() -> dict[str, xr.Dataset]:
    return synthetic_analyses()


def write_run(run_dir, analyses_by_label: dict[str, dict[str, xr.Dataset]], findings: pd.DataFrame | None,
              *, simulated: bool = True, manifest: dict | None = None):
    """Write a run folder (results.nc with the documented groups + manifest.json)."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tree = {"/": xr.Dataset(attrs={"brainprobe_version": "0.0.test", "config_sha256": "ab" * 32,
                                   "simulated": int(simulated), "dataset_labels": ",".join(analyses_by_label)})}
    for label, groups in analyses_by_label.items():
        for name, ds in groups.items():
            tree[f"/{label}/{name}"] = ds
    if findings is not None:
        tree["/findings"] = xr.Dataset.from_dataframe(findings.reset_index(drop=True).rename_axis("row"))
    xr.DataTree.from_dict(tree).to_netcdf(run_dir / "results.nc", engine="h5netcdf")
    manifest = manifest if manifest is not None else {
        "name": "synthetic-test-run", "seed": 0, "device": "cpu", "threads": 1,
        "versions": {"brainprobe": "0.0.test", "torch": "2.x"},
        "weights_sha256": {m: "0" * 64 for m in MODELS}, "timings": {"probes": 1.5, "analyses": 0.4},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


@pytest.fixture
def synthetic_run(tmp_path):
    labels = ["sim-efficientnet_lite2", "sim-efficientnet_lite2_robust"]
    return write_run(tmp_path / "run", {lb: synthetic_analyses(i) for i, lb in enumerate(labels)}, synthetic_findings(labels))


def _load_cdp():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("brainprobe_tests_cdp", Path(__file__).with_name("cdp.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def cdp():
    """The headless-Chromium driver module (tests/report/cdp.py)."""
    return _load_cdp()


@pytest.fixture
def browser(cdp):
    """A headless chromium; FAILS when chromium is missing unless BRAINPROBE_SKIP_BROWSER=1."""
    import os

    exe = cdp.find_chromium()
    if exe is None:
        if os.environ.get("BRAINPROBE_SKIP_BROWSER") == "1":
            pytest.skip("chromium missing and BRAINPROBE_SKIP_BROWSER=1")
        pytest.fail("chromium not found: install Debian's chromium (`make browser` or `apt-get install -y chromium`), "
                    "or set BRAINPROBE_SKIP_BROWSER=1 to skip the browser tests")
    with cdp.Browser(exe) as b:
        yield b


def tiny_run_config(root) -> dict:
    """A small but real run: one simulated brain, two offline models, 64 px, every analysis."""
    return {
        "name": "report-tiny",
        "seed": 0,
        "threads": 2,
        "device": "cpu",
        "dataset": {
            "kind": "simulated",
            "brains": [{"backbone": "efficientnet_lite0", "seed": 0, "targets_per_roi": 8}],
            "n_images": 40,
            "resolution": 64,
            "repeats": 2,
        },
        "models": [{"name": "mobilenet_v2", "layer": "features.10"}, {"name": "efficientnet_lite0", "layer": "_blocks.10"}],
        "encoding": {"cv": 3, "batch_size": 20},
        "probes": {
            "norms": ["l2", "linf"],
            "eps": {"l2": [0.1, 0.5], "linf": ["1/255", "4/255"]},
            "steps": 2,
            "n_images": 6,
            "image_chunk": 3,
            "batch_size": 16,
            "keep_deltas": 2,
        },
        # the analyses behind the findings table; the others are exercised with synthetic layouts
        "analyses": {"include": ["sensitivity", "discriminability", "transfer", "l2_linf", "linearity"], "n_boot": 50},
        "output": {"dir": str(root / "run"), "cache_dir": str(root / "cache")},
    }


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The run folder of :func:`tiny_run_config`, made once per session by the real pipeline."""
    import warnings

    import yaml

    from brainprobe.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("report-tiny")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_run_config(root), sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_pipeline(path)
