"""Small real datasets for the encoding tests: library photo crops, responses from real backbones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


def readout_dataset(model: str, layers: dict[str, str], n_images: int = 60, resolution: int = 64, per_roi: int = 6,
                    repeats: int = 3, noise: float = 0.5, seed: int = 0):
    """Dataset whose ROI ``roi`` is a random linear readout of ``model``'s avg-pooled ``layers[roi]`` plus trial noise."""
    from brainprobe.data import Dataset, sample_stimuli
    from brainprobe.zoo import load_backbone, truncate

    torch.set_num_threads(2)
    images, _ = sample_stimuli(n_images, resolution, seed=seed)
    backbone = load_backbone(model)
    with torch.no_grad():
        acts = truncate(backbone, list(layers.values()))(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    rng = np.random.default_rng(seed)
    signals, rows = [], []
    for roi, layer in layers.items():
        feats = acts[layer].mean(dim=(2, 3)).double().numpy()
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-8)
        s = feats @ rng.normal(size=(feats.shape[1], per_roi))
        signals.append(s / s.std(0))
        rows += [{"target": f"{roi}_{i}", "roi": roi} for i in range(per_roi)]
    signal = np.concatenate(signals, axis=1)
    trials = signal[:, None, :] + noise * rng.normal(size=(n_images, repeats, signal.shape[1]))
    return Dataset(images, targets=pd.DataFrame(rows), trials=trials, attrs={"source": "test", "simulated": True, "brain": model})


@pytest.fixture(scope="session")
def mobilenet_dataset():
    return readout_dataset("mobilenet_v2", {"early": "features.4", "late": "features.13"})


@pytest.fixture(scope="session", autouse=True)
def _single_blas_thread():
    """One BLAS thread: on a loaded 2-core machine OpenBLAS's spinning threads make small SVDs 1000x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield
