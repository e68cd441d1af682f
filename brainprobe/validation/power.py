"""Power analysis for a closed-loop controversial experiment: images x repeats needed to decide a pair.

For a pair (the brain's own network vs another candidate) the validation measured, on each
controversial image, the noise-free change of the brain's target-set mean towards its own network
(``controversial_z``, in brain SD units). A real experiment measures the response to the clean and
to the probe image, each averaged over R trials, so the measured change carries noise of SD
``sqrt(2) * noise_unit * sqrt((1 - nc) / nc / R)`` in the same units (single-trial noise ceiling
``nc`` of every target; ``noise_unit`` is that noise at nc = 0.5 and R = 1, from the brain's signal
SDs). The pair is decided when a two-sided one-sample t-test of the N measured changes rejects 0 at
``alpha`` with the sign of the brain's own network. Power = share of simulated experiments (N
images drawn with replacement from the measured changes, Gaussian noise added) that decide it so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def power_curve(signal: np.ndarray, noise_unit: float, *, noise_ceilings: list[float], repeats: list[int],
                n_images: list[int], alpha: float = 0.05, n_sim: int = 400, seed: int = 0) -> np.ndarray:
    """Power to decide a pair for its own network, per noise ceiling x repeats x number of images.

    Parameters
    ----------
    signal : array M
        Noise-free change towards the brain's own network on controversial images (brain SD units).
    noise_unit : float
        Noise SD of the measured target-set mean change at single-trial NC 0.5 and R = 1 (/ sqrt 2).
    noise_ceilings : single-trial noise ceilings in (0, 1)
    repeats : trials per image R
    n_images : numbers of controversial images N

    Returns
    -------
    array len(noise_ceilings) x len(repeats) x len(n_images), in [0, 1] (NaN without signal).
    """
    from scipy.stats import t as student_t

    s = np.asarray(signal, dtype=np.float64)
    s = s[np.isfinite(s)]
    out = np.full((len(noise_ceilings), len(repeats), len(n_images)), np.nan)
    if len(s) == 0:
        return out
    rng = np.random.default_rng(seed)
    for k, n in enumerate(n_images):
        draw = s[rng.integers(0, len(s), size=(n_sim, n))]
        z = rng.standard_normal((n_sim, n))
        crit = student_t.ppf(1 - alpha / 2, max(n - 1, 1))
        for i, nc in enumerate(noise_ceilings):
            for j, r in enumerate(repeats):
                sd = np.sqrt(2.0) * noise_unit * np.sqrt((1 - nc) / nc / r)
                y = draw + sd * z
                m = y.mean(1)
                se = y.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(n_sim, np.inf)
                with np.errstate(divide="ignore", invalid="ignore"):
                    tstat = m / se
                out[i, j, k] = float(np.mean(tstat > crit))
    return out


def images_needed(power: np.ndarray, n_images: list[int], target: float) -> np.ndarray:
    """Smallest N whose power reaches ``target`` (last axis of ``power``); NaN when none does."""
    n = np.asarray(n_images, dtype=float)
    ok = power >= target
    first = np.argmax(ok, axis=-1)
    return np.where(ok.any(-1), n[first], np.nan)


def power_analysis(instances: list[Any], config: Any, seed: int = 0) -> xr.Dataset:
    """Power curves per readout x brain family x other candidate, at the budget where the brain sides most with its own.

    Returns
    -------
    xarray.Dataset
        ``power`` (readout, brain, other, noise_ceiling, repeats, n_images); ``images_needed``
        (readout, brain, other, noise_ceiling, repeats); ``eps`` (readout, brain, other): the budget used;
        ``mean_signal`` (readout, brain, other).
    """
    pc = config.power
    insts = [i for i in instances if "controversial" in i.scores]
    readouts = list(dict.fromkeys(i.readout for i in insts))
    families = list(dict.fromkeys(i.family for i in insts))
    others = sorted({str(o) for i in insts for o in i.scores["other"].values})
    shape = (len(readouts), len(families), len(others))
    power = np.full(shape + (len(pc.noise_ceilings), len(pc.repeats), len(pc.n_images)), np.nan)
    used_eps, mean_sig = np.full(shape, np.nan), np.full(shape, np.nan)
    for r, ro in enumerate(readouts):
        for f, fam in enumerate(families):
            group = [i for i in insts if i.readout == ro and i.family == fam]
            for a, other in enumerate(others):
                rows = [i for i in group if other in i.scores["other"].values]
                if not rows:
                    continue
                eps = rows[0].scores["eps"].values
                best, best_share = None, -1.0
                for e in eps:  # the budget with the largest pooled own-share
                    v = np.concatenate([i.scores["controversial"].sel(other=other, eps=e).values for i in rows])
                    dec = np.abs(np.nan_to_num(v)) == 1
                    share = (v == 1).sum() / dec.sum() if dec.any() else 0.0
                    if share > best_share:
                        best, best_share = e, share
                sig = np.concatenate([i.scores["controversial_z"].sel(other=other, eps=best).values for i in rows])
                unit = float(np.mean([i.scores.attrs["noise_unit"] for i in rows]))
                power[r, f, a] = power_curve(sig, unit, noise_ceilings=pc.noise_ceilings, repeats=pc.repeats,
                                             n_images=pc.n_images, alpha=pc.alpha, n_sim=pc.n_sim, seed=seed)
                used_eps[r, f, a] = float(best)
                mean_sig[r, f, a] = float(np.nanmean(sig)) if np.isfinite(sig).any() else np.nan
    dims = ("readout", "brain", "other")
    full = dims + ("noise_ceiling", "repeats", "n_images")
    return xr.Dataset(
        {"power": (full, power), "images_needed": (full[:-1], images_needed(power, pc.n_images, pc.power)),
         "eps": (dims, used_eps), "mean_signal": (dims, mean_sig)},
        coords={"readout": readouts, "brain": families, "other": others, "noise_ceiling": list(pc.noise_ceilings),
                "repeats": list(pc.repeats), "n_images": list(pc.n_images)},
        attrs={"analysis": "validation_power", "target_power": float(pc.power), "alpha": float(pc.alpha),
               "n_sim": int(pc.n_sim),
               "meaning": "power to decide own vs other with a t-test on the measured change towards the own "
                          "network, N controversial images x R repeats at single-trial noise ceiling nc"},
    )
