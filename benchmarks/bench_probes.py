"""Benchmark of the probe engine against a naive notebook-style PGD sweep (prints one JSON line).

Workload (issue 5): 8 images at 128 px, 5 l2 budgets, 10 steps, Drive on one ROI, on an Encoder
(MobileNetV2 cut at features.10 + fitted ridge readout, from brainprobe.encoding.fit_encoder on a
small SIMULATED dataset).

- ours:  ``brainprobe.probes.probe`` with its defaults (truncated encoder, input-only gradients,
  packed budgets, channels-last memory format for conv models).
- naive: the way encoding-model notebooks do it: loop over eps; the full MobileNetV2 forward
  (classifier included) with a forward hook at the layer; parameter gradients on (``.backward()``);
  the same PGD update (normalised gradient step, scale onto the ball, clip to the box); NCHW
  inputs as torchvision gives them. ``naive_nhwc_s``: the same on NHWC-strided inputs (a permuted
  uint8 array), which happens to run the convolutions channels-last and is faster.
- bare:  only the forward + input-backward passes of the cut encoder that our sweep runs, on the
  same batches and in the same memory format; ``efficiency = bare_s / ours_s``.

After a warm-up of each, ``--pairs`` interleaved (ours, naive) pairs are timed; ``speedup`` is
the median of naive/ours per pair, with a bootstrap 95% CI. Our batch size is chosen first by
timing each candidate (``--batch-sizes``) and keeping the fastest.

Usage: ``python benchmarks/bench_probes.py [--threads 2] [--pairs 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn

os.environ.setdefault("BRAINPROBE_PROGRESS", "0")

RESOLUTION = 128
LAYER = "features.10"
EPS = [0.1, 0.2, 0.4, 0.8, 1.6]
STEPS = 10
N_IMAGES = 8
ROI = "ffa"


def build_encoder(seed: int = 0):  # type: ignore[no-untyped-def]
    """A fitted Encoder: MobileNetV2 features.10, avg pooling, ridge readout of 2 simulated ROIs."""
    import pandas as pd

    from brainprobe.data import Dataset, sample_stimuli
    from brainprobe.encoding import fit_encoder

    stimuli, _ = sample_stimuli(64, RESOLUTION, seed=seed)
    rng = np.random.default_rng(seed)
    # SIMULATED responses: a fixed random linear map of coarse pixel statistics plus noise
    coarse = stimuli.reshape(64, 8, RESOLUTION // 8, 8, RESOLUTION // 8, 3).mean(axis=(2, 4)).reshape(64, -1) / 255.0
    responses = coarse @ rng.normal(size=(coarse.shape[1], 40)) + 0.3 * rng.normal(size=(64, 40))
    targets = pd.DataFrame({"target": [f"v{i}" for i in range(40)], "roi": ["v1"] * 20 + [ROI] * 20})
    ds = Dataset(stimuli, responses, targets, attrs={"source": "bench", "subject": "sim", "simulated": True, "brain": "pixels"})
    return fit_encoder("mobilenet_v2", ds, layer=LAYER, pooling="avg", cv=3, cache=False, n_boot=10)


def ours_sweep(encoder: nn.Module, x: torch.Tensor, batch_size: int, channels_last: bool | None = None):  # type: ignore[no-untyped-def]
    from brainprobe.probes import probe

    return probe(encoder, x, norm="l2", eps=EPS, objective=f"drive:{ROI}", steps=STEPS, batch_size=batch_size,
                 channels_last=channels_last, progress=False)


def naive_sweep(
    backbone: nn.Module,
    weight: torch.Tensor,
    bias: torch.Tensor,
    roi: torch.Tensor,
    x: torch.Tensor,
    *,
    full: bool = True,
    param_grads: bool = True,
    encoder: nn.Module | None = None,
) -> torch.Tensor:
    """Notebook-style sweep (loop over eps, batch = the N images); returns the ROI-mean change E x N.

    ``full``: run the whole MobileNetV2 (classifier included) with a forward hook at the layer;
    else the cut ``encoder``. ``param_grads``: parameters require grad and ``.backward()`` fills
    their ``.grad`` (as in a notebook); else gradients are taken for the input only.
    """
    feats: dict[str, torch.Tensor] = {}
    handle = None
    if full:
        layer = dict(backbone.net.named_modules())[LAYER]
        handle = layer.register_forward_hook(lambda m, i, o: feats.__setitem__("act", o))
    module = backbone if full else encoder
    assert module is not None
    for p in module.parameters():
        p.requires_grad_(param_grads)

    def predict(images: torch.Tensor) -> torch.Tensor:
        if not full:
            return module(images)
        backbone(images)  # full network, classifier included
        return feats["act"].mean(dim=(2, 3)) @ weight.T + bias

    try:
        with torch.no_grad():
            y0 = predict(x)[:, roi].mean(1)
        changes = []
        for eps in EPS:
            alpha = 2.5 * eps / STEPS
            adv = x.clone()
            for _ in range(STEPS):
                adv.requires_grad_(True)
                loss = predict(adv)[:, roi].mean(1).sum()
                if param_grads:
                    module.zero_grad()
                    loss.backward()
                    g = adv.grad
                else:
                    (g,) = torch.autograd.grad(loss, adv)
                g = g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
                with torch.no_grad():
                    delta = adv + alpha * g - x
                    n = delta.flatten(1).norm(dim=1)
                    delta = delta * torch.clamp(eps / n, max=1.0).view(-1, 1, 1, 1)
                    adv = torch.clamp(x + delta, 0, 1)
            with torch.no_grad():
                changes.append(predict(adv)[:, roi].mean(1) - y0)
        return torch.stack(changes)
    finally:
        if handle is not None:
            handle.remove()
        for p in module.parameters():
            p.requires_grad_(False)
            p.grad = None


def bare_passes(encoder: nn.Module, x: torch.Tensor, batch_size: int, roi: torch.Tensor, channels_last: bool) -> float:
    """Seconds of the forward + input-backward passes our sweep needs, on the same batches, nothing else.

    ``channels_last``: run them in the memory format our sweep used (encoder and inputs NHWC)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    encoder.to(memory_format=fmt)
    items = x.repeat(len(EPS), 1, 1, 1).contiguous(memory_format=fmt)
    try:
        return _bare_timed(encoder, x.contiguous(memory_format=fmt), items, batch_size, roi)
    finally:
        encoder.to(memory_format=torch.contiguous_format)


def _bare_timed(encoder: nn.Module, x: torch.Tensor, items: torch.Tensor, batch_size: int, roi: torch.Tensor) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        encoder(x)  # clean responses
    for lo in range(0, len(items), batch_size):
        batch = items[lo : lo + batch_size].clone()
        for _ in range(STEPS):
            batch.requires_grad_(True)
            (g,) = torch.autograd.grad(encoder(batch)[:, roi].mean(1).sum(), batch)
            batch = (batch.detach() + 1e-4 * g).clamp(0, 1)
        with torch.no_grad():
            encoder(batch)  # evaluation of the last iterate
    return time.perf_counter() - t0


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _bootstrap_ci(ratios: list[float], seed: int = 0, n: int = 10_000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    arr = np.asarray(ratios)
    meds = np.median(rng.choice(arr, size=(n, len(arr)), replace=True), axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--batch-sizes", default="5,8,10,20,40")
    parser.add_argument("--ablation", action="store_true", help="time what truncation, input-only gradients and packing each save")
    parser.add_argument("--steps", type=int, default=STEPS, help="PGD steps (the issue's workload: 10)")
    args = parser.parse_args()
    globals()["STEPS"] = args.steps
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from brainprobe.data import sample_stimuli
    from brainprobe.zoo import load_backbone

    encoder = build_encoder()
    backbone = load_backbone("mobilenet_v2")
    weight, bias = encoder.weight.clone(), encoder.bias.clone()
    roi = torch.tensor(np.flatnonzero(encoder.targets["roi"].to_numpy() == ROI))
    stim, _ = sample_stimuli(N_IMAGES, RESOLUTION, seed=1)
    # NCHW-contiguous float images, as torchvision's to_tensor + torch.stack give a notebook. (A
    # permute of the stored N x H x W x 3 array without .contiguous() is NHWC-strided, and the naive
    # sweep is ~25% faster on such input: reported as naive_nhwc_s.)
    x_nhwc = torch.from_numpy(stim).permute(0, 3, 1, 2).float() / 255
    x = x_nhwc.contiguous()

    if args.ablation:
        _ablation(encoder, backbone, weight, bias, roi, x, x_nhwc, args)
        return

    # choose our batch size by measurement (after one warm-up run)
    ours_sweep(encoder, x, 8)
    by_batch = {int(b): _timed(lambda b=int(b): ours_sweep(encoder, x, b)) for b in args.batch_sizes.split(",")}
    batch = min(by_batch, key=by_batch.get)  # type: ignore[arg-type]

    res = ours_sweep(encoder, x, batch)
    used_cl = bool(res.settings["channels_last"])
    naive_sweep(backbone, weight, bias, roi, x)  # warm-ups
    naive_sweep(backbone, weight, bias, roi, x_nhwc)
    ours_t, naive_t, naive_nhwc_t, bare_t = [], [], [], []
    for _ in range(args.pairs):
        ours_t.append(_timed(lambda: ours_sweep(encoder, x, batch)))
        naive_t.append(_timed(lambda: naive_sweep(backbone, weight, bias, roi, x)))
        naive_nhwc_t.append(_timed(lambda: naive_sweep(backbone, weight, bias, roi, x_nhwc)))
        bare_t.append(bare_passes(encoder, x, batch, roi, used_cl))
    ratios = [n / o for n, o in zip(naive_t, ours_t)]
    ratios_nhwc = [n / o for n, o in zip(naive_nhwc_t, ours_t)]
    ci = _bootstrap_ci(ratios)
    ci_nhwc = _bootstrap_ci(ratios_nhwc)

    ours_change = res.change[..., roi].mean(-1)
    naive_change = naive_sweep(backbone, weight, bias, roi, x)
    rel = (ours_change - naive_change).abs() / naive_change.abs()
    print(json.dumps({
        "benchmark": "probes",
        "ours_s": round(statistics.median(ours_t), 4),
        "naive_s": round(statistics.median(naive_t), 4),
        "speedup": round(statistics.median(ratios), 3),
        "speedup_ci95": [round(ci[0], 3), round(ci[1], 3)],
        "naive_nhwc_s": round(statistics.median(naive_nhwc_t), 4),
        "speedup_vs_naive_nhwc": round(statistics.median(ratios_nhwc), 3),
        "speedup_vs_naive_nhwc_ci95": [round(ci_nhwc[0], 3), round(ci_nhwc[1], 3)],
        "efficiency": round(statistics.median(bare_t) / statistics.median(ours_t), 3),
        "channels_last": used_cl,
        "bare_s": round(statistics.median(bare_t), 4),
        "change_rel_diff": float(f"{float(rel.max()):.3g}"),
        "change_rel_diff_median": float(f"{float(rel.median()):.3g}"),
        "batch_size": batch,
        "ours_s_by_batch": {str(k): round(v, 4) for k, v in by_batch.items()},
        "pairs": args.pairs,
        "threads": torch.get_num_threads(),
        "images": N_IMAGES, "budgets": len(EPS), "steps": STEPS, "resolution": RESOLUTION, "layer": LAYER,
        "device": "cpu", "torch": torch.__version__,
        "keep_best_last_iterate_share": float((res.best_step == STEPS).float().mean()),
    }))


def _ablation(encoder, backbone, weight, bias, roi, x, x_nhwc, args) -> None:  # type: ignore[no-untyped-def]
    """Median seconds of the sweep for each variant, interleaved over ``--pairs`` rounds."""
    variants = {
        "naive_full_paramgrad": lambda: naive_sweep(backbone, weight, bias, roi, x),
        "full_inputonly": lambda: naive_sweep(backbone, weight, bias, roi, x, param_grads=False),
        "cut_paramgrad": lambda: naive_sweep(backbone, weight, bias, roi, x, full=False, encoder=encoder),
        "cut_inputonly_loop": lambda: naive_sweep(backbone, weight, bias, roi, x, full=False, param_grads=False, encoder=encoder),
    }
    variants["naive_full_paramgrad_nhwc_input"] = lambda: naive_sweep(backbone, weight, bias, roi, x_nhwc)
    for b in args.batch_sizes.split(","):
        variants[f"ours_batch{int(b)}"] = lambda b=int(b): ours_sweep(encoder, x, b)
        variants[f"ours_batch{int(b)}_nchw"] = lambda b=int(b): ours_sweep(encoder, x, b, channels_last=False)
    for fn in variants.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.pairs):
        for k, fn in variants.items():
            times[k].append(_timed(fn))
    print(json.dumps({
        "benchmark": "probes_ablation",
        "median_s": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "rounds": args.pairs, "threads": torch.get_num_threads(), "steps": STEPS, "images": N_IMAGES,
        "budgets": len(EPS), "resolution": RESOLUTION, "layer": LAYER,
    }))


if __name__ == "__main__":
    main()
