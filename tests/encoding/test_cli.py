"""`brainprobe fit`: predictivity table (model x ROI) and one-line errors with exit code 2."""

from __future__ import annotations

import pandas as pd
import pytest

from brainprobe.cli import main


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_fit_prints_table_and_writes_files(mobilenet_dataset, tmp_path, capsys):
    path = mobilenet_dataset.save(tmp_path / "data.nc")
    code, out, err = _run(["fit", "--data", str(path), "--models", "mobilenet_v2", "--layer", "features.4,features.13",
                           "--cv", "3", "--out", str(tmp_path / "res")], capsys)
    assert code == 0, err
    assert "r / sqrt(noise ceiling)" in out
    lines = out.strip().splitlines()
    assert "early" in lines[1] and "late" in lines[1]
    assert lines[-1].startswith("mobilenet_v2") and lines[-1].count("[") == 2
    table = pd.read_csv(tmp_path / "res" / "predictivity.csv", index_col=0)
    assert list(table.columns) == ["layer", "early", "late"]
    assert (tmp_path / "res" / "predictivity_mobilenet_v2.nc").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--models", "nonet"], "unknown model 'nonet'"),
        (["--models", "mobilenet_v2", "--layer", "features.99"], "unknown layer 'features.99'"),
        (["--models", "mobilenet_v2", "--layer", "features.4", "--cv", "100"], "for 100-fold cross-validation"),
        (["--models", "mobilenet_v2", "--pooling", "max"], "pooling 'max'"),
        (["--models", "mobilenet_v2", "--readout", "nope"], "readout 'nope' is unknown"),
        (["--models", "mobilenet_v2", "--readout", "factorized", "--pooling", "avg"], "cannot use pooling 'avg'"),
    ],
)
def test_fit_bad_inputs_exit_2(mobilenet_dataset, tmp_path, capsys, args, message):
    path = tmp_path / "data.nc"
    if not path.exists():
        mobilenet_dataset.save(path)
    code, out, err = _run(["fit", "--data", str(path), *args], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_fit_missing_data_file(tmp_path, capsys):
    code, _, err = _run(["fit", "--data", str(tmp_path / "none.nc")], capsys)
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
