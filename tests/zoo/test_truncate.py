"""truncate() equals the full model's activation at each layer and computes nothing after it."""

from __future__ import annotations

import pytest
import torch

from brainprobe.errors import ModelError
from brainprobe.zoo import get_spec, layer_names, load_backbone, truncate

# (model, layers to cut at): every family the zoo knows
OFFLINE_CASES = {
    "mobilenet_v2": ["features.2", "features.10", "features.18", "classifier"],
    "efficientnet_lite0": ["_conv_stem", "_blocks.9", "_blocks.15", "_fc"],
    "vgg19": ["block1_relu2", "block4_relu4", "block5_pool"],
}
# torchvision families, loaded with random weights written to a local file (no download)
LOCAL_CASES = {
    "alexnet": ["features.4", "features.12", "classifier.5"],
    "resnet18": ["maxpool", "layer1.1", "layer3", "fc"],
    "densenet161": ["features.denseblock1", "features.transition2", "features.norm5"],
}


@pytest.fixture(scope="module")
def local_backbone(tmp_path_factory):
    """load_backbone(name, weights=<random weights written to a local file>), cached per module."""
    folder = tmp_path_factory.mktemp("random-weights")
    cache = {}

    def load(name: str):
        if name not in cache:
            torch.manual_seed(1)
            path = folder / f"{name}.pth"
            torch.save(get_spec(name).builder().state_dict(), path)
            cache[name] = load_backbone(name, weights=path)
        return cache[name]

    return load


def _leaf_calls(module: torch.nn.Module, run) -> list[str]:
    """Names of leaf modules of ``module`` in the order ``run()`` calls them."""
    calls: list[str] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, _o, n=name: calls.append(n))
        for name, m in module.named_modules()
        if not list(m.children())
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


def _check_family(bb, layers, size):
    torch.manual_seed(0)
    x = torch.rand(2, 3, size, size)
    expected = {}
    hooks = [
        bb.net.get_submodule(layer).register_forward_hook(lambda _m, _i, out, n=layer: expected.__setitem__(n, out.clone()))
        for layer in layers
    ]
    with torch.no_grad():
        full_calls = _leaf_calls(bb.net, lambda: bb(x))
    for h in hooks:
        h.remove()

    cut = truncate(bb, layers)
    with torch.no_grad():
        got = cut(x)
    assert list(got) == layers
    for layer in layers:
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-5, atol=1e-5, msg=f"{bb.name} {layer}")

    # one layer alone: a tensor, and nothing after the layer runs (every leaf module the cut model
    # calls had run in the full model before that layer finished)
    layer = layers[len(layers) // 2]
    single = truncate(bb, layer)
    with torch.no_grad():
        alone = single(x)
        cut_calls = _leaf_calls(bb.net, lambda: single(x))
    assert isinstance(alone, torch.Tensor)
    torch.testing.assert_close(alone, expected[layer], rtol=1e-5, atol=1e-5)
    end = max(i for i, n in enumerate(full_calls) if n == layer or n.startswith(layer + "."))
    allowed = set(full_calls[: end + 1])
    assert set(cut_calls) <= allowed, f"{bb.name} cut at {layer} ran {sorted(set(cut_calls) - allowed)[:5]}"
    assert end + 1 < len(full_calls) and len(cut_calls) <= end + 1


@pytest.mark.parametrize("name", list(OFFLINE_CASES))
def test_truncate_matches_forward_hook_offline(name):
    bb = load_backbone(name)
    _check_family(bb, OFFLINE_CASES[name], size=64)


@pytest.mark.parametrize("name", list(LOCAL_CASES))
def test_truncate_matches_forward_hook_torchvision_families(name, local_backbone):
    bb = local_backbone(name)
    _check_family(bb, LOCAL_CASES[name], size=64)


def test_truncated_output_is_differentiable_wrt_pixels():
    bb = load_backbone("efficientnet_lite0")
    cut = truncate(bb, "_blocks.5")
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    cut(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in cut.parameters())
    assert not cut.training
    cut.train()  # a truncated backbone stays a fixed feature map
    assert not any(m.training for m in cut.modules())


def test_truncate_accepts_a_model_name_and_keeps_provenance():
    cut = truncate("mobilenet_v2", ["features.4"])
    assert cut.backbone_name == "mobilenet_v2" and cut.weights_sha256.startswith("b0353104")
    assert cut.layers == ["features.4"] and not cut.single


def test_unknown_layer_lists_valid_layers():
    bb = load_backbone("mobilenet_v2")
    with pytest.raises(ModelError) as err:
        truncate(bb, "features.99")
    msg = str(err.value)
    assert "features.99" in msg and "features.10" in msg and "mobilenet_v2" in msg and "\n" not in msg
    with pytest.raises(ModelError, match="twice"):
        truncate(bb, ["features.1", "features.1"])


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg19", "alexnet", "vgg16", "resnet18", "resnet50", "densenet161"])
def test_curated_layers_exist_in_architecture(name):
    spec = get_spec(name)
    modules = dict(spec.builder().named_modules())
    assert spec.layers == layer_names(name)
    assert [layer for layer in spec.layers if layer not in modules] == []
    assert set(spec.default_layers) <= set(spec.layers) and len(spec.default_layers) == 3
    # defaults are ordered early -> late
    assert [spec.layers.index(layer) for layer in spec.default_layers] == sorted(spec.layers.index(layer) for layer in spec.default_layers)


def test_multi_layer_cut_is_safe_from_inplace_ops(local_backbone):
    """DenseNet applies F.relu(inplace=True) to norm5's output; asking for norm5 and the logits
    together must still give norm5's own (pre-ReLU, partly negative) values."""
    bb = local_backbone("densenet161")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        alone = truncate(bb, "features.norm5")(x)
        both = truncate(bb, ["features.norm5", "classifier"])(x)
        logits = bb(x)
    assert (alone < 0).any()
    torch.testing.assert_close(both["features.norm5"], alone)
    torch.testing.assert_close(both["classifier"], logits)
