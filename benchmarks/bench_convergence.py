"""Convergence of Shift probes at the demo's smallest budgets vs PGD settings (docs/probes.md).

Reads the fitted encoders of a finished demo run's cache (``--cache``, e.g. runs/demo/cache),
probes ``--images`` test images of the first dataset at l2 0.05 and linf 0.25/255 under each
setting, and prints the median fraction of the first-order bound and the seconds per probe item.

    nice -n 10 .venv/bin/python benchmarks/bench_convergence.py --cache runs/demo/cache --images 4
"""

from __future__ import annotations

import argparse
import glob
import time
import warnings

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--models", default="")
    ap.add_argument("--settings", default="5:None,5:2,8:2,10:2")
    ap.add_argument("--norms", default="l2,linf")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from brainprobe._images import to_float_tensor
    from brainprobe.data import Dataset
    from brainprobe.probes import Shift, probe
    from brainprobe.probes import convergence as C

    data = sorted(glob.glob(f"{args.cache}/data/*/dataset.nc"))[0]
    ds = Dataset.load(data)
    idx = np.asarray(ds.test_index)[: args.images]
    x = to_float_tensor(np.asarray(ds.stimuli)[idx])
    encoders = {}
    for p in sorted(glob.glob(f"{args.cache}/fit/*/encoder.pt")):
        enc = torch.load(p, weights_only=False, map_location="cpu").eval()
        if any(c.name == data.split("/")[-2] for c in []):
            pass
        encoders.setdefault(enc.backbone_name, enc)
    wanted = [m for m in args.models.split(",") if m] or sorted(encoders)
    eps = {"l2": 0.05, "linf": 0.25 / 255}
    for name in wanted:
        for norm in args.norms.split(","):
            bound = None
            for spec in args.settings.split(","):
                steps, mult = spec.split(":")
                ss = None if mult == "None" else float(mult) * eps[norm]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.process_time()
                    r = probe(encoders[name], x, norm=norm, eps=[eps[norm]], objective=Shift(), steps=int(steps),
                              step_size=ss, progress=False, convergence=bound is None, checks=False)
                    cpu = time.process_time() - t0
                if bound is None:
                    bound, t_bound = r.bound, cpu
                    t0 = time.process_time()
                    probe(encoders[name], x, norm=norm, eps=[eps[norm]], objective=Shift(), steps=int(steps),
                          step_size=ss, progress=False, convergence=False, checks=False)
                    cpu = time.process_time() - t0
                    t_bound -= cpu
                    print(f"{name:38s} {norm:4s} bound: CPU s/item {t_bound / len(x):.2f}", flush=True)
                f = (r.objective_value[0].double() / bound).numpy()
                print(f"{name:38s} {norm:4s} steps {steps:>2s} step {mult:>4s}xeps  fraction median {np.median(f):.3f} "
                      f"min {f.min():.3f}  late gain {float(C.late_gain(r.trace, int(steps), 1).median()):.3f}  "
                      f"CPU s/item {cpu / len(x):.2f}", flush=True)


if __name__ == "__main__":
    main()
