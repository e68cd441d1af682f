"""Analytic response models for the analysis tests: linear maps of the pixels with a targets table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn


class LinearModel(nn.Module):
    """y = W . flatten(x) + b: N x 3 x H x W -> N x T, with ROIs from ``rois`` (one name per target)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, rois: list[str] | None = None,
                 training: str | None = None, architecture: str | None = None) -> None:
        super().__init__()
        weight = torch.as_tensor(weight, dtype=torch.float32)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.zeros(weight.shape[0]) if bias is None else torch.as_tensor(bias, dtype=torch.float32))
        rois = rois or ["all"] * weight.shape[0]
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(weight.shape[0])], "roi": rois})
        if training is not None:
            self.training_kind = training
        if architecture is not None:
            self.architecture = architecture

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class QuadraticModel(nn.Module):
    """y_t = w_t . x + c (w_t . x)^2: non-linear, for linearity departures."""

    def __init__(self, weight: torch.Tensor, curvature: float) -> None:
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.c = curvature
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(self.weight.shape[0])], "roi": "all"})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.weight.T
        return z + self.c * z**2


@dataclass
class Probe:
    """A minimal probe result (delta, eps, norm) for analytic perturbations."""

    delta: torch.Tensor
    eps: torch.Tensor
    norm: str


def mid_images(n: int, size: int = 8, seed: int = 0, spread: float = 0.1) -> torch.Tensor:
    """Images near grey (0.5 +- spread): small probes never touch the [0, 1] box."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + spread * (2 * torch.rand(n, 3, size, size, generator=g) - 1)).float()




def smooth_patterns(k: int, size: int, seed: int) -> np.ndarray:
    """k orthonormal low-frequency pixel patterns (k x 3*size*size): shared 'natural image' axes."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, size)
    pats = []
    for _ in range(k):
        fy, fx, ph = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
        img = np.sin(2 * np.pi * (fy * t[:, None] + fx * t[None, :]) + ph)
        pats.append((rng.normal(size=(3, 1, 1)) * img).ravel())
    q, _ = np.linalg.qr(np.stack(pats).T)
    return q.T


def scenario(n_images: int = 12, size: int = 8, seed: int = 0) -> tuple[dict[str, LinearModel], torch.Tensor, LinearModel]:
    """Two 'standard' models (random pixel weights) and two 'robust' ones (weights on the smooth
    axes along which images vary), four architectures, and a brain that reads the smooth axes.

    Images vary mostly along the smooth axes, so in across-image SD units the robust models are
    less sensitive; standard models' probes are unrelated random directions (transfer ~ 0).
    """
    rng = np.random.default_rng(seed)
    p = 3 * size * size
    smooth = smooth_patterns(3, size, seed)
    coef = rng.normal(size=(n_images, 3)) * 1.0
    x = 0.5 + 0.08 * (coef @ smooth) / np.abs(smooth).max() + 0.01 * rng.normal(size=(n_images, p))
    images = torch.tensor(np.clip(x, 0, 1).reshape(n_images, 3, size, size), dtype=torch.float32)
    rois = ["V1", "V1", "V1", "V4", "V4", "V4"]

    def robust_w() -> np.ndarray:
        return np.abs(rng.normal(size=(6, 3))) @ smooth + 0.02 * rng.normal(size=(6, p))  # same-signed mixtures

    models = {
        "std1": LinearModel(torch.tensor(rng.normal(size=(6, p)) * 0.2), rois=rois, training="standard", architecture="cnn1"),
        "std2": LinearModel(torch.tensor(rng.normal(size=(6, p)) * 0.2), rois=rois, training="standard", architecture="cnn2"),
        "rob1": LinearModel(torch.tensor(robust_w()), rois=rois, training="robustified", architecture="cnn1"),
        "rob2": LinearModel(torch.tensor(robust_w()), rois=rois, training="adversarial", architecture="cnn3"),
    }
    brain = LinearModel(torch.tensor(robust_w()), rois=rois)
    return models, images, brain
