"""The report and the stimulus export on a small real run made by the pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.report import build_report


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brainprobe", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.browser
def test_real_run_report_renders_in_chromium(tiny_run, browser, cdp):
    html = build_report(tiny_run)
    page = browser.load(html)
    (cdp.artifacts_dir() / "report_tiny_run.png").write_bytes(page["screenshot"])
    assert page["errors"] == []
    bad = [i for i in page["images"] if not (i["complete"] and i["naturalWidth"] > 0)]
    assert bad == []
    # predictivity, sensitivity, minimal eps, discriminability, transfer, l2 vs linf, linearity, convergence,
    # and one probe gallery per model
    assert len(page["images"]) == 8 + 2
    facts = page["facts"]
    assert facts["findingsTables"] == 1 and facts["findingsRows"] >= 5
    assert facts["findingsFirst"] and "SIMULATED" in (facts["banner"] or "")
    assert [r for r in facts["requests"] if not r.startswith("data:")] == []
    assert facts["scrollWidth"] <= 1366
    text = html.read_text()
    assert "Probe gallery: mobilenet_v2" in text and "figure '" not in text  # no figure failed


@pytest.mark.slow
def test_report_rebuilds_from_results_nc_without_recomputing(tiny_run, tmp_path, monkeypatch):
    import brainprobe.analysis as analysis
    import brainprobe.probes as probes

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("results.nc", "manifest.json"):
        shutil.copy2(tiny_run / name, copy / name)
    before = (copy / "results.nc").read_bytes()

    def forbidden(*a, **k):
        raise AssertionError("build_report recomputed an analysis or a probe")

    for mod in (analysis, probes):
        for name in [n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n, None))]:
            monkeypatch.setattr(mod, name, forbidden, raising=False)
    out = build_report(copy)
    assert (copy / "results.nc").read_bytes() == before
    text = out.read_text()
    assert text.count("<img ") == 8  # every analysis figure (convergence included); galleries need the kept probes
    assert "no probe perturbations kept" in text
    assert sorted(p.name for p in (copy / "figures").rglob("*.svg"))  # SVG next to every PNG
    assert len(list((copy / "figures").rglob("*.png"))) == len(list((copy / "figures").rglob("*.svg"))) == 8


@pytest.mark.slow
def test_cli_export_stimuli_from_run_matches_fresh_forward(tiny_run, tmp_path):
    from brainprobe.pipeline import stages
    from brainprobe.report.pngio import from_levels, read_png

    out = tmp_path / "stim"
    res = _cli("export-stimuli", str(tiny_run), "--model", "mobilenet_v2", "--eps", "4/255", "--out", str(out), "--steps", "2")
    assert res.returncode == 0, res.stderr
    assert "probes, budget used" in res.stdout
    summary = pd.read_csv(out / "probes.csv")
    changes = pd.read_csv(out / "changes.csv")
    meta = json.loads((out / "export.json").read_text())
    assert meta["source_model"] == "mobilenet_v2" and meta["norm"] == "linf" and meta["bits"] == 8
    assert set(changes["model"]) == {"mobilenet_v2", "efficientnet_lite0", "brain"}
    assert (summary["budget_used"] <= 4 / 255 + 1e-12).all()
    # fresh forward of the files on disk through the run's own encoders and brain
    index = json.loads((tiny_run / "probes" / "index.json").read_text())
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    label = next(iter(index["datasets"]))
    entry = index["datasets"][label]
    models = {m: torch.load(info["encoder"], weights_only=False).eval() for m, info in entry["models"].items()}
    models["brain"] = stages.make_brain(manifest["datasets"][label]["brain"]).eval()
    written = from_levels(np.stack([read_png(out / f) for f in summary["file"]]))
    clean = from_levels(np.stack([read_png(out / "clean" / f"{i}.png") for i in summary["image"]]))
    np.testing.assert_array_equal((clean.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1),
                                  np.load(tiny_run / "probes" / entry["images"]))
    with torch.no_grad():
        for name, model in models.items():
            y0, y1 = model(clean).numpy(), model(written).numpy()
            rois = model.targets["roi"].astype(str).to_numpy()
            for roi in np.unique(rois):
                fresh = (y1[:, rois == roi].mean(1) - y0[:, rois == roi].mean(1))
                rows = changes[(changes["model"] == name) & (changes["roi"] == roi)].set_index("image").loc[summary["image"]]
                np.testing.assert_allclose(rows["change"].to_numpy(), fresh, rtol=1e-4, atol=1e-6)


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    from brainprobe.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_errors_are_one_line_with_exit_code_2(synthetic_run, tmp_path, capsys):
    code, _, err = _main(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and err.strip().count("\n") == 0 and "run folder not found" in err
    code, _, err = _main(capsys, "export-stimuli", str(synthetic_run), "--model", "mobilenet_v2", "--eps", "two")
    assert code == 2 and "--eps" in err and "'two'" in err and err.count("\n") == 1
    code, _, err = _main(capsys, "export-stimuli", str(synthetic_run), "--model", "mobilenet_v2", "--eps", "0.1")
    assert code == 2 and "probes.keep_deltas" in err and "Traceback" not in err
    code, _, err = _main(capsys, "export-stimuli", str(synthetic_run), "--model", "m", "--eps", "0.1", "--bits", "12")
    assert code == 2 and "--bits must be 8 or 16" in err


def test_cli_report_rebuilds_synthetic_run(synthetic_run, capsys):
    code, out, err = _main(capsys, "report", str(synthetic_run))
    assert code == 0, err
    assert out.strip() == f"report: {synthetic_run / 'report.html'}"
    assert (synthetic_run / "report.html").stat().st_size > 10_000
