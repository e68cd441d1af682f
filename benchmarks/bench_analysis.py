"""Analysis speed at paper-like sizes, and discriminability calibration under the null.

* ``discriminability_s``: 14 models x 500 images, two scores, B = 2000 (the paper's 14 networks).
* ``null_fpr``: uncorrected per-pair false-positive rate over 60 data sets x 210 null pairs (21
  models differing only by heavy-tailed noise, 60 images, B = 1000); ``null_holm_fraction``: the
  Holm-corrected fraction of separated pairs the analysis reports (should be <= 0.05).
* ``first_order_l2_s``: exact box-constrained l2 first-order optimum for 50 images at 224 px and
  10 budgets.
* ``l2_linf_s``: target-wise l2 vs linf agreement for a linear model with 5000 targets, 100
  images (64 px), B = 1000.

Usage: ``python benchmarks/bench_analysis.py [--threads 2] [--quick]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

os.environ.setdefault("BRAINPROBE_PROGRESS", "0")


@dataclass
class _Probe:
    delta: torch.Tensor
    eps: torch.Tensor
    norm: str


class _Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def main() -> None:
    import xarray as xr

    from brainprobe.analysis import discriminability, first_order_l2, l2_linf

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"bench": "analysis", "threads": args.threads, "machine": platform.machine()}

    m, n = 14, 500
    s = xr.DataArray(rng.normal(size=(m, n)) + rng.normal(size=n), dims=("model", "image"))
    t = time.perf_counter()
    discriminability({"predictivity": s, "sensitivity": s + rng.normal(size=(m, n))}, n_boot=2000)
    out["discriminability_s"] = round(time.perf_counter() - t, 3)

    reps = 10 if args.quick else 60
    raw, holm = [], []
    for rep in range(reps):
        x = 2 * rng.normal(size=60) + rng.standard_t(5, size=(21, 60)) * rng.uniform(0.5, 2, 60)
        ds = discriminability({"s": xr.DataArray(x, dims=("model", "image"))}, n_boot=1000, seed=rep)
        iu = np.triu_indices(21, 1)
        raw.append(ds["p_value"].values[0][iu] < 0.05)
        holm.append(float(ds["fraction_significant"][0]))
    out["null_pairs"] = int(210 * reps)
    out["null_fpr"] = round(float(np.mean(raw)), 4)
    out["null_holm_fraction"] = round(float(np.mean(holm)), 4)

    n_img = 10 if args.quick else 50
    g = rng.normal(size=(n_img, 3 * 224 * 224))
    xi = np.clip(rng.uniform(-0.2, 1.2, size=g.shape), 0, 1)
    t = time.perf_counter()
    first_order_l2(g, xi, np.geomspace(0.1, 30, 10))
    out["first_order_l2_s"] = round(time.perf_counter() - t, 3)

    n_t, size, n_im = (500, 32, 20) if args.quick else (5000, 64, 100)
    p = 3 * size * size
    model = _Linear(torch.randn(n_t, p) / p**0.5)
    images = 0.5 + 0.2 * torch.rand(n_im, 3, size, size)
    eps2, epsi = torch.tensor([0.5, 1.0]), torch.tensor([2 / 255, 4 / 255])
    d2 = torch.randn(2, n_im, 3, size, size)
    d2 = d2 / d2.flatten(2).norm(dim=2)[..., None, None, None] * eps2.reshape(-1, 1, 1, 1, 1)
    di = torch.sign(torch.randn(2, n_im, 3, size, size)) * epsi.reshape(-1, 1, 1, 1, 1)
    t = time.perf_counter()
    l2_linf({"m": model}, images, {"m": [_Probe(d2, eps2, "l2"), _Probe(di, epsi, "linf")]}, n_boot=1000)
    out["l2_linf_s"] = round(time.perf_counter() - t, 3)
    out["l2_linf_targets"] = n_t
    print(json.dumps(out))


if __name__ == "__main__":
    main()
