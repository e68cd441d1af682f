"""SimulatedBrain: an image-computable stand-in for visual cortex, always labelled SIMULATED.

A backbone from the zoo is cut at one layer per ROI (early / mid / late by default). Each target
reads its ROI's activation through a fixed random Gaussian spatial window (its receptive field;
wider in later ROIs) times a sparse random channel weighting, is standardised with statistics
from fixed calibration images, and passes a softplus nonlinearity. Everything is fixed by
``seed``. ``forward`` is noise-free and differentiable (it can be probed); ``measure`` adds
Gaussian trial noise scaled to give each target a chosen noise ceiling.

That default (``form="matched"``) is exactly the form of a factorised readout (spatial mask x
channel weights on one layer). Other forms give targets that no single-layer linear or
factorised readout shares, for validating criteria without building recovery in (``FORMS``):
``"two_layer"`` (each target sums a window x channel readout of its ROI layer and of a second
layer), ``"l4pool"`` (a Gaussian-weighted L4 pool, a soft maximum, of the rectified
channel-weighted map instead of a weighted mean) and ``"divnorm"`` (each target's softplus
output squared and divided by the mean squared output of its ROI: divisive normalisation
across targets).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from brainprobe.errors import DataError

# RF sd (fraction of the image side) of the first and last ROI; ROIs in between interpolate.
_RF_SIGMA_FIRST = (0.04, 0.08)
_RF_SIGMA_LAST = (0.15, 0.35)

FORMS: tuple[str, ...] = ("matched", "two_layer", "l4pool", "divnorm")
"""Generative forms of a SimulatedBrain's targets (see the module docstring)."""

_POOL_P = 4.0  # exponent of the l4pool form's spatial pool
_DIVNORM_SIGMA2 = 0.5  # semi-saturation constant of the divnorm form (squared softplus units)


def _default_rois(spec: Any) -> dict[str, str]:
    layers = list(spec.default_layers) or list(spec.layers)
    if len(layers) >= 3:
        picked = [layers[0], layers[len(layers) // 2], layers[-1]]
        return dict(zip(("sim-early", "sim-mid", "sim-late"), picked))
    names = ["sim-early", "sim-late"] if len(layers) == 2 else ["sim-mid"]
    return dict(zip(names, layers))


def _as_roi_map(rois: None | dict[str, str] | Sequence[str], spec: Any) -> dict[str, str]:
    if rois is None:
        return _default_rois(spec)
    if isinstance(rois, dict):
        items = list(rois.items())
    else:
        items = [(f"sim-roi{i}", layer) for i, layer in enumerate(rois)]
    out = {}
    for name, layer in items:
        name = str(name) if str(name).startswith("sim-") else f"sim-{name}"
        out[name] = str(layer)
    if not out:
        raise DataError("SimulatedBrain needs at least one ROI (name -> layer)")
    return out


@dataclass
class Measurement:
    """Noisy trials from :meth:`SimulatedBrain.measure`.

    Attributes
    ----------
    trials : array, N x R x T
        Single-trial responses (signal + Gaussian noise).
    signal : array, N x T
        Noise-free responses (``SimulatedBrain.forward``).
    noise_sd : array, T
        Trial-noise sd per target (response units).
    noise_ceiling : array, T
        True NC of the R-trial mean on these images: ``s / (s + noise_sd**2 / R)`` with ``s``
        the variance of ``signal`` across the images.
    """

    trials: np.ndarray
    signal: np.ndarray
    noise_sd: np.ndarray
    noise_ceiling: np.ndarray


class SimulatedBrain(nn.Module):
    """SIMULATED brain: pixels in [0, 1] (N x 3 x H x W) -> noise-free responses N x T.

    Parameters
    ----------
    backbone : str or Backbone
        Any zoo model (robustified copies included). Default ``efficientnet_lite2``.
    rois : dict ROI -> layer, or list of layers, optional
        Default: ``sim-early``, ``sim-mid``, ``sim-late`` at the first, middle and last of the
        backbone spec's ``default_layers``. Names are prefixed ``sim-`` if they are not.
    targets_per_roi : int
    seed : int
        Fixes receptive fields, channel weights and calibration images.
    channel_fraction : float
        Fraction of an ROI layer's channels each target reads (at least 1).
    calibration_resolution : int
        Side (px) of the calibration crops used to standardise each target's drive.
    n_calibration : int
        Number of calibration crops (library ``train`` photos, so stimuli are never reused).
    form : {"matched", "two_layer", "l4pool", "divnorm"}
        Generative form of the targets (module docstring). ``two_layer``: the second layer of
        an ROI is the next layer of the spec's ``layers`` list after the ROI's layer (the
        previous one for the last layer); recorded in ``targets["layer2"]``.
    """

    def __init__(
        self,
        backbone: Any = "efficientnet_lite2",
        *,
        rois: None | dict[str, str] | Sequence[str] = None,
        targets_per_roi: int = 100,
        seed: int = 0,
        channel_fraction: float = 0.05,
        calibration_resolution: int = 128,
        n_calibration: int = 48,
        device: str | torch.device | None = None,
        form: str = "matched",
    ) -> None:
        super().__init__()
        from brainprobe.zoo import load_backbone, truncate
        from brainprobe.zoo.backbone import Backbone

        if targets_per_roi < 1:
            raise DataError(f"targets_per_roi must be >= 1, got {targets_per_roi}")
        if not 0 < channel_fraction <= 1:
            raise DataError(f"channel_fraction must be in (0, 1], got {channel_fraction}")
        if form not in FORMS:
            raise DataError(f"SimulatedBrain form {form!r} is unknown; use one of {', '.join(FORMS)}")
        self.form = str(form)
        bb = backbone if isinstance(backbone, Backbone) else load_backbone(str(backbone), device=device)
        self.backbone_name: str = bb.spec.name
        self.weights_sha256: str = bb.weights_sha256
        self.seed = int(seed)
        self.roi_layers = _as_roi_map(rois, bb.spec)
        self.targets_per_roi = int(targets_per_roi)
        self.channel_fraction = float(channel_fraction)
        self.calibration_resolution = int(calibration_resolution)
        self.second_layers: dict[str, str] = {}
        if self.form == "two_layer":
            all_layers = list(bb.spec.layers)
            for roi, layer in self.roi_layers.items():
                if layer not in all_layers or len(all_layers) < 2:
                    raise DataError(f"form 'two_layer' needs ROI layer {layer!r} in the spec's layers with a neighbour")
                i = all_layers.index(layer)
                self.second_layers[roi] = all_layers[i + 1] if i + 1 < len(all_layers) else all_layers[i - 1]
        self.body = truncate(bb, list(dict.fromkeys([*self.roi_layers.values(), *self.second_layers.values()])))
        self.name = f"SIMULATED brain ({self.backbone_name})"

        gen = torch.Generator().manual_seed(self.seed)
        dev = next(bb.parameters()).device
        probe = torch.zeros(1, 3, 64, 64, device=dev)
        with torch.no_grad():
            acts = self.body(probe)
        rows = []
        n_roi = len(self.roi_layers)
        for r, (roi, layer) in enumerate(self.roi_layers.items()):
            channels = int(acts[layer].shape[1])
            t = self.targets_per_roi
            frac = r / (n_roi - 1) if n_roi > 1 else 0.5
            lo = _RF_SIGMA_FIRST[0] + frac * (_RF_SIGMA_LAST[0] - _RF_SIGMA_FIRST[0])
            hi = _RF_SIGMA_FIRST[1] + frac * (_RF_SIGMA_LAST[1] - _RF_SIGMA_FIRST[1])
            sigma = lo + (hi - lo) * torch.rand(t, generator=gen)
            center = 0.15 + 0.7 * torch.rand(t, 2, generator=gen)  # (y, x) in image fractions
            k = max(1, int(round(self.channel_fraction * channels)))
            weights = torch.zeros(t, channels)
            for i in range(t):
                idx = torch.randperm(channels, generator=gen)[:k]
                weights[i, idx] = torch.randn(k, generator=gen) / math.sqrt(k)
            self.register_buffer(f"_w_{r}", weights.to(dev))
            self.register_buffer(f"_c_{r}", center.to(dev))
            self.register_buffer(f"_s_{r}", sigma.to(dev))
            if self.form == "two_layer":
                c2 = int(acts[self.second_layers[roi]].shape[1])
                k2 = max(1, int(round(self.channel_fraction * c2)))
                w2 = torch.zeros(t, c2)
                for i in range(t):
                    idx = torch.randperm(c2, generator=gen)[:k2]
                    w2[i, idx] = torch.randn(k2, generator=gen) / math.sqrt(k2)
                self.register_buffer(f"_w2_{r}", w2.to(dev))
            for i in range(t):
                rows.append(
                    {
                        "target": f"{roi}_{i:04d}",
                        "roi": roi,
                        "layer": layer,
                        "x": float(center[i, 1]),
                        "y": float(center[i, 0]),
                        "rf_sigma": float(sigma[i]),
                        "n_channels": k,
                        "form": self.form,
                        **({"layer2": self.second_layers[roi]} if self.second_layers else {}),
                    }
                )
        self.targets = pd.DataFrame(rows)
        n_targets = len(rows)
        self.register_buffer("_mu", torch.zeros(n_targets, device=dev))
        self.register_buffer("_sd", torch.ones(n_targets, device=dev))
        self._calibrate(n_calibration)

    # --------------------------------------------------------------------------- internals
    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        """Linear readout before standardisation: N x T."""
        acts = self.body(x)
        parts = []
        for r, (roi, layer) in enumerate(self.roi_layers.items()):
            center = getattr(self, f"_c_{r}")
            sigma = getattr(self, f"_s_{r}")
            drive = self._window_drive(acts[layer], center, sigma, getattr(self, f"_w_{r}"))
            if self.form == "two_layer":
                drive = drive + self._window_drive(acts[self.second_layers[roi]], center, sigma, getattr(self, f"_w2_{r}"))
            parts.append(drive)
        return torch.cat(parts, dim=1)

    def _window_drive(self, a: torch.Tensor, center: torch.Tensor, sigma: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One layer's drive N x T: Gaussian window (T x h x w) x channel weights (T x C) on ``a`` (N x C x h x w).

        ``l4pool``: (sum_hw g_t(h, w) relu(sum_c w_tc a_c(h, w))^4)^(1/4) instead of the weighted mean.
        """
        h, w = a.shape[-2:]
        ys = (torch.arange(h, device=a.device, dtype=a.dtype) + 0.5) / h
        xs = (torch.arange(w, device=a.device, dtype=a.dtype) + 0.5) / w
        gy = torch.exp(-0.5 * ((ys[None, :] - center[:, :1]) / sigma[:, None]) ** 2)
        gx = torch.exp(-0.5 * ((xs[None, :] - center[:, 1:]) / sigma[:, None]) ** 2)
        gy = gy / gy.sum(dim=1, keepdim=True)
        gx = gx / gx.sum(dim=1, keepdim=True)
        if self.form == "l4pool":
            maps = torch.einsum("nchw,tc->nthw", a, weights).clamp_min(0)
            pooled = torch.einsum("nthw,th,tw->nt", maps.pow(_POOL_P), gy, gx)
            return (pooled + 1e-30).pow(1.0 / _POOL_P)  # offset (1e-30)^(1/4) ~ 2e-8 keeps the gradient finite at 0
        pooled = torch.einsum("nchw,th,tw->nct", a, gy, gx)
        return torch.einsum("nct,tc->nt", pooled, weights)

    def _calibrate(self, n_calibration: int) -> None:
        from brainprobe._images import to_float_tensor
        from brainprobe.data.stimuli import sample_stimuli

        imgs, _ = sample_stimuli(n_calibration, self.calibration_resolution, split="train", seed=self.seed)
        dev = self._mu.device
        with torch.no_grad():
            drive = torch.cat(
                [self._drive(to_float_tensor(imgs[i : i + 16], device=dev)) for i in range(0, len(imgs), 16)]
            )
        self._mu.copy_(drive.mean(dim=0))
        self._sd.copy_(drive.std(dim=0).clamp_min(1e-6))

    # --------------------------------------------------------------------------- public
    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def rois(self) -> list[str]:
        return list(self.roi_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float N x 3 x H x W in [0, 1] -> noise-free responses N x T (arbitrary units, >= 0)."""
        z = (self._drive(x) - self._mu) / self._sd
        out = nn.functional.softplus(z)
        if self.form == "divnorm":  # each target's energy divided by its ROI's mean energy
            energy = out.pow(2)
            parts = []
            for r in range(len(self.roi_layers)):
                sl = slice(r * self.targets_per_roi, (r + 1) * self.targets_per_roi)
                e = energy[:, sl]
                parts.append(e / (_DIVNORM_SIGMA2 + e.mean(dim=1, keepdim=True)))
            out = torch.cat(parts, dim=1)
        return out

    def respond(self, images: Any, *, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """Noise-free responses (float64 N x T) to uint8 N x H x W x 3 images or a float tensor."""
        from brainprobe._images import to_float_tensor
        from brainprobe._progress import progress as bar

        dev = self._mu.device
        n = len(images)
        starts = range(0, n, batch_size)
        if progress:
            starts = bar(starts, total=math.ceil(n / batch_size), desc=f"{self.name} responses")
        out = []
        with torch.no_grad():
            for i in starts:
                out.append(self(to_float_tensor(images[i : i + batch_size], device=dev)).double().cpu().numpy())
        return np.concatenate(out, axis=0)

    def measure(
        self,
        images: Any,
        repeats: int = 3,
        seed: int = 0,
        *,
        noise_ceiling: float | tuple[float, float] | np.ndarray = (0.1, 0.8),
        batch_size: int = 32,
    ) -> Measurement:
        """Simulated fMRI trials: noise-free responses plus Gaussian trial noise.

        Parameters
        ----------
        images : uint8 array N x H x W x 3 or float tensor N x 3 x H x W
            At least 2 images (the noise is scaled to the signal variance across them).
        repeats : int
            Trials per image R.
        seed : int
            Seeds the noise (and the per-target ceilings when a range is given).
        noise_ceiling : float, (low, high) tuple/list, or numpy array T
            True NC of the R-trial mean: one value for every target, drawn uniformly per target
            from a (low, high) range, or given per target as an array. Values in (0, 1].

        Returns
        -------
        Measurement
        """
        if repeats < 1:
            raise DataError(f"repeats must be >= 1, got {repeats}")
        if len(images) < 2:
            raise DataError("measure needs at least 2 images (noise is scaled to the signal variance across images)")
        t = self.n_targets
        rng = np.random.default_rng(seed)
        if isinstance(noise_ceiling, (tuple, list)):
            if len(noise_ceiling) != 2:
                raise DataError(
                    f"noise_ceiling range must be (low, high), got {noise_ceiling}; pass an array for per-target values"
                )
            lo, hi = (float(v) for v in noise_ceiling)
            if not 0 < lo <= hi <= 1:
                raise DataError(f"noise_ceiling range must satisfy 0 < low <= high <= 1, got {noise_ceiling}")
            nc = rng.uniform(lo, hi, size=t)
        else:
            nc = np.broadcast_to(np.asarray(noise_ceiling, dtype=np.float64), (t,)).copy()
            if np.any((nc <= 0) | (nc > 1)):
                raise DataError("noise_ceiling values must lie in (0, 1]")
        from brainprobe.data.noise_ceiling import noise_sd_for_ceiling

        signal = self.respond(images, batch_size=batch_size)
        n = signal.shape[0]
        signal_var = signal.var(axis=0)
        noise_sd = noise_sd_for_ceiling(signal_var, nc, repeats)
        trials = signal[:, None, :] + rng.standard_normal((n, repeats, t)) * noise_sd
        true_nc = np.where(signal_var > 0, nc, np.nan)
        return Measurement(trials=trials, signal=signal, noise_sd=noise_sd, noise_ceiling=true_nc)

    def scale_from(self, dataset: Any) -> SimulatedBrain:
        """Restore the scale ``simulate_dataset`` gave this brain (``response_sd``, ``mean_response_sd``).

        Reads ``dataset.targets["response_sd"]`` and ``dataset.attrs["brain_mean_response_sd"]``;
        DataError when the dataset does not carry them or has other targets.
        """
        targets = getattr(dataset, "targets", None)
        means = dict(getattr(dataset, "attrs", {}) or {}).get("brain_mean_response_sd")
        if targets is None or "response_sd" not in targets or not means:
            raise DataError(
                "dataset has no brain response scale (targets 'response_sd'); re-simulate it with this brainprobe version"
            )
        if list(targets["target"].astype(str)) != list(self.targets["target"].astype(str)):
            raise DataError("dataset targets differ from this brain's; give the brain the dataset was simulated with")
        dev = self._mu.device
        sd = torch.as_tensor(np.asarray(targets["response_sd"], dtype=np.float64), dtype=torch.float32, device=dev)
        self.register_buffer("response_sd", sd)
        self.mean_response_sd = {str(k): float(v) for k, v in means.items()}
        return self

    def provenance(self) -> dict[str, Any]:
        """What defines this brain (for dataset attrs and run manifests)."""
        return {
            "brain": self.backbone_name,
            "brain_weights_sha256": self.weights_sha256,
            "brain_seed": self.seed,
            "brain_rois": json.dumps(self.roi_layers),
            "targets_per_roi": self.targets_per_roi,
            "channel_fraction": self.channel_fraction,
            "calibration_resolution": self.calibration_resolution,
            "brain_form": self.form,
        }

    def extra_repr(self) -> str:
        return (
            f"SIMULATED, backbone={self.backbone_name}, form={self.form}, rois={self.roi_layers}, "
            f"targets={self.n_targets}, seed={self.seed}"
        )

    def __str__(self) -> str:
        return (
            f"SimulatedBrain(SIMULATED brain, backbone={self.backbone_name}, form={self.form}, "
            f"rois={', '.join(f'{k}<-{v}' for k, v in self.roi_layers.items())}, "
            f"targets={self.n_targets}, seed={self.seed})"
        )


def simulate_dataset(
    brain: SimulatedBrain,
    stimuli: np.ndarray,
    repeats: int = 3,
    seed: int = 0,
    *,
    noise_ceiling: float | tuple[float, float] | np.ndarray = (0.1, 0.8),
    test_fraction: float = 0.2,
    image_ids: Sequence[str] | None = None,
    stimulus_info: dict[str, Any] | None = None,
    batch_size: int = 32,
    groups: Sequence[str] | np.ndarray | None = None,
):
    """Render a SIMULATED Dataset: stimuli shown to ``brain`` through :meth:`SimulatedBrain.measure`.

    The dataset's ``noise_ceiling`` is *estimated* from the trials (NSD's NCSNR, as for real
    data); the true ceilings are in ``targets["true_noise_ceiling"]``.

    Parameters
    ----------
    brain : SimulatedBrain
    stimuli : uint8 array, N x H x W x 3
    repeats, seed, noise_ceiling
        As in :meth:`SimulatedBrain.measure`.
    test_fraction : float
        Fraction of the groups (photos) in the test split (seeded by ``seed``); every group
        lies on one side.
    image_ids : sequence of str, optional
    stimulus_info : dict, optional
        JSON-serialisable description of how the stimuli were made (stored in attrs).
    groups : sequence of N str, optional
        The photo each stimulus was cut from (``sample_stimuli``'s ``provenance["photo"]``);
        splits and bootstraps keep crops of one photo together. Default: one group per image.

    Side effect: ``brain`` gets its scale (``set_response_scale``): ``response_sd``, the SD of
    its noise-free responses on the training images (also in ``targets["response_sd"]``), and
    ``mean_response_sd`` per ROI (also in ``attrs["brain_mean_response_sd"]``); analyses read
    the brain's changes in these units. ``scale_from`` restores it on a rebuilt brain.

    Returns
    -------
    Dataset
        attrs: ``source="simulated"``, ``simulated=True``, ``brain`` (model name), ``seed``,
        the brain's provenance and ``stimuli``.
    """
    from brainprobe.data._images import as_rgb_uint8
    from brainprobe.data.dataset import Dataset, default_split

    if not isinstance(brain, SimulatedBrain):
        raise DataError(f"simulate_dataset needs a SimulatedBrain, got {type(brain).__name__}")
    stimuli = as_rgb_uint8(stimuli, where="simulate_dataset stimuli")
    m = brain.measure(stimuli, repeats, seed, noise_ceiling=noise_ceiling, batch_size=batch_size)
    split = default_split(len(stimuli), test_fraction, seed, groups=groups)
    from brainprobe.encoding.encoder import set_response_scale

    # the brain's scale (like an Encoder's): SD of its noise-free responses on the training images
    set_response_scale(brain, m.signal[split == "train"])
    targets = brain.targets.copy()
    targets["true_noise_ceiling"] = m.noise_ceiling
    targets["noise_sd"] = m.noise_sd
    targets["response_sd"] = brain.response_sd.double().cpu().numpy()
    if isinstance(noise_ceiling, (tuple, list)):
        nc_desc: Any = [float(v) for v in noise_ceiling]
    elif np.ndim(noise_ceiling) == 0:
        nc_desc = float(noise_ceiling)  # type: ignore[arg-type]
    else:
        nc_desc = "per-target"
    attrs: dict[str, Any] = {
        "source": "simulated",
        "subject": f"sim-{brain.backbone_name}",
        "simulated": True,
        **brain.provenance(),
        "seed": int(seed),
        "repeats": int(repeats),
        "noise_ceiling_target": nc_desc,
        "test_fraction": float(test_fraction),
        "brain_mean_response_sd": dict(brain.mean_response_sd),
        "split_rule": f"random {test_fraction:.0%} of {'groups (photos)' if groups is not None else 'images'} "
        f"test, seed {seed}",
        "stimuli": stimulus_info or {},
    }
    return Dataset(
        stimuli,
        m.trials.mean(axis=1),
        targets,
        trials=m.trials,
        image_ids=image_ids,
        split=split,
        attrs=attrs,
        groups=groups,
    )
