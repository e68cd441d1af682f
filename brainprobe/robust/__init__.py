"""brainprobe.robust: robust copies of backbones by adversarial self-distillation, and their quality.

Usage::

    from brainprobe.robust import robustify, evaluate_robustified
    result = robustify("mobilenet_v2", norm="l2", eps=1.5, steps=1000)   # -> $BRAINPROBE_HOME/robust
    report = evaluate_robustified(result.name)                            # held-out quality report

Private modules: ``_trainer`` (the training loop, checkpoints, output files), ``_pgd`` (the inner
attack, on the probe engine's projection), ``_data`` (training crops), ``_evaluate`` (the quality
report and its geometry diagnostic). The zoo only *registers* what this package writes
(:mod:`brainprobe.zoo.robust_registry`); imports go one way: robust -> zoo, probes, data.
"""

from __future__ import annotations

from brainprobe.robust._data import CropSampler, as_photo_list, load_image_folder
from brainprobe.robust._evaluate import (
    RobustifyReport,
    bootstrap_ci,
    evaluate_robustified,
    foolbox_photos,
    probe_geometry,
    random_noise,
    response_change,
)
from brainprobe.robust._pgd import NORMS, pgd_maximize, project
from brainprobe.robust._trainer import (
    DEFAULT_LAYERS,
    DEFAULT_LR,
    OPTIMIZERS,
    RobustifyResult,
    default_output_dir,
    feature_distance,
    robustify,
    save_robustified,
)

__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_LR",
    "NORMS",
    "OPTIMIZERS",
    "CropSampler",
    "RobustifyReport",
    "RobustifyResult",
    "as_photo_list",
    "bootstrap_ci",
    "default_output_dir",
    "evaluate_robustified",
    "feature_distance",
    "foolbox_photos",
    "load_image_folder",
    "pgd_maximize",
    "probe_geometry",
    "project",
    "random_noise",
    "response_change",
    "robustify",
    "save_robustified",
]
