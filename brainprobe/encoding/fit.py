"""Fitting an Encoder to a Dataset: features -> standardise -> (PCA) -> ridge -> folded affine map."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from brainprobe.encoding._readouts import get_readout
from brainprobe.encoding.encoder import Encoder, Evaluation, set_response_scale
from brainprobe.encoding.features import check_layers, check_pooling, extract_features
from brainprobe.encoding.ridge import RidgeReadout, Score, fit_ridge, make_cv, standardization
from brainprobe.errors import ConfigError, DataError, ModelError


@dataclass
class LayerReadout:
    """The fitted stages of one layer's readout (float64 numpy).

    ``Y_hat = pca((X - mean) / scale) @ ridge.coef + ridge.intercept`` with ``pca`` a fitted
    scikit-learn PCA (or identity when None); :meth:`folded` composes them into one affine map.
    """

    layer: str
    mean: np.ndarray
    scale: np.ndarray
    pca: Any
    ridge: RidgeReadout

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Stage by stage: raw features N x F -> predictions N x T (float64)."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        if self.pca is not None:
            Z = self.pca.transform(Z)
        return self.ridge.predict(Z)

    @property
    def penalty(self) -> np.ndarray:
        """(T,) the ridge alpha chosen for each target."""
        return self.ridge.alphas

    @property
    def cv_scores(self) -> np.ndarray:
        """(T,) cross-validated score at the chosen alpha (``ridge.score``)."""
        return self.ridge.cv_scores

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.ridge.settings, "score": self.ridge.score, "solver": self.ridge.solver,
                "pca": None if self.pca is None else int(self.pca.n_components_)}

    def comparable_cv(self, Y: np.ndarray) -> np.ndarray:
        """(T,) CV scores comparable across targets and readouts: R^2-like for MSE (1 - MSE / var), else as is."""
        return _comparable_cv(self, Y)

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """One affine map on raw features: ``Y_hat = X @ W + b``; W (F, T), b (T,)."""
        W3, b3 = self.ridge.folded()
        inv = 1.0 / np.asarray(self.scale, dtype=np.float64)  # diag(1/scale), never formed: F can be 10^5
        c = -self.mean * inv
        if self.pca is None:
            return inv[:, None] * W3, c @ W3 + b3
        comps = np.asarray(self.pca.components_, dtype=np.float64).T  # F x k
        c = (c - np.asarray(self.pca.mean_, dtype=np.float64)) @ comps
        return inv[:, None] * (comps @ W3), c @ W3 + b3


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("brainprobe", "torch", "torchvision", "himalaya", "scikit-learn", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _fit_layer(
    layer: str, X: np.ndarray, Y: np.ndarray, *, pca: int | None, seed: int, **ridge_kwargs: Any
) -> LayerReadout:
    mean, scale = standardization(X)
    Z = (np.asarray(X, dtype=np.float64) - mean) / scale
    pca_model = None
    if pca is not None:
        from sklearn.decomposition import PCA

        if not isinstance(pca, (int, np.integer)) or pca < 1 or pca > min(Z.shape):
            raise ConfigError(
                f"pca={pca!r} for layer {layer}: must be an int from 1 to min(n_train, n_features) = {min(Z.shape)}"
            )
        pca_model = PCA(n_components=int(pca), random_state=seed).fit(Z)
        Z = pca_model.transform(Z)
    ridge = fit_ridge(Z, Y, standardize=False, seed=seed, **ridge_kwargs)
    return LayerReadout(layer, mean, scale, pca_model, ridge)


def _comparable_cv(readout: LayerReadout, Y: np.ndarray) -> np.ndarray:
    """CV scores comparable across targets: R^2-like for MSE (1 - MSE / var), else as is."""
    s = readout.ridge.cv_scores
    if readout.ridge.score == "mse":
        var = Y.var(0)
        return 1.0 + s / np.where(var > 0, var, np.nan)
    return s


def _noise_ceiling(dataset: Any) -> np.ndarray | None:
    nc = getattr(dataset, "noise_ceiling", None)
    if nc is not None:
        return np.asarray(nc, dtype=np.float64)
    trials = getattr(dataset, "trials", None)
    if trials is not None:
        from brainprobe.data import noise_ceiling_ncsnr

        return np.asarray(noise_ceiling_ncsnr(trials, trials.shape[1]), dtype=np.float64)
    return None


def fit_encoder(
    backbone_name_or_module: Any,
    dataset: Any,
    *,
    layer: str | Sequence[str] | None = None,
    readout: str = "ridge",
    pooling: str | None = None,
    pca: int | None = None,
    alphas: Sequence[float] | np.ndarray | None = None,
    cv: int | Any = 5,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    seed: int = 0,
    score: Score = "mse",
    dtype: Literal["float32", "float64"] = "float32",
    n_boot: int = 1000,
    cache: bool = True,
    readout_options: Mapping[str, Any] | None = None,
) -> Encoder:
    """Fit an encoding model of ``dataset`` on a backbone layer and return the end-to-end Encoder.

    With ``readout="ridge"`` features of the training images are standardised with training
    statistics, optionally reduced by PCA (fitted on the training images), and mapped to every
    target by ridge regression with a per-target alpha chosen by ``cv``-fold cross-validation on
    the training split; ``"spatial_ridge"`` does the same on a PCA of the whole flattened map;
    ``"factorized"`` fits a spatial mask x channel weights per target by gradient descent
    (``brainprobe.encoding.READOUTS``, docs/encoding.md). The stages are folded into one affine
    map after the cut backbone. Predictivity is measured on the test split.

    Parameters
    ----------
    backbone_name_or_module : model name (``brainprobe models``) or a loaded ``Backbone``.
    dataset : ``brainprobe.data.Dataset`` (stimuli, responses, targets, split, noise ceiling).
    layer : one layer, or several candidates: each ROI then reads from the candidate with the
        best cross-validated predictivity on the training split (median over its targets).
        Default: the backbone's ``default_layers`` (selection per ROI).
    readout : a name of ``brainprobe.encoding.READOUTS``: ``"ridge"`` (default), ``"spatial_ridge"``
        or ``"factorized"``.
    pooling : ``"avg"``, ``"avgpool{k}"`` or ``"flatten"``; None: the readout's default (``avg``
        for ridge, ``flatten`` for the others).
    pca : number of principal components of the standardised features, or None (ridge: none;
        spatial_ridge: min(100, n_train, F); factorized: must be None).
    alphas : ridge alpha grid (default ``brainprobe.encoding.ridge.DEFAULT_ALPHAS``).
    cv : folds of the cross-validation (or a scikit-learn splitter).
    device : torch device for features and ridge; default CUDA when available, else CPU.
    batch_size : images per forward pass during feature extraction.
    seed : seeds folds, PCA and the bootstrap.
    score : CV score that picks alphas (``"mse"``, ``"r2"``, ``"r"``).
    dtype : precision of the ridge solve.
    n_boot : bootstrap resamples for the ROI confidence intervals.
    cache : use the on-disk feature cache.
    readout_options : keyword arguments of the readout's fitter (factorized: see
        ``brainprobe.encoding._factorized.fit_factorized``, e.g. ``l1``, ``smooth``, ``max_iter``).

    Returns
    -------
    Encoder
        With ``.predictivity`` (xarray Dataset; also per-target ``alpha``, ``cv_score``, ``readout_layer``
        and ``layer_cv_score`` (candidate_layer x roi) used for selection).

    Raises
    ------
    ModelError
        Unknown model or layer (lists valid names).
    DataError
        No test images, fewer training images than folds, no non-constant target.
    """
    from brainprobe.data import Dataset
    from brainprobe.encoding.predictivity import compute_predictivity
    from brainprobe.zoo import Backbone, load_backbone

    if not isinstance(dataset, Dataset):
        raise DataError(
            f"fit_encoder needs a brainprobe.data.Dataset, got {type(dataset).__name__}; build one with "
            "Dataset(stimuli, responses), load_generic(...) or Dataset.load(path)"
        )
    if isinstance(backbone_name_or_module, str):
        backbone = load_backbone(backbone_name_or_module, device=device)
    elif isinstance(backbone_name_or_module, Backbone):
        backbone = backbone_name_or_module
    else:
        raise ModelError(
            f"fit_encoder needs a model name or a brainprobe.zoo Backbone, got {type(backbone_name_or_module).__name__}"
        )
    if layer is None:
        candidates = list(backbone.spec.default_layers)
    else:
        candidates = [layer] if isinstance(layer, str) else list(layer)
    candidates = check_layers(backbone, candidates)
    spec = get_readout(readout)
    pooling = spec.check_pooling(check_pooling(pooling if pooling is not None else spec.pooling))

    train = np.asarray(dataset.train_index)
    test = np.asarray(dataset.test_index)
    if len(test) < 3:
        raise DataError(f"dataset has {len(test)} test images; predictivity needs at least 3 (check its split)")
    make_cv(cv, len(train), seed)  # fewer training images than folds fails here, before any work
    responses = np.asarray(dataset.responses, dtype=np.float64)
    targets = dataset.targets.reset_index(drop=True)
    if responses.ndim != 2 or responses.shape[1] != len(targets):
        raise DataError(f"responses {responses.shape} do not match the {len(targets)} targets of the dataset")
    ytrain = responses[train]
    ok = np.isfinite(responses).all(0) & (ytrain.std(0) > 0)
    if not ok.all():
        bad = targets["target"].astype(str).to_numpy()[~ok]
        warnings.warn(
            f"fit_encoder: dropped {len(bad)} constant or non-finite target(s) ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}); they cannot be predicted",
            stacklevel=2,
        )
        if not ok.any():
            raise DataError("every target is constant or non-finite on the training images; nothing to fit")
    keep = np.flatnonzero(ok)
    targets = targets.iloc[keep].reset_index(drop=True)
    responses = responses[:, keep]
    ytrain = responses[train]
    noise_ceiling = _noise_ceiling(dataset)
    if noise_ceiling is not None:
        noise_ceiling = noise_ceiling[keep]
    trials = getattr(dataset, "trials", None)
    test_trials = None if trials is None else np.asarray(trials, dtype=np.float64)[test][:, :, keep]

    feats = extract_features(backbone, dataset.stimuli, candidates, pooling=pooling, batch_size=batch_size, device=device, cache=cache)
    ridge_kwargs = dict(alphas=alphas, cv=cv, score=score, dtype=dtype, device=device)
    shapes = _map_shapes(backbone, dataset.stimuli, candidates, pooling, device) if spec.needs_map else {}
    readouts = {
        lay: spec.fit(lay, feats[lay][train], ytrain, shape=shapes.get(lay), pca=pca, seed=seed,
                      ridge_kwargs=ridge_kwargs, options=dict(readout_options or {}))
        for lay in candidates
    }

    # per-ROI layer choice by cross-validated predictivity on the training split
    rois = list(pd.unique(targets["roi"].astype(str)))
    roi_codes = targets["roi"].astype(str).to_numpy()
    cv_table = np.array([readouts[lay].comparable_cv(ytrain) for lay in candidates])  # L x T
    roi_cv = np.array([[np.nanmedian(cv_table[i, roi_codes == roi]) for roi in rois] for i in range(len(candidates))])
    chosen = {roi: candidates[int(np.nanargmax(roi_cv[:, j]))] if np.isfinite(roi_cv[:, j]).any() else candidates[0] for j, roi in enumerate(rois)}
    target_layer = np.array([chosen[r] for r in roi_codes])
    used = [lay for lay in candidates if lay in set(chosen.values())]

    sizes = [feats[lay].shape[1] for lay in used]
    weight = np.zeros((len(targets), sum(sizes)))
    bias = np.zeros(len(targets))
    y_pred = np.zeros((len(test), len(targets)))
    y_fit = np.zeros((len(train), len(targets)))  # predictions on the training images: the model's scale
    alpha = np.zeros(len(targets))
    cv_score = np.zeros(len(targets))
    start = 0
    for lay, size in zip(used, sizes):
        cols = np.flatnonzero(target_layer == lay)
        W, b = readouts[lay].folded()
        weight[cols, start : start + size] = W[:, cols].T
        bias[cols] = b[cols]
        y_pred[:, cols] = feats[lay][test].astype(np.float64) @ W[:, cols] + b[cols]
        y_fit[:, cols] = feats[lay][train].astype(np.float64) @ W[:, cols] + b[cols]
        alpha[cols] = readouts[lay].penalty[cols]
        cv_score[cols] = readouts[lay].cv_scores[cols]
        start += size
    targets = targets.assign(readout_layer=target_layer)

    attrs_in = dict(getattr(dataset, "attrs", {}) or {})
    settings0 = readouts[candidates[0]].settings
    provenance = {
        "backbone": backbone.spec.name,
        "readout": spec.name,
        "readout_settings": settings0,
        "weights_sha256": backbone.weights_sha256,
        "layers": used,
        "candidate_layers": candidates,
        "pooling": pooling,
        "pca": settings0.get("pca"),
        "cv": repr(cv) if not isinstance(cv, int) else cv,
        "alphas": settings0.get("alphas"),
        "score": settings0.get("score", score),
        "dtype": dtype,
        "backend": settings0.get("backend"),
        "solver": settings0.get("solver"),
        "seed": seed,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "dataset": {k: attrs_in[k] for k in ("source", "subject", "simulated", "brain") if k in attrs_in},
        "versions": _versions(),
    }
    nc_attrs = {
        "backbone": backbone.spec.name,
        "layer": ",".join(used),
        "readout": spec.name,
        "pooling": pooling,
        "pca": -1 if settings0.get("pca") is None else int(settings0["pca"]),
        "weights_sha256": backbone.weights_sha256,
        "n_train": int(len(train)),
        "simulated": int(bool(attrs_in.get("simulated", False))),
        "dataset_source": str(attrs_in.get("source", "")),
    }
    settings = {"n_boot": n_boot, "seed": seed}
    predictivity = compute_predictivity(responses[test], y_pred, targets, noise_ceiling, attrs=nc_attrs, **settings)
    predictivity = _with_fit_details(predictivity, alpha, cv_score, target_layer, candidates, rois, roi_cv, chosen)
    evaluation = Evaluation(responses[test], y_pred, noise_ceiling, test_trials, settings)
    encoder = Encoder(
        backbone, used, pooling, weight, bias, targets, feature_sizes=sizes, predictivity=predictivity,
        evaluation=evaluation, readouts={lay: readouts[lay] for lay in used}, provenance=provenance,
    )
    return set_response_scale(encoder, y_fit)


def _map_shapes(backbone: Any, stimuli: Any, layers: list[str], pooling: str,
                device: str | torch.device | None) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of each layer's map after ``pooling`` (flatten: the activation; avgpool{k}: k x k), from one image."""
    from brainprobe._images import to_float_tensor
    from brainprobe.encoding._backend import default_device
    from brainprobe.zoo import truncate

    dev = default_device(device)
    body = truncate(backbone, list(layers)).to(dev).eval()
    with torch.inference_mode():
        acts = body(to_float_tensor(stimuli[:1], device=dev))
    if not isinstance(acts, dict):
        acts = {layers[0]: acts}
    shapes = {}
    for lay in layers:
        a = acts[lay]
        if a.ndim != 4:
            raise ConfigError(f"layer {lay} gives a {a.ndim}-D activation {tuple(a.shape)}; a spatial readout needs a conv map (N x C x H x W)")
        if pooling.startswith("avgpool"):
            k = int(pooling[len("avgpool"):])
            shapes[lay] = (int(a.shape[1]), k, k)
        else:
            shapes[lay] = (int(a.shape[1]), int(a.shape[2]), int(a.shape[3]))
    return shapes


def _with_fit_details(ds: Any, alpha: np.ndarray, cv_score: np.ndarray, target_layer: np.ndarray,
                      candidates: list[str], rois: list[str], roi_cv: np.ndarray, chosen: dict[str, str]) -> Any:
    ds = ds.assign(
        alpha=("target", alpha),
        cv_score=("target", cv_score),
        readout_layer=("target", target_layer.astype(str)),
        layer_cv_score=(("candidate_layer", "roi"), roi_cv),
        selected_layer=("roi", np.array([chosen[r] for r in ds["roi"].values.tolist()], dtype=str)),
    )
    return ds.assign_coords(candidate_layer=candidates)
