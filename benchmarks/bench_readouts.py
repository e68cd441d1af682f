"""Readouts on a SIMULATED brain: predictivity and fit time of each ``brainprobe.encoding.READOUTS`` entry.

A SimulatedBrain (``--brain``, form ``--form``) responds to ``--n-images`` library crops at
``--resolution`` px (3 ROIs x ``--targets-per-roi`` targets, 3 repeats); each candidate model is
fitted with each readout at one layer (the spec's middle default layer unless ``--layer``). Prints
one JSON line per fit: median r / sqrt(NC) per ROI, fit seconds (feature extraction excluded: the
features are cached by a first warm-up extraction), map shape.

Usage: ``python benchmarks/bench_readouts.py [--models mobilenet_v2,efficientnet_lite0] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    from brainprobe.data import SimulatedBrain, sample_stimuli, simulate_dataset
    from brainprobe.encoding import READOUTS, extract_features, fit_encoder
    from brainprobe.zoo import get_spec

    ap = argparse.ArgumentParser()
    ap.add_argument("--brain", default="mobilenet_v2")
    ap.add_argument("--form", default="matched")
    ap.add_argument("--models", default="mobilenet_v2,efficientnet_lite0")
    ap.add_argument("--readouts", default=",".join(READOUTS))
    ap.add_argument("--layer", default=None)
    ap.add_argument("--n-images", type=int, default=180)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--targets-per-roi", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    stimuli, _ = sample_stimuli(args.n_images, args.resolution, seed=args.seed)
    brain = SimulatedBrain(args.brain, targets_per_roi=args.targets_per_roi, seed=args.seed, form=args.form)
    dataset = simulate_dataset(brain, stimuli, repeats=3, seed=args.seed)
    for model in args.models.split(","):
        spec = get_spec(model)
        layer = args.layer or spec.default_layers[len(spec.default_layers) // 2]
        for readout in args.readouts.split(","):
            pooling = READOUTS[readout].pooling
            extract_features(model, dataset.stimuli, [layer], pooling=pooling)  # warm the cache
            t0 = time.perf_counter()
            enc = fit_encoder(model, dataset, layer=layer, readout=readout, seed=args.seed, n_boot=200)
            seconds = time.perf_counter() - t0
            ds = enc.predictivity
            print(json.dumps({
                "brain": args.brain, "form": args.form, "model": model, "layer": layer, "readout": readout,
                "n_train": enc.provenance["n_train"], "targets": enc.n_targets, "features": sum(enc.feature_sizes),
                "fit_s": round(seconds, 1),
                "roi_r_normalised": {r: round(float(v), 3) for r, v in zip(ds["roi"].values.tolist(), ds["roi_r_normalised"].values)},
                "median_r_normalised": round(float(np.nanmedian(ds["roi_r_normalised"].values)), 3),
                "settings": {k: v for k, v in enc.provenance["readout_settings"].items() if k in ("l1", "smooth", "epochs", "pca", "seconds")},
            }), flush=True)


if __name__ == "__main__":
    main()
