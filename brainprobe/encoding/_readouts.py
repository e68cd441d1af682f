"""Named readouts: how an Encoder maps one layer's features to the targets (a name -> fitter table).

Every readout is linear in the layer's (pooled) features once fitted, so it folds into the
Encoder's single affine map (``Encoder.forward`` equals the fitted model's predictions):

* ``"ridge"``: standardise -> (optional PCA) -> ridge on pooled features (default pooling ``avg``);
* ``"spatial_ridge"``: ridge on a PCA (default 100 components) of the whole flattened map
  (default pooling ``flatten``; ``avgpool{k}`` reads k x k positions instead);
* ``"factorized"``: per target a spatial mask x channel weights on the map (Klindt et al. 2017),
  fitted by gradient descent with L1 (channels) and Laplacian (mask) penalties chosen by
  validation (``brainprobe.encoding._factorized``); pooling ``flatten`` or ``avgpool{k}``.

Use ``fit_encoder(..., readout=NAME)``; :data:`READOUTS` lists the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from brainprobe.errors import ConfigError


@dataclass(frozen=True)
class Readout:
    """One entry of :data:`READOUTS`.

    Attributes
    ----------
    name : registry name (``fit_encoder(readout=name)``).
    description : one line for help texts and docs.
    pooling : default pooling of the layer's activation when ``fit_encoder(pooling=None)``.
    poolings : regular expression prefixes of the poolings this readout accepts.
    needs_map : the fitter needs each layer's map shape (C, H, W) after pooling.
    fit : ``fit(layer, X, Y, *, shape, pca, seed, ridge_kwargs, options) -> fitted layer readout``
        with X (N, F) float32 features of the training images and Y (N, T) responses; the
        result has ``predict(X)``, ``folded() -> (W (F, T), b (T,))``, ``penalty`` (T,),
        ``cv_scores`` (T,), ``comparable_cv(Y)`` (T,) and ``settings`` (dict).
    """

    name: str
    description: str
    pooling: str
    poolings: tuple[str, ...]
    needs_map: bool
    fit: Callable[..., Any]

    def check_pooling(self, pooling: str) -> str:
        """``pooling`` if this readout accepts it, else ConfigError."""
        if not pooling.startswith(self.poolings):
            raise ConfigError(
                f"readout {self.name!r} cannot use pooling {pooling!r}; use one of "
                f"{', '.join(p + ('{k}' if p == 'avgpool' else '') for p in self.poolings)} (or leave pooling unset: {self.pooling})"
            )
        return pooling


def _fit_ridge(layer: str, X: np.ndarray, Y: np.ndarray, *, shape: Any, pca: int | None, seed: int,
               ridge_kwargs: dict[str, Any], options: Mapping[str, Any]) -> Any:
    from brainprobe.encoding.fit import _fit_layer

    if options:
        raise ConfigError(f"readout 'ridge' takes no readout_options, got {sorted(options)}")
    return _fit_layer(layer, X, Y, pca=pca, seed=seed, **ridge_kwargs)


SPATIAL_PCA = 100
"""Default number of principal components of the flattened map for ``spatial_ridge``."""


def _fit_spatial_ridge(layer: str, X: np.ndarray, Y: np.ndarray, *, shape: Any, pca: int | None, seed: int,
                       ridge_kwargs: dict[str, Any], options: Mapping[str, Any]) -> Any:
    from brainprobe.encoding.fit import _fit_layer

    if options:
        raise ConfigError(f"readout 'spatial_ridge' takes no readout_options (set pca= for the components), got {sorted(options)}")
    k = int(pca) if pca is not None else min(SPATIAL_PCA, X.shape[0], X.shape[1])
    return _fit_layer(layer, X, Y, pca=k, seed=seed, **ridge_kwargs)


def _fit_factorized(layer: str, X: np.ndarray, Y: np.ndarray, *, shape: Any, pca: int | None, seed: int,
                    ridge_kwargs: dict[str, Any], options: Mapping[str, Any]) -> Any:
    from brainprobe.encoding._factorized import fit_factorized

    if pca is not None:
        raise ConfigError("readout 'factorized' reads the map itself; pca= does not apply (leave it unset)")
    return fit_factorized(layer, X, Y, shape=shape, seed=seed, device=ridge_kwargs.get("device"), **dict(options))


READOUTS: dict[str, Readout] = {
    "ridge": Readout(
        "ridge", "ridge on pooled features (standardised, optional PCA), per-target alpha by CV",
        "avg", ("avg", "avgpool", "flatten"), False, _fit_ridge),
    "spatial_ridge": Readout(
        "spatial_ridge", f"ridge on a PCA ({SPATIAL_PCA} components) of the flattened map, per-target alpha by CV",
        "flatten", ("flatten", "avgpool"), False, _fit_spatial_ridge),
    "factorized": Readout(
        "factorized", "spatial mask x channel weights per target (Klindt 2017), L1 + Laplacian penalties chosen by validation",
        "flatten", ("flatten", "avgpool"), True, _fit_factorized),
}
"""The readouts ``fit_encoder(readout=...)``, ``brainprobe fit --readout`` and ``encoding.readout`` accept."""


def get_readout(name: str) -> Readout:
    """The registry entry ``name``, or ConfigError listing the valid names."""
    if not isinstance(name, str) or name not in READOUTS:
        raise ConfigError(f"readout {name!r} is unknown; use one of {', '.join(READOUTS)}")
    return READOUTS[name]
