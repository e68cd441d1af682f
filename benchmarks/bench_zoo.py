"""Backbone zoo speed: load, trace (truncate) and forward times of the offline models.

For each offline backbone: ``load_s`` (``load_backbone``: build, read and sha256-check the
weights), ``trace_s`` (``truncate`` at the default layers, one torch.fx trace),
``forward_s`` (full model, batch of ``--batch`` images at native resolution, no grad),
``cut_mid_s`` (the truncated model at the middle default layer, same batch) and
``backward_s`` (gradient of the mid-layer activation's squared norm w.r.t. the pixels, the
probes' inner step). Prints one JSON line.

Usage: ``python benchmarks/bench_zoo.py [--threads 2] [--batch 8]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def _timed(fn, repeats: int = 2) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from brainprobe.zoo import load_backbone, truncate

    results = {}
    for name in ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg19"):
        t = time.perf_counter()
        bb = load_backbone(name)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        truncate(bb, bb.spec.default_layers)
        trace_s = time.perf_counter() - t
        mid = truncate(bb, bb.spec.default_layers[1])
        x = torch.rand(args.batch, 3, bb.spec.resolution, bb.spec.resolution, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            forward_s = _timed(lambda: bb(x))
            cut_s = _timed(lambda: mid(x))

        def grad_step() -> None:
            xg = x.clone().requires_grad_(True)
            mid(xg).pow(2).sum().backward()

        results[name] = {
            "load_s": round(load_s, 3),
            "trace_s": round(trace_s, 3),
            "forward_s": round(forward_s, 3),
            "cut_mid_s": round(cut_s, 3),
            "backward_s": round(_timed(grad_step), 3),
            "mid_layer": bb.spec.default_layers[1],
        }
    print(
        json.dumps(
            {
                "bench": "zoo",
                "threads": args.threads,
                "batch": args.batch,
                "machine": platform.machine(),
                "torch": torch.__version__,
                "models": results,
            }
        )
    )


if __name__ == "__main__":
    main()
