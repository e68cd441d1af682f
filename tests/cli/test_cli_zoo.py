"""CLI of the zoo: ``brainprobe models [NAME]`` and ``brainprobe weights fetch|path|check``."""

from __future__ import annotations

import subprocess
import sys

import torch

from brainprobe.cli import main

# Child-process prelude: every non-loopback connection and DNS lookup fails, as in the suite.
_NO_NETWORK = """
import socket, sys
def _refuse(*a, **k):
    raise OSError("network disabled for this test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.getaddrinfo = _refuse
socket.create_connection = _refuse
from brainprobe.cli import main
main(sys.argv[1:])
"""


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as ex:
        code = int(ex.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _offline_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _NO_NETWORK, *args], capture_output=True, text=True, timeout=120)


def test_models_table(capsys):
    code, out, _ = _cli(capsys, "models")
    assert code == 0
    header, rule, *rows = out.strip().splitlines()
    assert header.split() == ["name", "family", "training", "res", "weight", "source", "offline"]
    table = {r.split()[0]: r for r in rows}
    assert {"mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg19"} <= set(table)
    assert {"alexnet", "vgg16", "resnet18", "resnet50", "densenet161", "resnet50_l2_eps3", "resnet50_linf_eps8"} <= set(table)
    assert table["mobilenet_v2"].rstrip().endswith("yes") and table["resnet50"].rstrip().endswith("no")
    assert "240" in table["efficientnet_lite1"] and "adversarial l2 eps=3" in table["resnet50_l2_eps3"]
    assert "adversarial linf eps=8/255" in table["resnet50_linf_eps8"]


def test_models_name_lists_layers_with_defaults(capsys):
    code, out, _ = _cli(capsys, "models", "mobilenet_v2")
    assert code == 0
    lines = out.splitlines()
    assert "  * features.10" in lines and "    features.11" in lines
    assert sum(line.startswith("  * ") for line in lines) == 3


def test_unknown_model_lists_valid_names(capsys):
    code, _, err = _cli(capsys, "models", "resnet5000")
    assert code == 2
    assert err.startswith("error: unknown model 'resnet5000'; valid names:") and "mobilenet_v2" in err
    assert len(err.strip().splitlines()) == 1


def test_weights_path(capsys):
    code, out, _ = _cli(capsys, "weights", "path", "resnet50")
    assert code == 0 and out.strip().endswith("weights/resnet50-0676ba61.pth")


def test_weights_check_with_local_file(capsys, tmp_path):
    from brainprobe.zoo import get_spec

    path = tmp_path / "r18.pth"
    torch.save(get_spec("resnet18").builder().state_dict(), path)
    code, out, _ = _cli(capsys, "weights", "check", "resnet18", "--weights", str(path))
    assert code == 0 and '"model": "resnet18"' in out and str(path) in out


def test_weights_fetch_without_network_is_clean():
    out = _offline_subprocess("weights", "fetch", "resnet50")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip() and "%" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: cannot download weights of 'resnet50'")
    assert "--weights PATH" in lines[0]


def test_fetch_unknown_model_lists_valid_names(capsys):
    code, _, err = _cli(capsys, "weights", "fetch", "nope")
    assert code == 2 and "unknown model 'nope'; valid names:" in err and "resnet50" in err
