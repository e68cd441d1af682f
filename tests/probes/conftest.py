"""Small real models for the probe tests: linear response models and tiny CNNs with ROI tables."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn


class LinearResponses(nn.Module):
    """y = W vec(x) + b: N x 3 x H x W -> N x T, with a targets table."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, rois: list[str] | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias if bias is not None else torch.zeros(weight.shape[0]))
        rois = rois or ["all"] * weight.shape[0]
        self.targets = pd.DataFrame({"target": [f"t{i}" for i in range(len(rois))], "roi": rois})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class TinyEncoder(nn.Module):
    """A small CNN response model (any input size): conv-ReLU-conv-ReLU-mean pool-linear -> T responses."""

    def __init__(self, n_targets: int = 6, rois: tuple[str, ...] = ("V1", "V4"), seed: int = 0, act: type = nn.ReLU) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act(), nn.Conv2d(8, 16, 3, stride=2, padding=1), act())
        self.readout = nn.Linear(16, n_targets)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim > 1 else 0.1))
        per = n_targets // len(rois)
        roi_col = [rois[min(i // per, len(rois) - 1)] for i in range(n_targets)]
        self.targets = pd.DataFrame({"target": [f"v{i}" for i in range(n_targets)], "roi": roi_col})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x).mean(dim=(2, 3)))


class TinyClassifier(nn.Module):
    """Small CNN classifier on 32 px images (10 logits)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINPROBE_PROGRESS", "0")
    torch.set_num_threads(1)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(1))


@pytest.fixture
def encoder() -> TinyEncoder:
    return TinyEncoder()
