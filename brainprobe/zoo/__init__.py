"""brainprobe.zoo: named backbones, weights, truncation at a layer, robustified copies.

Usage::

    from brainprobe.zoo import load_backbone, truncate, layer_names, list_models
    bb = load_backbone("mobilenet_v2")           # frozen, eval; input float RGB N x 3 x H x W in [0, 1]
    feats = truncate(bb, "features.10")(x)        # tensor; truncate(bb, [a, b])(x) -> dict
    bb.spec.default_layers, bb.spec.resolution, bb.weights_sha256

Offline models: mobilenet_v2, efficientnet_lite0/1/2, vgg19 (trunk). The paper's models
(alexnet, vgg16, resnet18, resnet50, densenet161, resnet50_l2_eps*, resnet50_linf_eps*) need
``brainprobe weights fetch NAME`` or ``weights=PATH``. Robustified copies are discovered from
recipe JSON + safetensors files (see :mod:`brainprobe.zoo.robust_registry`); they are made by
:mod:`brainprobe.robust`, which the zoo never imports.

Only torch, torchvision, numpy and the standard library are imported at module level.
"""

from __future__ import annotations

from brainprobe.zoo.backbone import Backbone, Preprocess, freeze, load_backbone
from brainprobe.zoo.madry import convert_madry_checkpoint
from brainprobe.zoo.registry import get_spec, list_models, register_robustified
from brainprobe.zoo.robust_registry import RECIPE_KEYS, robust_name
from brainprobe.zoo.spec import BackboneSpec, Normalization, Training, WeightSource
from brainprobe.zoo.truncate import Truncated, layer_names, truncate
from brainprobe.zoo.weights import fetch, is_available, weights_dir

__all__ = [
    "RECIPE_KEYS",
    "Backbone",
    "BackboneSpec",
    "Normalization",
    "Preprocess",
    "Training",
    "Truncated",
    "WeightSource",
    "convert_madry_checkpoint",
    "fetch",
    "freeze",
    "get_spec",
    "is_available",
    "layer_names",
    "list_models",
    "load_backbone",
    "register_robustified",
    "robust_name",
    "truncate",
    "weights_dir",
]
