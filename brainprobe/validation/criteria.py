"""Per brain and readout: every criterion's per-image score of every candidate against the known brain.

A score is "higher = closer to the brain"; a criterion picks the candidate with the highest mean
score. Controversial probes are scored per pair (the brain's own network against each other
candidate): per image +1 (the brain followed its own network), -1 (the other), 0 (undecided:
the brain's change is within trial noise) or NaN (the pair did not disagree on that image).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr

from brainprobe.errors import ConfigError


def brain_scores(
    brain: Any,
    own: str,
    encoders: Mapping[str, Any],
    dataset: Any,
    *,
    criteria: list[str],
    norm: str,
    eps: list[float],
    steps: int,
    n_images: int,
    axes_images: int,
    axes_k: int,
    noise_z: float,
    batch_size: int,
    seed: int,
) -> xr.Dataset:
    """Score every candidate encoder against one SIMULATED brain on every criterion.

    Parameters
    ----------
    brain : SimulatedBrain with its scale (``scale_from(dataset)``)
    own : str
        The brain's own network (a key of ``encoders``).
    encoders : dict candidate -> Encoder fitted to ``dataset``
    dataset : Dataset simulated from ``brain``
    criteria : subset of ``CRITERIA``
    norm, eps, steps : probe settings (``eps`` in [0,1] pixel units for l2)
    n_images : int
        The first ``n_images`` test images are probed.
    axes_images, axes_k : coding axes at the first ``axes_images`` probed images, top-``axes_k`` axes.
    noise_z : float
        The brain follows a model only when its change exceeds ``noise_z`` x the noise SD of the
        measured trial mean (controversial).

    Returns
    -------
    xarray.Dataset
        ``predictivity`` (candidate, test_image); ``sensitivity``, ``closed_loop`` (candidate,
        image); ``axes`` (candidate, axes_image); ``controversial`` and ``controversial_z``
        (other, eps, image); coords ``test_group``, ``group``, ``axes_group`` (photo labels for
        bootstraps); attrs ``own``, ``noise_unit`` (noise SD of a single-trial target-set mean at
        single-trial NC 0.5, brain_z units) and ``noise_threshold``.
    """
    from brainprobe._images import to_float_tensor
    from brainprobe.analysis import controversial, predictivity_scores, sensitivity, transfer
    from brainprobe.analysis._common import model_mean_sd, model_sd
    from brainprobe.analysis._controversial import _noise_of_mean
    from brainprobe.probes import Contrast, Shift, probe

    if own not in encoders:
        raise ConfigError(f"the brain's own network {own!r} is not among the fitted candidates {list(encoders)}")
    names = list(encoders)
    others = [c for c in names if c != own]
    test = np.asarray(dataset.test_index)
    idx = test[: min(n_images, len(test))]
    groups = np.asarray(dataset.groups).astype(str)
    x = to_float_tensor(np.asarray(dataset.stimuli)[idx])
    data: dict[str, Any] = {}
    coords: dict[str, Any] = {"candidate": names, "image": np.arange(len(idx)), "group": ("image", groups[idx])}
    attrs: dict[str, Any] = {"own": own, "brain_form": getattr(brain, "form", "matched"), "norm": norm}

    if "predictivity" in criteria:
        pred = predictivity_scores(dict(encoders), np.asarray(dataset.responses)[test],
                                   images=to_float_tensor(np.asarray(dataset.stimuli)[test]))
        data["predictivity"] = (("candidate", "test_image"), pred.sel(model=names).values)
        coords["test_image"] = np.arange(len(test))
        coords["test_group"] = ("test_image", groups[test])

    need_probes = any(c in criteria for c in ("sensitivity", "closed_loop"))
    if need_probes:
        objective = Shift(targets=None, normalize=True)
        own_probes = {
            name: probe(enc, x, norm=norm, eps=eps, objective=objective, steps=steps, batch_size=batch_size,
                        seed=seed, progress=False)
            for name, enc in encoders.items()
        }
        if "sensitivity" in criteria:
            bp = probe(brain, x, norm=norm, eps=eps, objective=objective, steps=steps, batch_size=batch_size,
                       seed=seed, progress=False)
            sens = sensitivity({**encoders, "__brain__": brain}, x, {**own_probes, "__brain__": bp}, measure="rms",
                               n_boot=50, seed=seed)
            ch = sens["change"].sel(norm=norm)  # model x eps x roi x image, SD units
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.log(ch.sel(model=names).values / ch.sel(model="__brain__").values[None])
            data["sensitivity"] = (("candidate", "image"), -np.nanmean(np.abs(ratio), axis=(1, 2)))
        if "closed_loop" in criteria:
            tr = transfer(dict(encoders), x, own_probes, objective="shift", brain=brain, baselines=(), n_boot=50,
                          seed=seed)
            data["closed_loop"] = (("candidate", "image"),
                                   tr["brain_abs"].sel(source_model=names, norm=norm).mean("eps").values)

    if "axes" in criteria:
        from brainprobe.analysis import coding_axes

        k = max(2, min(axes_images, len(idx)))
        ax = coding_axes(dict(encoders), x[:k], brain=brain, brain_name="__brain__", k=axes_k, n_boot=50, seed=seed)
        al = ax["alignment_image"].sel(model_a=names, model_b="__brain__").mean("roi")
        data["axes"] = (("candidate", "axes_image"), al.values)
        coords["axes_image"] = np.arange(k)
        coords["axes_group"] = ("axes_image", groups[idx[:k]])

    if "controversial" in criteria:
        cprobes: dict[tuple[str, str], Any] = {}
        for o in others:
            for a, b in ((own, o), (o, own)):
                cprobes[(a, b)] = probe(None, x, norm=norm, eps=eps, objective=Contrast(encoders[a], encoders[b], None),
                                        steps=steps, batch_size=batch_size, seed=seed, progress=False)
        # the brain's true trial noise (known here): its true ceilings; estimated NCSNR ones as a fallback
        true_nc = dataset.targets.get("true_noise_ceiling") if hasattr(dataset.targets, "get") else None
        nc = np.asarray(true_nc if true_nc is not None else dataset.noise_ceiling, dtype=np.float64)
        nc = np.clip(np.nan_to_num(nc, nan=1e-3), 1e-3, 1.0)
        cont = controversial(dict(encoders), x, cprobes, brain=brain, noise_ceiling=nc, noise_z=noise_z, n_boot=50,
                             seed=seed)
        with torch.no_grad():
            clean = brain(x).double().numpy()
        all_t = np.arange(clean.shape[1])
        unit = model_mean_sd(brain, clean, all_t, "target-set mean of the brain")
        threshold = noise_z * _noise_of_mean(brain, clean, all_t, nc, unit)
        s = model_sd(brain, clean, "clean responses of the brain")
        attrs["noise_unit"] = float(np.sqrt((s**2).sum()) / len(all_t) / unit)
        attrs["noise_threshold"] = float(threshold)
        outcome, signed = pair_outcomes(cont, own, others, norm, threshold)
        data["controversial"] = (("other", "eps", "image"), outcome)
        data["controversial_z"] = (("other", "eps", "image"), signed)
        coords["other"] = others
        coords["eps"] = np.asarray(cont["eps"].values, dtype=float)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def pair_outcomes(cont: xr.Dataset, own: str, others: list[str], norm: str,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image, whom the brain followed on (own, other) Contrast probes (the rule of ``count_recovery``).

    Each image counts once, in the orientation with the larger margin, if that margin is > 0.

    Returns
    -------
    outcome : array other x eps x N
        +1 own network, -1 the other, 0 undecided (|change| <= threshold), NaN not controversial.
    signed : array other x eps x N
        The brain's change towards its own network (brain_z units) on controversial images, NaN elsewhere.
    """
    margin = cont["margin"].sel(norm=norm)
    bz = cont["brain_z"].sel(norm=norm)
    out, sig = [], []
    for o in others:
        m1 = np.nan_to_num(margin.sel(model_a=own, model_b=o).values, nan=-np.inf)
        m2 = np.nan_to_num(margin.sel(model_a=o, model_b=own).values, nan=-np.inf)
        use1 = m1 >= m2
        contro = np.where(use1, m1, m2) > 0
        z = np.where(use1, bz.sel(model_a=own, model_b=o).values, -bz.sel(model_a=o, model_b=own).values)
        z = np.nan_to_num(z, nan=0.0)
        res = np.where(z > threshold, 1.0, np.where(z < -threshold, -1.0, 0.0))
        out.append(np.where(contro, res, np.nan))
        sig.append(np.where(contro, z, np.nan))
    return np.stack(out), np.stack(sig)
