"""Robustified copies: discovered from recipe JSON + fp16 safetensors, verified by sha256."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from brainprobe.errors import ModelError, WeightsError
from brainprobe.zoo import RECIPE_KEYS, get_spec, list_models, load_backbone, register_robustified, robust_name


def _write_copy(folder, source="mobilenet_v2", norm="l2", eps=1.0, seed=0):
    """A fake robustified copy: the source weights nudged by noise, stored fp16, with its recipe."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    base = load_backbone(source)
    g = torch.Generator().manual_seed(seed)
    state = {
        k: (v + 0.01 * torch.randn(v.shape, generator=g) * v.std() if v.is_floating_point() and v.numel() > 1 else v)
        for k, v in base.net.state_dict().items()
    }
    state16 = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    name = robust_name(source, norm, eps)
    weights = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in state16.items()}, str(weights))
    recipe = {
        "name": name,
        "source_model": source,
        "source_weights_sha256": base.weights_sha256,
        "layers": base.spec.default_layers,
        "norm": norm,
        "eps": eps,
        "steps": 3,
        "lr": 0.01,
        "seed": seed,
        "resolution": 64,
        "images": 8,
        "wall_time_s": 1.0,
        "final_losses": [0.1],
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    (folder / f"{name}.json").write_text(json.dumps(recipe))
    return name, state16, folder / f"{name}.json"


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """A fresh BRAINPROBE_HOME and registry, so copies made here do not leak into other tests."""
    from brainprobe.zoo import registry

    home = tmp_path / "home"
    monkeypatch.setenv("BRAINPROBE_HOME", str(home))
    monkeypatch.setattr(registry, "_REGISTERED", {})
    return home


def test_robust_name_convention():
    assert robust_name("mobilenet_v2", "l2", 1.0) == "mobilenet_v2_robust_l2_eps1"
    assert robust_name("vgg19", "l2", 0.25) == "vgg19_robust_l2_eps0.25"
    assert robust_name("efficientnet_lite0", "linf", 4 / 255) == "efficientnet_lite0_robust_linf_eps4"
    with pytest.raises(ModelError):
        robust_name("vgg19", "l1", 1.0)


def test_discovered_copy_loads_fp16_weights_as_fp32(private_home):
    name, state16, _ = _write_copy(private_home / "robust")
    assert name in [s.name for s in list_models()]
    spec = get_spec(name)
    assert spec.training.kind == "robustified" and spec.weights.kind == "robustified"
    assert spec.weights.source_model == "mobilenet_v2" and spec.training.norm == "l2" and spec.training.eps == 1.0
    assert spec.layers == get_spec("mobilenet_v2").layers and spec.resolution == 224
    bb = load_backbone(name)
    assert bb.weights_sha256 == json.loads((private_home / "robust" / f"{name}.json").read_text())["sha256"]
    for key, value in bb.net.state_dict().items():
        assert value.dtype == (torch.float32 if state16[key].is_floating_point() else state16[key].dtype)
        torch.testing.assert_close(value, state16[key].to(value.dtype))
    x = torch.rand(1, 3, 64, 64)
    source = load_backbone("mobilenet_v2")
    with torch.no_grad():
        assert not torch.allclose(bb(x), source(x))  # really the copy's weights


def test_sha256_mismatch_at_load(private_home):
    name, _, recipe_path = _write_copy(private_home / "robust")
    recipe = json.loads(recipe_path.read_text())
    recipe["sha256"] = "f" * 64
    recipe_path.write_text(json.dumps(recipe))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_backbone(name)


def test_register_from_any_folder(private_home, tmp_path):
    name, _, recipe_path = _write_copy(tmp_path / "elsewhere", norm="linf", eps=2 / 255)
    with pytest.raises(ModelError):
        get_spec(name)
    spec = register_robustified(recipe_path)
    assert spec.name == name == "mobilenet_v2_robust_linf_eps2"
    assert get_spec(name).weights.path == recipe_path.with_suffix(".safetensors")
    load_backbone(name)


def test_bad_recipes(private_home, tmp_path):
    _, _, recipe_path = _write_copy(tmp_path / "bad")
    recipe = json.loads(recipe_path.read_text())
    del recipe["sha256"], recipe["seed"]
    recipe_path.write_text(json.dumps(recipe))
    with pytest.raises(ModelError, match=r"lacks keys \['seed', 'sha256'\]"):
        register_robustified(recipe_path)

    recipe.update(sha256="0" * 64, seed=0, source_model="no_such_net", name="no_such_net_robust_l2_eps1")
    recipe_path.write_text(json.dumps(recipe))
    with pytest.raises(ModelError, match="unknown source_model 'no_such_net'; valid names: mobilenet_v2"):
        register_robustified(recipe_path)

    # a broken recipe in a scanned folder is skipped with a warning naming it
    robust = private_home / "robust"
    robust.mkdir(parents=True)
    (robust / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken.json"):
        names = [s.name for s in list_models()]
    assert "mobilenet_v2" in names


def test_recipe_keys_cover_the_contract():
    assert set(RECIPE_KEYS) >= {"name", "source_model", "source_weights_sha256", "layers", "norm", "eps", "sha256"}
