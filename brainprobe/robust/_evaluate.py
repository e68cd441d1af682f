"""Quality report of a robustified model against its teacher, on held-out images only.

Held-out images: foolbox's 20 ImageNet photos (224 px) and crops of the stimulus library's
*evaluation* photos (never used by robustify, which trains on the library's training photos).

Measures, each with a bootstrap 95% CI over images:

- clean top-1 agreement of student and teacher (photos at 224 px, crops at the model resolution);
- clean readout R^2: a fixed random linear readout of the distilled layer (the same weights for
  both models, standardised with the teacher's clean statistics) predicts the teacher's readout
  from the student's features; below 0.7 the student is no longer a faithful copy (a warning);
- sensitivity ratio: mean ||change|| of the teacher's readout under PGD (l2 / linf, several
  budgets, objective "shift" from the probe engine) divided by the student's;
- the same ratio under random noise of the same norm (a robust model should mostly differ in
  its worst case, not under noise);
- two-way transfer: the teacher's probes applied to the student and the student's to the
  teacher, as a fraction of the target model's change under its own probes.

and a geometry diagnostic (is the copy *reshaped*, or only damped uniformly?), teacher vs copy:

- ``adv_random_ratio_{teacher,student}``: a model's change under its own PGD probe over its
  change under random noise of the same norm; a damped copy keeps the teacher's value, a
  reshaped (robust) one has a far lower value (``adv_random_ratio_s/t`` < 0.5 is the target);
- ``low_freq_share_{teacher,student}``: the share of the probes' energy below 0.1 cycles/pixel
  (:func:`brainprobe.analysis.low_frequency_share`; white noise gives about 0.031); robust
  models' probes are smoother (``low_freq_share_s/t`` >= 2 is the target);
- clean agreement: ``top1_agreement`` above (``readout_r2`` for a trunk without classifier).

:meth:`RobustifyReport.geometry` collects them; ``to_dict()`` / the JSON carry them as
``"geometry"``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

R2_WARN = 0.7
L2_BUDGETS = (0.25, 0.5, 1.0)
LOW_FREQ_CUTOFF = 0.1
"""Cycles per pixel below which a probe's energy counts as low-frequency (Nyquist = 0.5)."""
GEOMETRY_METRICS = (
    "adv_random_ratio_teacher", "adv_random_ratio_student", "adv_random_ratio_s/t",
    "low_freq_share_teacher", "low_freq_share_student", "low_freq_share_s/t",
)
LINF_BUDGETS = (0.5 / 255, 1 / 255, 2 / 255)


def foolbox_photos(resolution: int = 224) -> tuple[torch.Tensor, np.ndarray]:
    """foolbox's 20 ImageNet photos as float N x 3 x R x R in [0, 1] and their ImageNet labels (N,)."""
    from importlib.resources import files

    from PIL import Image

    folder = files("foolbox") / "data"
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith("imagenet_") and p.name.endswith(".jpg"))
    images, labels = [], []
    for fname in names:
        with Image.open(str(folder / fname)) as im:
            im = im.convert("RGB")
            if im.size != (resolution, resolution):
                im = im.resize((resolution, resolution), Image.BICUBIC)
            images.append(np.asarray(im, dtype=np.uint8))
        labels.append(int(fname.rsplit("_", 1)[1].split(".")[0]))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return x, np.asarray(labels)


class RandomReadout(nn.Module):
    """A fixed random linear readout of one layer: pixels -> N x T standardised responses.

    Parameters
    ----------
    backbone
        A Backbone; the readout sees ``truncate(backbone, layer)`` flattened.
    layer
        Module path inside ``backbone.net``.
    weight
        F x T readout weights; ``mean``, ``std`` (T,) standardise the responses.
    """

    def __init__(self, backbone: nn.Module, layer: str, weight: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        from brainprobe.zoo import truncate

        self.trunk = truncate(backbone, layer)
        self.register_buffer("weight", weight)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.trunk(x)
        if isinstance(f, dict):
            f = next(iter(f.values()))
        return (f.flatten(1) @ self.weight - self.mean) / self.std


@torch.no_grad()
def _batched(fn: Any, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def bootstrap_ci(stat: Any, *arrays: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(value, 2.5 %, 97.5 %) of ``stat(*arrays)`` with images (axis 0) resampled together."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    value = float(stat(*arrays))
    draws = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        draws[b] = stat(*(a[idx] for a in arrays))
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return value, float(lo), float(hi)


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a) / max(np.mean(b), 1e-12))


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    return float(1 - ((pred - true) ** 2).sum() / max(((true - true.mean(0)) ** 2).sum(), 1e-12))


def random_noise(x: torch.Tensor, norm: str, eps: float, seed: int) -> torch.Tensor:
    """Random perturbation of norm ``eps`` (Gaussian direction for l2, random signs for linf), in the box."""
    g = torch.Generator().manual_seed(seed)
    if norm == "l2":
        d = torch.randn(x.shape, generator=g)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps
    else:
        d = (torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1) * eps
    return (x + d).clamp(0, 1) - x


@dataclass
class RobustifyReport:
    """Rows ``metric, images, norm, eps, value, ci_low, ci_high, n`` plus the model names and warnings."""

    name: str
    source_model: str
    layer: str
    resolution: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, metric: str, images: str, value: tuple[float, float, float], n: int, norm: str = "", eps: float | None = None) -> None:
        v, lo, hi = value
        self.rows.append({"metric": metric, "images": images, "norm": norm, "eps": eps, "value": v,
                          "ci_low": lo, "ci_high": hi, "n": n})

    def get(self, metric: str, norm: str = "", eps: float | None = None, images: str | None = None) -> dict[str, Any]:
        """The row of ``metric`` (at ``norm`` / ``eps`` / ``images`` when given)."""
        for r in self.rows:
            if r["metric"] == metric and r["norm"] == norm and (eps is None or abs((r["eps"] or 0) - eps) < 1e-9) \
                    and (images is None or r["images"] == images):
                return r
        raise KeyError((metric, norm, eps, images))

    def geometry(self) -> dict[str, Any]:
        """The geometry diagnostic: clean agreement, and per norm and budget the adversarial-to-random
        ratio and the probes' low-frequency share, teacher vs student (value and 95% CI each).

        Returns
        -------
        dict
            ``{"clean_agreement": {metric, images, value, ci_low, ci_high, n},
            "<norm> <eps>": {"adv_random_ratio_teacher": {...}, "adv_random_ratio_student": {...},
            "adv_random_ratio_s/t": {...}, "low_freq_share_teacher": ..., "low_freq_share_student": ...,
            "low_freq_share_s/t": ...}}``; eps of linf in /255 in the key (``"linf 1/255"``).
        """
        keys = ("value", "ci_low", "ci_high", "n")
        out: dict[str, Any] = {}
        clean = [r for r in self.rows if r["metric"] == "top1_agreement" and r["images"].startswith("crops@")]
        clean = clean or [r for r in self.rows if r["metric"] == "readout_r2"]
        if clean:
            out["clean_agreement"] = {"metric": clean[0]["metric"], "images": clean[0]["images"],
                                      **{k: clean[0][k] for k in keys}}
        for r in self.rows:
            if r["metric"] in GEOMETRY_METRICS:
                shown = f"{r['eps'] * 255:g}/255" if r["norm"] == "linf" else f"{r['eps']:g}"
                out.setdefault(f"{r['norm']} {shown}", {})[r["metric"]] = {k: r[k] for k in keys}
        return out

    def to_frame(self):  # noqa: ANN201 - pandas imported lazily
        import pandas as pd

        return pd.DataFrame(self.rows)

    def to_text(self) -> str:
        lines = [
            f"robustify quality report: {self.name} (student) vs {self.source_model} (teacher)",
            f"held-out images only; readout of layer {self.layer} at {self.resolution} px; 95% bootstrap CIs",
        ]
        for r in self.rows:
            eps = ""
            if r["eps"] is not None:
                eps = f" eps={r['eps'] * 255:g}/255" if r["norm"] == "linf" else f" eps={r['eps']:g}"
            lines.append(
                f"  {r['metric']:<28s} {r['images']:<14s} {r['norm']:<4s}{eps:<12s} "
                f"{r['value']:8.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]  n={r['n']}"
            )
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source_model": self.source_model, "layer": self.layer,
                "resolution": self.resolution, "rows": self.rows, "geometry": self.geometry(),
                "warnings": self.warnings, "settings": self.settings}

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _shift_probe(model: nn.Module, x: torch.Tensor, norm: str, eps: Sequence[float], steps: int, seed: int) -> torch.Tensor:
    """Deltas (E x N x 3 x H x W) from the probe engine's ``shift`` objective (whole pattern moves)."""
    from brainprobe.probes import Shift, probe

    # the readouts are already standardised with the teacher's statistics, the same for both models
    res = probe(model, x, norm=norm, eps=list(eps), objective=Shift(normalize=False), steps=steps, seed=seed,
                checks=False)
    return res.delta


def response_change(model: nn.Module, x: torch.Tensor, clean: torch.Tensor, delta: torch.Tensor) -> np.ndarray:
    """Per-image size of the change of ``model``'s N x T output: ``||y(x + delta) - y(x)|| / sqrt(T)`` (N,)."""
    out = _batched(model, x + delta)
    return ((out - clean).norm(dim=1) / clean.shape[1] ** 0.5).cpu().numpy()


def probe_geometry(
    model: nn.Module,
    x: torch.Tensor,
    norm: str,
    budgets: Sequence[float],
    *,
    steps: int = 10,
    seed: int = 0,
    noise_seed: int = 7,
    cutoff: float = LOW_FREQ_CUTOFF,
) -> list[dict[str, Any]]:
    """Worst case vs random: per-image sensitivity of ``model`` to its own PGD probe and to noise.

    Parameters
    ----------
    model
        Maps images N x 3 x H x W in [0, 1] to responses N x T (compared unscaled).
    x
        Images N x 3 x H x W in [0, 1].
    norm, budgets
        ``"l2"`` or ``"linf"``; budgets in [0, 1] pixel units.
    steps, seed
        PGD steps and seed of the probe engine's ``shift`` probe (whole pattern moves).
    noise_seed
        Seed of the random perturbations (:func:`random_noise`: Gaussian direction for l2,
        random signs for linf, exactly the budget's norm before the [0, 1] clip).
    cutoff
        Low-frequency cutoff, cycles per pixel.

    Returns
    -------
    list of dict, one per budget
        ``"delta"`` (N x 3 x H x W probe), ``"pgd"`` and ``"random"`` (N,) response changes
        (:func:`response_change`), ``"low_freq_share"`` (N,) of the probe's energy below ``cutoff``.
        ``mean(pgd) / mean(random)`` is the adversarial-to-random ratio: for a linear model
        ``y = W x`` with rank-1 ``W = u v^T`` it is ``sqrt(pi D / 2)`` in l2 (D pixels x channels)
        and ``||v||_1 / (||v||_2 sqrt(2 / pi))`` in linf, in expectation over the noise.
    """
    from brainprobe.analysis import low_frequency_share

    clean = _batched(model, x)
    deltas = _shift_probe(model, x, norm, budgets, steps, seed)
    out = []
    for e, eps in enumerate(budgets):
        d = deltas[e].to(x.device)
        noise = random_noise(x.cpu(), norm, eps, noise_seed).to(x.device)
        out.append({"delta": d, "pgd": response_change(model, x, clean, d),
                    "random": response_change(model, x, clean, noise),
                    "low_freq_share": low_frequency_share(d.cpu(), cutoff)})
    return out


def _ratio_of_ratios(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    return _ratio(a, b) / max(_ratio(c, d), 1e-12)


def _mean_ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.nanmean(a) / max(np.nanmean(b), 1e-12))


def evaluate_robustified(
    name: str,
    *,
    resolution: int | None = None,
    n_crops: int = 200,
    crops: np.ndarray | None = None,
    l2_budgets: Sequence[float] = L2_BUDGETS,
    linf_budgets: Sequence[float] = LINF_BUDGETS,
    pgd_steps: int = 10,
    n_targets: int = 64,
    n_boot: int = 2000,
    seed: int = 0,
    device: str | torch.device | None = None,
    layer: str | None = None,
) -> RobustifyReport:
    """Compare robustified model ``name`` with its teacher on held-out images.

    Parameters
    ----------
    name
        A robustified zoo model (``<source>_robust_<norm>_eps<e>``).
    resolution
        Crop size for crops, readout and probes, px (default: the recipe's training resolution).
    n_crops, crops
        Number of crops of the library's evaluation photos (>= 200 for the report), or the crops
        themselves (uint8 N x H x W x 3) to use instead.
    l2_budgets, linf_budgets
        PGD / noise budgets ([0, 1] pixel units).
    pgd_steps
        Steps of the probe engine's PGD.
    n_targets
        Outputs of the fixed random readout.
    n_boot, seed
        Bootstrap resamples; seed of the readout weights, crops, noise and probes.
    device
        Torch device (default CPU).
    layer
        Layer read out (module path inside ``.net``); default the last distilled layer of the
        recipe. A later layer shows how far the robustness carries beyond the distilled one.

    Returns
    -------
    RobustifyReport
        Also warns (``warnings.warn``) when the clean readout R^2 < 0.7.
    """
    from brainprobe._images import to_float_tensor
    from brainprobe.errors import ConfigError, ModelError
    from brainprobe.zoo import get_spec, load_backbone
    from brainprobe.zoo.robust_registry import read_recipe

    spec = get_spec(name)
    if spec.training.kind != "robustified":
        raise ModelError(f"--evaluate: '{name}' is not a robustified model; list them with `brainprobe models`")
    recipe = read_recipe(spec)
    resolution = int(resolution or recipe["resolution"])
    device = torch.device(device or "cpu")
    teacher = load_backbone(recipe["source_model"], device=device)
    student = load_backbone(name, device=device)
    if teacher.weights_sha256 != recipe["source_weights_sha256"]:
        warnings.warn(f"robustify quality: teacher weights of {recipe['source_model']} differ from those "
                      f"the recipe of {name} was made from", stacklevel=2)
    if layer is None:
        layer = recipe["layers"][-1]
    elif layer not in dict(teacher.net.named_modules()):
        raise ModelError(f"--eval-layer: {recipe['source_model']} has no layer {layer!r}; "
                         f"list them with `brainprobe zoo layers {recipe['source_model']}`")

    if crops is None:
        if n_crops < 1:
            raise ConfigError(f"--n-crops must be >= 1, got {n_crops}")
        from brainprobe.data import sample_stimuli

        crops, _ = sample_stimuli(n_crops, resolution, split="eval", seed=seed)
    xc = to_float_tensor(crops).to(device)
    if xc.shape[-1] != resolution:
        xc = torch.nn.functional.interpolate(xc, size=(resolution, resolution), mode="bilinear",
                                             antialias=True, align_corners=False)
    xp, labels = foolbox_photos(224)
    xp = xp.to(device)
    report = RobustifyReport(name=name, source_model=recipe["source_model"], layer=layer, resolution=resolution,
                             settings={"n_crops": len(xc), "pgd_steps": pgd_steps, "n_targets": n_targets,
                                       "seed": seed, "n_boot": n_boot, "recipe_sha256": recipe["sha256"]})
    boot = {"n_boot": n_boot, "seed": seed}

    # clean top-1 agreement (and ImageNet accuracy on the labelled photos)
    if spec.has_classifier:
        for tag, x in (("photos@224", xp), (f"crops@{resolution}", xc)):
            agree = (_batched(teacher, x).argmax(1) == _batched(student, x).argmax(1)).cpu().numpy().astype(float)
            report.add("top1_agreement", tag, bootstrap_ci(np.mean, agree, **boot), len(agree))
        for who, model in (("teacher", teacher), ("student", student)):
            correct = (_batched(model, xp).argmax(1).cpu().numpy() == labels).astype(float)
            report.add(f"top1_accuracy_{who}", "photos@224", bootstrap_ci(np.mean, correct, **boot), len(correct))

    # fixed random readout of the distilled layer, standardised on the teacher's clean crops
    from brainprobe.zoo import truncate

    with torch.no_grad():
        f_t = truncate(teacher, layer)(xc[:2])
        f_t = next(iter(f_t.values())) if isinstance(f_t, dict) else f_t
    n_feat = f_t[0].numel()
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(n_feat, n_targets, generator=g) / n_feat**0.5).to(device)
    zeros, ones = torch.zeros(n_targets, device=device), torch.ones(n_targets, device=device)
    raw = _batched(RandomReadout(teacher, layer, weight, zeros, ones), xc)
    mean, std = raw.mean(0), raw.std(0).clamp_min(1e-6)
    enc = {"teacher": RandomReadout(teacher, layer, weight, mean, std).eval(),
           "student": RandomReadout(student, layer, weight, mean, std).eval()}
    clean = {k: _batched(m, xc) for k, m in enc.items()}
    rt, rs = clean["teacher"].cpu().numpy(), clean["student"].cpu().numpy()
    r2 = bootstrap_ci(_r2, rs, rt, **boot)
    report.add("readout_r2", f"crops@{resolution}", r2, len(rt))
    report.add("readout_sd_ratio_s/t", f"crops@{resolution}",
               bootstrap_ci(lambda a, b: float(a.std(0).mean() / b.std(0).mean()), rs, rt, **boot), len(rt))
    if r2[0] < R2_WARN:
        msg = (f"clean readout R^2 of {name} at {layer} is {r2[0]:.2f} < {R2_WARN}: the robustified copy is no longer "
               "faithful to its teacher on clean images; use a smaller eps, a larger clean_weight or an earlier layer")
        report.warnings.append(msg)
        warnings.warn(f"robustify quality check: {msg}", stacklevel=2)

    # sensitivity under PGD, random noise, two-way transfer, and the geometry diagnostic
    def change(model_key: str, delta: torch.Tensor) -> np.ndarray:
        return response_change(enc[model_key], xc, clean[model_key], delta)

    img = f"crops@{resolution}"
    for norm, budgets in (("l2", l2_budgets), ("linf", linf_budgets)):
        if not budgets:
            continue
        geo = {k: probe_geometry(m, xc, norm, budgets, steps=pgd_steps, seed=seed, noise_seed=seed + 7)
               for k, m in enc.items()}
        for e, eps in enumerate(budgets):
            gt, gs = geo["teacher"][e], geo["student"][e]
            d_t, d_s = gt["delta"], gs["delta"]
            own_t, own_s = gt["pgd"], gs["pgd"]
            n = len(own_t)
            report.add("sensitivity_teacher", img, bootstrap_ci(np.mean, own_t, **boot), n, norm, eps)
            report.add("sensitivity_student", img, bootstrap_ci(np.mean, own_s, **boot), n, norm, eps)
            report.add("sensitivity_ratio_pgd", img, bootstrap_ci(_ratio, own_t, own_s, **boot), n, norm, eps)
            report.add("sensitivity_ratio_noise", img, bootstrap_ci(_ratio, gt["random"], gs["random"], **boot),
                       n, norm, eps)
            report.add("transfer_teacher_to_student", img, bootstrap_ci(_ratio, change("student", d_t), own_s, **boot),
                       n, norm, eps)
            report.add("transfer_student_to_teacher", img, bootstrap_ci(_ratio, change("teacher", d_s), own_t, **boot),
                       n, norm, eps)
            report.add("adv_random_ratio_teacher", img, bootstrap_ci(_ratio, own_t, gt["random"], **boot), n, norm, eps)
            report.add("adv_random_ratio_student", img, bootstrap_ci(_ratio, own_s, gs["random"], **boot), n, norm, eps)
            report.add("adv_random_ratio_s/t", img,
                       bootstrap_ci(_ratio_of_ratios, own_s, gs["random"], own_t, gt["random"], **boot), n, norm, eps)
            lt, ls = gt["low_freq_share"], gs["low_freq_share"]
            report.add("low_freq_share_teacher", img, bootstrap_ci(np.nanmean, lt, **boot), n, norm, eps)
            report.add("low_freq_share_student", img, bootstrap_ci(np.nanmean, ls, **boot), n, norm, eps)
            report.add("low_freq_share_s/t", img, bootstrap_ci(_mean_ratio, ls, lt, **boot), n, norm, eps)
    from brainprobe.analysis import white_noise_share

    report.settings["low_freq_cutoff"] = LOW_FREQ_CUTOFF
    report.settings["low_freq_share_white_noise"] = white_noise_share(resolution, resolution, LOW_FREQ_CUTOFF)
    return report
