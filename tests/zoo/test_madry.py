"""Madry-format checkpoints (Salman et al. 2020 robust ResNet-50s) load through the converter."""

from __future__ import annotations

import argparse

import pytest
import torch
import torchvision
from torch import nn

from brainprobe.errors import WeightsError
from brainprobe.zoo import convert_madry_checkpoint, load_backbone
from brainprobe.zoo.spec import IMAGENET_MEAN, IMAGENET_STD

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)


class InputNormalize(nn.Module):
    """As in the robustness library: buffers new_mean / new_std of shape 3 x 1 x 1."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("new_mean", torch.tensor(mean).view(3, 1, 1))
        self.register_buffer("new_std", torch.tensor(std).view(3, 1, 1))

    def forward(self, x):
        return (torch.clamp(x, 0, 1) - self.new_mean) / self.new_std


class Attacker(nn.Module):
    def __init__(self, model, mean, std):
        super().__init__()
        self.normalize = InputNormalize(mean, std)
        self.model = model


class AttackerModel(nn.Module):
    """The robustness library's wrapper: normalizer + model + an attacker holding the model again."""

    def __init__(self, model, attacker_model, mean, std):
        super().__init__()
        self.normalizer = InputNormalize(mean, std)
        self.model = model
        self.attacker = Attacker(attacker_model, mean, std)

    def forward(self, x):
        return self.model(self.normalizer(x))


@pytest.fixture(scope="module")
def madry_checkpoint(tmp_path_factory):
    """A Madry-format checkpoint of a random ResNet-50, plus the source model (DataParallel-wrapped keys)."""
    torch.manual_seed(3)
    source = torchvision.models.resnet50(weights=None)
    for m in source.modules():  # non-trivial running statistics, so a wrong copy would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    other = torchvision.models.resnet50(weights=None)  # the attacker's copy differs: it must be dropped
    wrapped = nn.DataParallel(AttackerModel(source, other, MEAN, STD))
    state = wrapped.state_dict()
    assert any(k.startswith("module.attacker.model.") for k in state)
    assert "module.normalizer.new_mean" in state
    ckpt = {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]},
        "schedule": None,
        "epoch": 90,
    }
    path = tmp_path_factory.mktemp("madry") / "resnet50_l2_eps3.ckpt"
    torch.save(ckpt, path)
    return path, wrapped.module.eval()


def test_madry_checkpoint_reproduces_source_outputs(madry_checkpoint):
    path, source = madry_checkpoint
    bb = load_backbone("resnet50_l2_eps3", weights=path)
    assert bb.preprocess.norm.mean == pytest.approx(MEAN) and bb.preprocess.norm.std == pytest.approx(STD)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), source(x), rtol=1e-4, atol=1e-4)
    assert bb.training is False and not any(p.requires_grad for p in bb.parameters())
    assert bb.spec.training.kind == "adversarial" and bb.spec.training.norm == "l2" and bb.spec.training.eps == 3


def test_converter_drops_attacker_and_strips_prefixes(madry_checkpoint):
    path, source = madry_checkpoint
    state, mean, std, had_norm = convert_madry_checkpoint(torch.load(path, weights_only=True))
    assert had_norm and mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    assert set(state) == set(source.model.state_dict())
    for key, value in source.model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_converter_plain_and_nested_state_dicts():
    net = torchvision.models.resnet18(weights=None)
    plain = net.state_dict()
    for obj in (plain, {"state_dict": plain}, {"model": {"state_dict": {f"module.{k}": v for k, v in plain.items()}}}):
        state, mean, std, had_norm = convert_madry_checkpoint(obj)
        assert set(state) == set(plain) and not had_norm
        assert mean == IMAGENET_MEAN and std == IMAGENET_STD
    with pytest.raises(ValueError, match="no state dict"):
        convert_madry_checkpoint({"epoch": 3})


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    """torch.load(weights_only=True): a checkpoint that needs arbitrary unpickling is not read."""
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "with_code.ckpt"
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(WeightsError, match="safely") as err:
        load_backbone("resnet18", weights=path)
    assert "\n" not in str(err.value)


def test_wrong_architecture_is_a_weights_error(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit 'resnet50'"):
        load_backbone("resnet50", weights=path)
