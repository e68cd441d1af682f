"""brainprobe.encoding: features, ridge readouts, predictivity and the end-to-end Encoder.

Usage::

    from brainprobe.encoding import fit_encoder
    enc = fit_encoder("mobilenet_v2", dataset, layer="features.10")   # readout="ridge" | "spatial_ridge" | "factorized"
    enc.predictivity["roi_r_normalised"]          # per-ROI median r / sqrt(NC), CI in *_ci
    enc(images)                                   # N x 3 x H x W in [0, 1] -> N x T responses

See docs/encoding.md for what is fitted and how.
"""

from __future__ import annotations

from brainprobe.encoding._readouts import READOUTS, Readout, get_readout
from brainprobe.encoding.encoder import Encoder, resolve_targets, set_response_scale
from brainprobe.encoding.features import extract_features, pool
from brainprobe.encoding.fit import LayerReadout, fit_encoder
from brainprobe.encoding.predictivity import compute_predictivity, pearson_r
from brainprobe.encoding.ridge import DEFAULT_ALPHAS, RidgeReadout, fit_ridge

__all__ = [
    "DEFAULT_ALPHAS",
    "Encoder",
    "LayerReadout",
    "READOUTS",
    "Readout",
    "RidgeReadout",
    "compute_predictivity",
    "extract_features",
    "fit_encoder",
    "fit_ridge",
    "get_readout",
    "pearson_r",
    "pool",
    "resolve_targets",
    "set_response_scale",
]
