"""Each offline classifier recognises foolbox's ImageNet photos at its native resolution."""

from __future__ import annotations

import pytest
import torch

from brainprobe.zoo import get_spec, load_backbone


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_top5_accuracy_on_foolbox_imagenet_photos(name, imagenet_photos, images):
    bb = load_backbone(name)
    x = images.to_tensor([im for im, _ in imagenet_photos], bb.spec.resolution)
    labels = torch.tensor([label for _, label in imagenet_photos])
    with torch.no_grad():
        logits = bb(x)
    assert logits.shape == (20, 1000)
    top5 = logits.topk(5, dim=1).indices
    acc5 = (top5 == labels[:, None]).any(1).float().mean().item()
    assert acc5 >= 0.75, f"{name}: top-5 {acc5:.2f}"


def test_efficientnet_lite_wrong_normalisation_costs_accuracy(imagenet_photos, images):
    """The [-1, 1] input scaling the TF-ported weights expect is right: ImageNet mean/std does worse."""
    bb = load_backbone("efficientnet_lite0")
    assert bb.spec.normalization.mean[0] == pytest.approx(127 / 255)
    x = images.to_tensor([im for im, _ in imagenet_photos], bb.spec.resolution)
    labels = torch.tensor([label for _, label in imagenet_photos])
    imagenet = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        right = torch.nn.functional.cross_entropy(bb(x), labels).item()
        wrong = torch.nn.functional.cross_entropy(bb.net(imagenet), labels).item()
    assert right < wrong


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "vgg19"])
def test_backbone_is_frozen_eval_and_has_provenance(name):
    bb = load_backbone(name)
    assert not bb.training and not any(m.training for m in bb.modules())
    assert all(not p.requires_grad for p in bb.parameters())
    assert len(bb.weights_sha256) == 64
    assert bb.spec is get_spec(name) or bb.spec.name == name
    prov = bb.provenance()
    assert prov["model"] == name and prov["weights_sha256"] == bb.weights_sha256


def test_mobilenet_weights_match_torchvision_file_hash():
    bb = load_backbone("mobilenet_v2")
    assert bb.weights_sha256.startswith("b0353104")
