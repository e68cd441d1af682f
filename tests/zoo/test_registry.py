"""The registry: names, specs, errors, and the import rule (zoo needs only torch/torchvision/numpy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brainprobe.errors import ModelError
from brainprobe.zoo import get_spec, layer_names, list_models

OFFLINE = {"mobilenet_v2": 224, "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260, "vgg19": 224}


def test_names_and_kinds():
    specs = {s.name: s for s in list_models()}
    for name, res in OFFLINE.items():
        assert specs[name].weights.kind == "package" and specs[name].resolution == res
        assert specs[name].weights.sha256 and len(specs[name].weights.sha256) == 64
    for name in ("alexnet", "vgg16", "resnet18", "resnet50", "densenet161"):
        assert specs[name].weights.kind == "url" and specs[name].training.kind == "standard"
    l2 = sorted(s.training.eps for s in specs.values() if s.training.kind == "adversarial" and s.training.norm == "l2")
    linf = sorted(round(s.training.eps * 255, 3) for s in specs.values() if s.training.kind == "adversarial" and s.training.norm == "linf")
    assert l2 == [0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 3, 5]
    assert linf == [0.5, 1, 2, 4, 8]
    assert all(s.family == "resnet" for s in specs.values() if s.training.kind == "adversarial")


def test_normalisations():
    vgg = get_spec("vgg19").normalization
    assert vgg.channel_order == "bgr" and vgg.scale == 255 and vgg.mean == (103.939, 116.779, 123.68)
    assert get_spec("mobilenet_v2").normalization.mean == (0.485, 0.456, 0.406)
    assert get_spec("vgg19").has_classifier is False and get_spec("mobilenet_v2").has_classifier


def test_unknown_model_error_lists_names():
    with pytest.raises(ModelError) as err:
        get_spec("mobilenet_v3")
    msg = str(err.value)
    assert "unknown model 'mobilenet_v3'" in msg and "mobilenet_v2" in msg and "resnet50_linf_eps8" in msg
    assert "\n" not in msg
    with pytest.raises(ModelError):
        layer_names("mobilenet_v3")


def test_zoo_imports_only_torch_numpy_and_stdlib():
    code = (
        "import sys, brainprobe.zoo as z; z.get_spec('resnet50'); "
        "heavy = ('pandas', 'xarray', 'pydantic', 'typer', 'scipy', 'sklearn', 'safetensors', 'himalaya', 'yaml', 'h5py', 'efficientnet_lite_pytorch'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
