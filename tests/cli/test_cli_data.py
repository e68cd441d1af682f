"""``brainprobe data`` commands through the CLI entry point (exit codes, printed text).

Commands run in-process through ``brainprobe.cli.main`` (what the console script calls) so the
suite does not pay torch's import for every command; one test also runs the real subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    from brainprobe.cli import main

    monkeypatch.setenv("BRAINPROBE_PROGRESS", "0")

    def _invoke(*args: str) -> Result:
        try:
            main(["data", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return _invoke


def test_simulate_refuses_overwrite_then_forced_then_info(tmp_path: Path, run) -> None:
    out = tmp_path / "sim.nc"
    out.write_bytes(b"precious")
    args = ["simulate", "--out", str(out), "--n-images", "10", "--repeats", "2", "--resolution", "32",
            "--targets-per-roi", "3", "--seed", "4"]
    refused = run(*args)
    assert refused.returncode == 2
    assert refused.stderr == f"error: {out}: file exists; pass --force to overwrite it\n"
    assert out.read_bytes() == b"precious"

    res = run(*args, "--force")
    assert res.returncode == 0, res.stderr
    assert "SIMULATED" in res.stdout and f"wrote {out}" in res.stdout
    from brainprobe.data import Dataset

    ds = Dataset.load(out)
    assert ds.n_images == 10 and ds.n_targets == 9 and ds.n_repeats == 2 and ds.simulated
    assert ds.stimuli.shape[1:] == (32, 32, 3) and ds.attrs["brain"] == "efficientnet_lite2"
    assert ds.attrs["stimuli"]["seed"] == 4 and ds.attrs["brain_seed"] == 4
    assert not (tmp_path / "sim.nc.part").exists()

    info = run("info", str(out))
    assert info.returncode == 0
    assert "SIMULATED" in info.stdout and "sim-early" in info.stdout and "images: 10" in info.stdout


def test_info_simulated_and_real_file(tmp_path: Path, run) -> None:
    res = run("info", "simulated")
    assert res.returncode == 0
    assert res.stdout.startswith("*** SIMULATED brain") and "sim-late" in res.stdout
    from brainprobe.data import Dataset

    rng = np.random.default_rng(0)
    Dataset(rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8), None, None, trials=rng.normal(size=(6, 3, 4)),
            attrs={"source": "nsd", "subject": "subj01"}).save(tmp_path / "real.nc")
    res = run("info", str(tmp_path / "real.nc"))
    assert res.returncode == 0 and "SIMULATED" not in res.stdout and "subject: subj01" in res.stdout


def test_info_errors_are_one_line(tmp_path: Path, run) -> None:
    res = run("info", str(tmp_path / "missing.nc"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'missing.nc'}: dataset file not found"
    res = run("simulate", "--out", str(tmp_path / "nodir" / "x.nc"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "does not exist" in res.stderr
    res = run("simulate", "--out", str(tmp_path / "x.nc"), "--brain", "no_such_model", "--n-images", "4")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no_such_model" in res.stderr


def test_photos_lists_library(run) -> None:
    res = run("photos", "--split", "train")
    assert res.returncode == 0 and "photos (train)" in res.stdout and "foolbox" not in res.stdout


def test_console_script_error_exit_code(tmp_path: Path) -> None:
    """The real command line: a user error prints one line and exits with 2, no traceback."""
    env = {**os.environ, "BRAINPROBE_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "-m", "brainprobe", "data", "info", str(tmp_path / "none.nc")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2 and res.stderr == f"error: {tmp_path / 'none.nc'}: dataset file not found\n"
