"""The end-to-end encoding model: pixels in [0, 1] -> predicted responses (one nn.Module).

``Encoder.forward`` = backbone cut after the deepest readout layer -> pooling -> ONE affine map
``y = feats @ weight.T + bias``. The affine map is the composition of the fitted
standardisation, optional PCA and ridge readout (computed in float64, stored as float32
buffers), so the Encoder's output equals the fitted model's predictions and gradients flow
from the responses back to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from brainprobe._images import to_float_tensor
from brainprobe.encoding.features import pool
from brainprobe.errors import DataError


@dataclass
class Evaluation:
    """Held-out data kept by an Encoder so that subsets and ROI means can recompute predictivity.

    ``y_true`` / ``y_pred``: N_test x T; ``trials``: N_test x R x T or None; ``noise_ceiling``: T
    or None; ``settings``: keyword arguments of :func:`compute_predictivity` (n_boot, ci, seed).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    noise_ceiling: np.ndarray | None
    trials: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def columns(self, index: np.ndarray) -> Evaluation:
        return replace(
            self,
            y_true=self.y_true[:, index],
            y_pred=self.y_pred[:, index],
            noise_ceiling=None if self.noise_ceiling is None else self.noise_ceiling[index],
            trials=None if self.trials is None else self.trials[:, :, index],
        )

    def averaged(self, groups: list[np.ndarray]) -> Evaluation:
        """Means over groups of columns; the noise ceiling of a mean needs trials (else None)."""

        def mean_cols(a: np.ndarray) -> np.ndarray:
            return np.stack([a[..., g].mean(-1) for g in groups], axis=-1)

        trials = None if self.trials is None else mean_cols(self.trials)
        nc = None
        if trials is not None:
            from brainprobe.data import noise_ceiling_ncsnr

            nc = np.asarray(noise_ceiling_ncsnr(trials), dtype=np.float64)
        return replace(self, y_true=mean_cols(self.y_true), y_pred=mean_cols(self.y_pred), noise_ceiling=nc, trials=trials)


def resolve_targets(targets: pd.DataFrame, spec: Any) -> np.ndarray:
    """Column indices selected by a target spec: None, ROI name, ROI names, or int indices."""
    n = len(targets)
    rois = targets["roi"].astype(str).to_numpy()
    valid = list(pd.unique(rois))
    if spec is None:
        return np.arange(n)
    if isinstance(spec, str):
        spec = [spec]
    items = list(spec)
    if not items:
        raise DataError("empty target selection; pass None (all), ROI names or column indices")
    if all(isinstance(s, str) for s in items):
        unknown = [s for s in items if s not in valid]
        if unknown:
            raise DataError(f"unknown ROI {unknown[0]!r}; valid ROIs: {', '.join(valid)}")
        return np.flatnonzero(np.isin(rois, items))
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in items):
        index = np.asarray(items, dtype=np.int64)
        if index.min() < -n or index.max() >= n:
            raise DataError(f"target index out of range for {n} targets: {index.min()}..{index.max()}")
        return index % n
    raise DataError(f"target selection {spec!r} must be ROI names (str) or column indices (int), not a mix")


ALL_TARGETS = "__all__"
"""Key of ``mean_response_sd`` for the mean over every output."""


def set_response_scale(module: nn.Module, responses: np.ndarray | torch.Tensor) -> nn.Module:
    """Store on ``module`` the scale its objectives and readouts use: SDs of its responses on training images.

    Sets buffer ``response_sd`` (T, float32; moves with ``.to``) to each output's across-image SD
    (ddof=1) of ``responses`` and attribute ``mean_response_sd`` (dict) to the SD of the mean
    response of each ROI's outputs (keys: ROI names of ``module.targets``) and of all outputs
    (key ``"__all__"``).

    Parameters
    ----------
    module : nn.Module
        A response model (N x 3 x H x W -> N x T), optionally with a ``targets`` table (``roi``).
    responses : array N x T
        The module's noise-free responses (predictions) to its training images, N >= 2.

    Returns
    -------
    The module (changed in place).
    """
    y = torch.as_tensor(np.asarray(responses, dtype=np.float64) if not isinstance(responses, torch.Tensor) else responses)
    y = y.detach().double().cpu()
    if y.ndim != 2 or y.shape[0] < 2:
        raise DataError(f"response scale needs N x T responses to >= 2 training images, got shape {tuple(y.shape)}")
    sd = y.std(dim=0, unbiased=True)
    means: dict[str, float] = {ALL_TARGETS: float(y.mean(dim=1).std(unbiased=True))}
    table = getattr(module, "targets", None)
    if table is not None and "roi" in table and len(table) == y.shape[1]:
        rois = pd.Series(table["roi"]).astype(str).to_numpy()
        for roi in pd.unique(rois):
            means[str(roi)] = float(y[:, torch.as_tensor(np.flatnonzero(rois == roi))].mean(dim=1).std(unbiased=True))
    device = next(iter(module.buffers()), next(iter(module.parameters()), torch.empty(0))).device
    if "response_sd" in getattr(module, "_buffers", {}) or not hasattr(module, "response_sd"):
        module.register_buffer("response_sd", sd.float().to(device))
    else:
        raise DataError(f"{type(module).__name__} has an attribute response_sd that is not a buffer; rename it")
    module.mean_response_sd = means
    return module


class Encoder(nn.Module):
    """Fitted encoding model: pixels (N x 3 x H x W in [0, 1]) -> responses (N x T).

    Build it with :func:`brainprobe.encoding.fit_encoder`.

    Attributes
    ----------
    targets : DataFrame, one row per output column (``target``, ``roi``, the dataset's other columns, and ``readout_layer``: the layer each target is read from).
    predictivity : xarray Dataset (see ``compute_predictivity``) or None.
    backbone_name, weights_sha256 : which network and weights.
    layers : readout layers in forward order; ``layer`` is the one layer (or a comma-joined list).
    pooling : how each layer's activation is pooled.
    weight : buffer T x F (F = features of all readout layers, concatenated in ``layers`` order).
    bias : buffer T.
    readouts : dict layer -> the fitted stages (standardisation, PCA, ridge) behind the folded map,
        for all the fitted targets (empty on Encoders made by ``subset`` / ``roi_means``).
    provenance : dict of settings, versions and seeds that produced it.
    response_sd : buffer T (or None): across-image SD (ddof=1) of each output's predictions on the
        training images. Objectives and analysis readouts divide by it (one scale per model).
    mean_response_sd : dict: SD of the mean prediction over each ROI's outputs (key: ROI name) and
        over all outputs (``"__all__"``), on the training images.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    response_sd: torch.Tensor | None

    def __init__(
        self,
        backbone: nn.Module,
        layers: Sequence[str],
        pooling: str,
        weight: np.ndarray | torch.Tensor,
        bias: np.ndarray | torch.Tensor,
        targets: pd.DataFrame,
        *,
        feature_sizes: Sequence[int],
        predictivity: Any = None,
        evaluation: Evaluation | None = None,
        readouts: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        response_sd: np.ndarray | torch.Tensor | None = None,
        mean_response_sd: dict[str, float] | None = None,
    ) -> None:
        from brainprobe.encoding.features import backbone_name, weights_sha256
        from brainprobe.zoo import truncate

        super().__init__()
        self.layers = list(layers)
        self.pooling = pooling
        self.feature_sizes = [int(s) for s in feature_sizes]
        weight = torch.as_tensor(weight, dtype=torch.float32)
        bias = torch.as_tensor(bias, dtype=torch.float32)
        if weight.ndim != 2 or weight.shape[1] != sum(self.feature_sizes) or bias.shape != (weight.shape[0],):
            raise DataError(f"readout weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not match features {self.feature_sizes}")
        if len(targets) != weight.shape[0]:
            raise DataError(f"targets table has {len(targets)} rows for {weight.shape[0]} outputs")
        self.body = truncate(backbone, self.layers)
        for p in self.body.parameters():
            p.requires_grad_(False)
        device = next(iter(self.body.parameters()), torch.empty(0)).device
        self.register_buffer("weight", weight.to(device))
        self.register_buffer("bias", bias.to(device))
        if response_sd is not None:
            response_sd = torch.as_tensor(response_sd, dtype=torch.float32).reshape(-1)
            if response_sd.shape != (weight.shape[0],):
                raise DataError(f"response_sd has {response_sd.numel()} values for {weight.shape[0]} outputs")
            response_sd = response_sd.to(device)
        self.register_buffer("response_sd", response_sd)
        self.mean_response_sd = dict(mean_response_sd or {})
        self.targets = targets.reset_index(drop=True)
        self.predictivity = predictivity
        self.evaluation = evaluation
        self.readouts = readouts or {}
        self.provenance = provenance or {}
        self.backbone_name = backbone_name(backbone)
        self.weights_sha256 = weights_sha256(backbone)
        # the full backbone, kept (not registered) so that subsets can re-cut it
        object.__setattr__(self, "_backbone", backbone)
        self.eval()

    @property
    def layer(self) -> str:
        return ",".join(self.layers)

    @property
    def n_targets(self) -> int:
        return int(self.weight.shape[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of all readout layers, concatenated: N x F."""
        acts = self.body(x)
        if not isinstance(acts, dict):
            acts = {self.layers[0]: acts}
        return torch.cat([pool(acts[layer], self.pooling).float() for layer in self.layers], dim=1)

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Predicted responses N x T for images (float N x 3 x H x W in [0, 1], or uint8 N x H x W x 3)."""
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            x = to_float_tensor(x, device=self.weight.device)
        return nn.functional.linear(self.features(x), self.weight, self.bias)

    def __repr__(self) -> str:
        return (
            f"Encoder(backbone={self.backbone_name}, layer={self.layer}, pooling={self.pooling}, "
            f"targets={self.n_targets}, rois={list(pd.unique(self.targets['roi']))})"
        )

    # ----------------------------------------------------------------- derived encoders
    def _derive(self, weight: torch.Tensor, bias: torch.Tensor, targets: pd.DataFrame, evaluation: Evaluation | None,
                note: str, index: np.ndarray | None = None, response_sd: torch.Tensor | None = None,
                mean_response_sd: dict[str, float] | None = None) -> Encoder:
        """A new Encoder on the same backbone, cut at the layers this readout still uses."""
        from brainprobe.encoding.predictivity import compute_predictivity

        sizes = np.asarray(self.feature_sizes)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        keep = [i for i in range(len(self.layers)) if bool((weight[:, bounds[i] : bounds[i + 1]] != 0).any())]
        keep = keep or [0]
        cols = torch.cat([torch.arange(int(bounds[i]), int(bounds[i + 1])) for i in keep]).to(weight.device)
        layers = [self.layers[i] for i in keep]
        predictivity = None
        if evaluation is not None:
            predictivity = compute_predictivity(
                evaluation.y_true, evaluation.y_pred, targets, evaluation.noise_ceiling,
                **evaluation.settings,
                attrs={**(self.predictivity.attrs if self.predictivity is not None else {}), "layer": ",".join(layers)},
            )
            if index is not None and self.predictivity is not None:  # carry the per-target fit details over
                for name in ("alpha", "cv_score", "readout_layer"):
                    if name in self.predictivity:
                        predictivity[name] = ("target", self.predictivity[name].values[index])
        return Encoder(
            self._backbone, layers, self.pooling, weight[:, cols].cpu(), bias.cpu(), targets,
            feature_sizes=[self.feature_sizes[i] for i in keep], predictivity=predictivity, evaluation=evaluation,
            readouts={},  # the stages map to the parent's columns; only fit_encoder's Encoder carries them
            provenance={**self.provenance, "derived": [*self.provenance.get("derived", []), note]},
            response_sd=None if response_sd is None else response_sd.cpu(), mean_response_sd=mean_response_sd,
        ).to(self.weight.device)

    def subset(self, targets: Any) -> Encoder:
        """A new Encoder predicting only the selected targets (None, ROI name(s) or column indices)."""
        index = resolve_targets(self.targets, targets)
        evaluation = self.evaluation.columns(index) if self.evaluation is not None else None
        sd = None if self.response_sd is None else self.response_sd[torch.as_tensor(index, device=self.response_sd.device)]
        # the SD of an ROI's mean prediction still holds where the subset kept the whole ROI
        parent = self.targets["roi"].astype(str).value_counts()
        child = self.targets["roi"].astype(str).iloc[index].value_counts()
        means = {roi: v for roi, v in self.mean_response_sd.items() if roi in child and child[roi] == parent[roi]}
        if len(set(index.tolist())) == self.n_targets and ALL_TARGETS in self.mean_response_sd:
            means[ALL_TARGETS] = self.mean_response_sd[ALL_TARGETS]
        return self._derive(self.weight[index], self.bias[index], self.targets.iloc[index], evaluation,
                            f"subset({len(index)} targets)", index=index, response_sd=sd, mean_response_sd=means)

    def roi_means(self) -> Encoder:
        """A new Encoder with one output per ROI: the mean predicted response of its targets."""
        rois = list(pd.unique(self.targets["roi"].astype(str)))
        codes = self.targets["roi"].astype(str).to_numpy()
        groups = [np.flatnonzero(codes == roi) for roi in rois]
        weight = torch.stack([self.weight[g].mean(0) for g in groups])
        bias = torch.stack([self.bias[g].mean(0) for g in groups])
        rows = []
        for roi, g in zip(rois, groups):
            row = {"target": roi, "roi": roi}
            if "readout_layer" in self.targets:
                row["readout_layer"] = ",".join(pd.unique(self.targets["readout_layer"].iloc[g].astype(str)))
            rows.append(row)
        evaluation = self.evaluation.averaged(groups) if self.evaluation is not None else None
        sd = None
        if self.response_sd is not None and all(roi in self.mean_response_sd for roi in rois):
            sd = torch.tensor([self.mean_response_sd[roi] for roi in rois], dtype=torch.float32)
        means = {roi: self.mean_response_sd[roi] for roi in rois if roi in self.mean_response_sd}
        return self._derive(weight, bias, pd.DataFrame(rows), evaluation, "roi_means", response_sd=sd,
                            mean_response_sd=means)
