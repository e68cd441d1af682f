"""How much bf16 autocast distorts a probe's response change, vs float32 (prints one JSON line).

Issue 13 item 10. On CUDA, ``probe()`` runs model forwards under bf16 autocast; bf16 keeps 8
significant bits (relative resolution 2^-8 = 0.4%), so a response change that is small next to
the response itself is swamped by rounding. This script measures it on the CPU (torch's CPU
autocast to bfloat16, the same number format) for the benchmark Encoder of
``bench_probes.py`` (MobileNetV2 cut at ``features.10`` + ridge readout, 128 px, 8 images, Drive
on one ROI, 10 steps):

- ``engine``: ``probe(..., autocast="force")`` with the threshold set to 0, so every budget runs
  as the engine runs budgets above the threshold (PGD steps and keep-best under bf16, clean
  responses float32), vs the same probe in float32: ``||change_bf16 - change_fp32||_F /
  ||change_fp32||_F`` over images x targets, per budget. The threshold is read from this column.
- ``before``: the whole model under bf16, clean responses included (what a CUDA user got before
  the fix), the same error.
- ``readout``: the float32 probe's perturbations, their change re-evaluated under bf16 (clean and
  perturbed forwards): the part of the error that is pure read-out rounding.

``threshold`` per norm: the smallest budget of the grid at and above which every ``engine`` error
is <= 1%; ``probe()`` runs budgets below it in float32 (``brainprobe.probes.probe.AUTOCAST_MIN_EPS``).

CPU bf16 without bf16 units is slow (emulated): ~3 min per norm at 4 images on 2 busy cores.

Usage: ``python benchmarks/bench_autocast.py [--threads 2] [--images 8] [--before] [--norms l2,linf]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

os.environ.setdefault("BRAINPROBE_PROGRESS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_probes import RESOLUTION, ROI, STEPS, build_encoder  # noqa: E402

GRID = {
    "l2": [0.01, 0.03, 0.1, 0.3, 1.0],
    "linf": [0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255],
}
TOLERANCE = 0.01


class Bf16(nn.Module):
    """``model`` run under CPU bf16 autocast at every call (float32 out)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.targets = model.targets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per budget: ||a - b||_F / ||b||_F over images x targets (a, b: E x N x T)."""
    return [float((a[i] - b[i]).norm() / b[i].norm()) for i in range(len(b))]


def threshold(eps: list[float], err: list[float], tol: float = TOLERANCE) -> float | None:
    """Smallest grid budget at and above which every error is <= tol (None: not even the largest)."""
    thr = None
    for e, r in sorted(zip(eps, err), reverse=True):
        if r > tol:
            break
        thr = e
    return thr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--before", action="store_true", help="also measure the pre-fix behaviour (all-bf16 model)")
    ap.add_argument("--norms", default="l2,linf")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from brainprobe.data import sample_stimuli
    from brainprobe.probes import probe

    encoder = build_encoder()
    stim, _ = sample_stimuli(args.images, RESOLUTION, seed=1)
    x = torch.from_numpy(stim).permute(0, 3, 1, 2).float() / 255.0
    bf16 = Bf16(encoder)
    kw = dict(objective=f"drive:{ROI}", steps=STEPS, autocast=False, progress=False, checks=False)
    t0 = time.perf_counter()
    table: dict[str, dict[str, list[float] | float | None]] = {}
    from brainprobe.probes import _engine

    shipped = dict(_engine.AUTOCAST_MIN_EPS)
    for norm in args.norms.split(","):
        grid = GRID[norm]
        ref = probe(encoder, x, norm=norm, eps=grid, **kw)  # type: ignore[arg-type]
        _engine.AUTOCAST_MIN_EPS[norm] = 0.0
        try:
            eng = probe(encoder, x, norm=norm, eps=grid, **{**kw, "autocast": "force"})  # type: ignore[arg-type]
        finally:
            _engine.AUTOCAST_MIN_EPS[norm] = shipped[norm]
        assert eng.settings["forward_dtype"] == "bfloat16"
        before = probe(bf16, x, norm=norm, eps=grid, **kw) if args.before else None  # type: ignore[arg-type]
        with torch.no_grad():
            clean16 = bf16(x)
            read = torch.stack([bf16(torch.clamp(x + ref.delta[i], 0, 1)) - clean16 for i in range(len(grid))])
        err = rel_err(eng.change, ref.change)
        table[norm] = {
            "eps": grid,
            "engine": [round(v, 4) for v in err],
            "before": [round(v, 4) for v in rel_err(before.change, ref.change)] if before is not None else None,
            "readout": [round(v, 4) for v in rel_err(read, ref.change)],
            "change_rms_fp32": [round(float(ref.change[i].pow(2).mean().sqrt()), 5) for i in range(len(grid))],
            "threshold": threshold(grid, err),
            "shipped_threshold": shipped[norm],
        }
        print(norm, json.dumps(table[norm]), f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps({
        "workload": f"mobilenet_v2 features.10 Encoder, {RESOLUTION} px, {args.images} images, drive:{ROI}, {STEPS} steps",
        "autocast": "cpu bfloat16",
        "clean_rms": round(float(encoder(x).detach().pow(2).mean().sqrt()), 4),
        "tolerance": TOLERANCE,
        "table": table,
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": args.threads,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
