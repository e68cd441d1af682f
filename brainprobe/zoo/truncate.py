"""Cutting a backbone at a layer: a module that computes that activation and nothing after it."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

from brainprobe.errors import ModelError
from brainprobe.zoo.backbone import Backbone, as_backbone, disable_inplace, freeze


def layer_names(backbone_or_name: Backbone | str) -> list[str]:
    """The curated readout layers of a backbone (module paths inside ``.net``), early to late.

    Parameters
    ----------
    backbone_or_name : Backbone or str
        A loaded backbone or a model name (no weights are loaded for a name).
    """
    if isinstance(backbone_or_name, str):
        from brainprobe.zoo.registry import get_spec

        return list(get_spec(backbone_or_name).layers)
    if isinstance(backbone_or_name, Backbone):
        return list(backbone_or_name.spec.layers)
    raise ModelError(f"expected a Backbone or a model name, got {type(backbone_or_name).__name__}")


def check_layers(backbone: Backbone, layers: Sequence[str]) -> list[str]:
    """Validate layer names against the modules of ``backbone.net``.

    Any module path inside ``.net`` is accepted (the curated list is a guide, not a limit).

    Raises
    ------
    ModelError
        Unknown or duplicated layer; the message lists the model's curated layers.
    """
    modules = dict(backbone.net.named_modules())
    out = []
    for layer in layers:
        if not isinstance(layer, str) or not layer or layer not in modules:
            raise ModelError(
                f"unknown layer {layer!r} for model '{backbone.spec.name}'; valid layers: {', '.join(backbone.spec.layers)}"
            )
        if layer in out:
            raise ModelError(f"layer {layer!r} given twice for model '{backbone.spec.name}'")
        out.append(layer)
    if not out:
        raise ModelError(f"no layer given for model '{backbone.spec.name}'; valid layers: {', '.join(backbone.spec.layers)}")
    return out


def _clone_outputs(graph_module: nn.Module) -> None:
    """Return a copy of each requested activation, taken as soon as it is computed.

    An in-place op that runs later in the graph (``F.relu(x, inplace=True)`` after a norm layer,
    say) would otherwise overwrite an earlier requested layer's result while the graph computes
    a later one. Copying keeps the model's own operations untouched.
    """
    graphs = {id(g): g for g in (getattr(graph_module, "train_graph", None), getattr(graph_module, "eval_graph", None), graph_module.graph) if g is not None}
    for graph in graphs.values():
        output = next(n for n in graph.nodes if n.op == "output")
        outs = dict(output.args[0])
        for key, node in outs.items():
            with graph.inserting_after(node):
                outs[key] = graph.call_method("clone", (node,))
        output.args = (outs,)
        graph.lint()
    graph_module.recompile()  # type: ignore[operator]


class Truncated(nn.Module):
    """A backbone cut after one or more layers (pixels [0, 1] in, activations out).

    Attributes
    ----------
    layers : list of str
    single : bool
        ``forward`` returns a tensor (one layer) or a dict layer -> tensor.
    backbone_name, weights_sha256 : str
        Provenance of the backbone it was cut from.
    spec : BackboneSpec
    """

    def __init__(self, graph: nn.Module, backbone: Backbone, layers: list[str], single: bool) -> None:
        super().__init__()
        self.graph = graph
        self.layers = layers
        self.single = single
        self.spec = backbone.spec
        self.backbone_name = backbone.spec.name
        self.weights_sha256 = backbone.weights_sha256

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """x: N x 3 x H x W float RGB in [0, 1] -> activation N x C x h x w (or N x F), or a dict of them."""
        out = self.graph(x)
        return out[self.layers[0]] if self.single else dict(out)

    def train(self, mode: bool = True) -> Truncated:
        """Stays in eval mode: a truncated backbone is a fixed feature map (batch norm uses its
        running statistics even inside a module being trained)."""
        return super().train(False)


def truncate(backbone: Backbone | str, layer_or_layers: str | Sequence[str]) -> Truncated:
    """A module that outputs the activation at one or several layers and computes nothing after them.

    Uses torch.fx (``torchvision.models.feature_extraction``): the traced graph keeps only the
    operations the requested layers depend on, so later layers never run. The output is
    differentiable with respect to the input pixels.

    Parameters
    ----------
    backbone : Backbone or str
        A loaded backbone (or a model name, loaded with its own weights).
    layer_or_layers : str or sequence of str
        Module path(s) inside ``backbone.net`` (see :func:`layer_names`); the activation is the
        module's output.

    Returns
    -------
    Truncated
        ``forward(x)`` with x N x 3 x H x W in [0, 1] returns a tensor for one layer, or a dict
        layer -> tensor for a list.

    Raises
    ------
    ModelError
        Unknown layer (lists valid layers).
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    backbone = as_backbone(backbone)
    disable_inplace(backbone)
    single = isinstance(layer_or_layers, str)
    layers = check_layers(backbone, [layer_or_layers] if single else list(layer_or_layers))
    nodes = {f"net.{layer}": layer for layer in layers}
    with warnings.catch_warnings():
        # train/eval graphs differ only by dropout-like ops after the readout; eval is used
        warnings.filterwarnings("ignore", message=".*NOTE: The nodes obtained by tracing the model in eval mode.*")
        graph = create_feature_extractor(backbone, return_nodes=nodes)
    if not single:
        _clone_outputs(graph)
    freeze(graph)
    out = Truncated(graph, backbone, layers, single)
    return freeze(out)  # type: ignore[return-value]
