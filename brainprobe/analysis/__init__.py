"""brainprobe.analysis: turn probes into measurements (see docs/analysis.md).

Every analysis returns an ``xarray.Dataset`` with named dims (``model``, ``source_model``,
``target_model``, ``norm``, ``eps``, ``roi``, ``target``, ``image``) that writes to netCDF as is;
:func:`findings` condenses them into one table of the paper's findings.
"""

from brainprobe.analysis._attack_control import attack_control
from brainprobe.analysis._axes import (
    coding_axes,
    jacobian,
    local_axes,
    mismatched_alignment,
    random_encoder,
    subspace_alignment,
)
from brainprobe.analysis._common import Readout, model_info
from brainprobe.analysis._controversial import controversial
from brainprobe.analysis._discriminability import discriminability, predictivity_scores
from brainprobe.analysis._findings import findings
from brainprobe.analysis._l2_linf import l2_linf
from brainprobe.analysis._linearity import first_order_l2, first_order_linf, linearity
from brainprobe.analysis._rsa import compare_rdms, features_rdm, linear_cka, noise_ceiling, rsa_benchmark, rsa_bootstrap
from brainprobe.analysis._rsa_fragility import rsa_fragility
from brainprobe.analysis._semantics import (
    GaborEnergy,
    NLPDistance,
    classifier_change,
    judge_change,
    low_frequency_share,
    semantics,
    white_noise_share,
)
from brainprobe.analysis._sensitivity import sensitivity, sensitivity_scores
from brainprobe.analysis._transfer import transfer

__all__ = [
    "GaborEnergy",
    "NLPDistance",
    "Readout",
    "attack_control",
    "classifier_change",
    "compare_rdms",
    "coding_axes",
    "controversial",
    "discriminability",
    "features_rdm",
    "findings",
    "first_order_l2",
    "first_order_linf",
    "jacobian",
    "judge_change",
    "l2_linf",
    "linear_cka",
    "linearity",
    "local_axes",
    "mismatched_alignment",
    "low_frequency_share",
    "model_info",
    "noise_ceiling",
    "predictivity_scores",
    "random_encoder",
    "rsa_benchmark",
    "rsa_bootstrap",
    "rsa_fragility",
    "semantics",
    "sensitivity",
    "sensitivity_scores",
    "subspace_alignment",
    "transfer",
    "white_noise_share",
]
