"""Recovery accuracy, confusion matrices and controversial shares, with CIs over photos and brain seeds.

Every brain instance (a brain family = network x form, at one seed) has per-image scores of
every candidate (:func:`brainprobe.validation.criteria.brain_scores`). A bootstrap replicate
resamples the seeds of each brain family, then the photos (groups of crops) within each brain;
a statistic is recomputed on every replicate and its CI is the percentile interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

PER_IMAGE = {"predictivity": "test_group", "sensitivity": "group", "closed_loop": "group", "axes": "axes_group"}


@dataclass
class Instance:
    """One brain (family label, form, seed) x readout and its scores."""

    family: str
    form: str
    seed: int
    readout: str
    own: str
    scores: xr.Dataset


def _weights(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """n_boot x N bootstrap weights resampling groups (row 0: the data itself, all ones)."""
    from brainprobe.analysis._common import boot_weights

    w = np.asarray(boot_weights(len(groups), n_boot, seed, groups=groups if len(set(groups)) > 1 else None),
                   dtype=float)
    return np.vstack([np.ones((1, len(groups))), w[: n_boot - 1]])


def _seed_draws(instances: list[Instance], n_boot: int, seed: int) -> list[np.ndarray]:
    """Per replicate, indices into ``instances`` (row 0: all of them); seeds resampled within each family."""
    rng = np.random.default_rng(seed)
    fams: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        fams.setdefault(inst.family, []).append(i)
    draws = [np.arange(len(instances))]
    for _ in range(n_boot - 1):
        draws.append(np.concatenate([rng.choice(ix, size=len(ix), replace=True) for ix in fams.values()]))
    return draws


def _ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if not len(v):
        return np.nan, np.nan
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def picks(inst: Instance, criterion: str, n_boot: int, seed: int) -> np.ndarray:
    """Candidate index picked by ``criterion`` on each bootstrap replicate of the photos (row 0: the data)."""
    s = inst.scores
    if criterion == "controversial":
        return _controversial_picks(inst, n_boot, seed)
    score = s[criterion].values  # candidate x image
    w = _weights(s[PER_IMAGE[criterion]].values.astype(str), n_boot, seed)
    ok = np.isfinite(score)
    means = (np.where(ok, score, 0.0) @ w.T) / np.maximum(ok.astype(float) @ w.T, 1e-12)  # candidate x n_boot
    return np.argmax(np.where(np.isfinite(means), means, -np.inf), axis=0)


def _controversial_picks(inst: Instance, n_boot: int, seed: int) -> np.ndarray:
    """Own network if the brain sides with it on > 50% of decided images of every pair (budgets pooled);
    otherwise the other candidate with the lowest own-share."""
    s = inst.scores
    names = list(s["candidate"].values)
    own = names.index(inst.own)
    o = s["controversial"].values  # other x eps x image
    w = _weights(s["group"].values.astype(str), n_boot, seed)
    follow = np.nan_to_num((o == 1).astype(float)).sum(1) @ w.T  # other x n_boot
    decided = np.nan_to_num((np.abs(o) == 1).astype(float)).sum(1) @ w.T
    share = np.where(decided > 0, follow / np.maximum(decided, 1e-12), 0.5)
    worst = np.argmin(share, axis=0)
    others = [names.index(str(c)) for c in s["other"].values]
    return np.where(share.min(0) > 0.5, own, np.asarray(others)[worst])


def _member(group: str, inst: Instance) -> bool:
    if group == "all":
        return True
    if group in ("matched", "mismatched"):
        return (inst.form == "matched") == (group == "matched")
    return inst.family == group


def recovery(instances: list[Instance], criteria: list[str], *, n_boot: int = 500, seed: int = 0,
             level: float = 0.95) -> tuple[xr.Dataset, xr.Dataset]:
    """Recovery accuracy per readout x criterion x brain group, and confusion matrices.

    Brain groups: each family (``network:form``), ``matched`` and ``mismatched`` (forms pooled) and ``all``.

    Returns
    -------
    recovery : xarray.Dataset
        ``accuracy`` (readout, criterion, brain): share of brain instances whose own network the
        criterion ranks first; ``ci_low`` / ``ci_high`` over photos and brain seeds; ``n_brains``.
    confusion : xarray.Dataset
        ``share`` (readout, criterion, brain, candidate): how often each candidate is picked by
        brains of that family (over seeds and bootstrap replicates); coordinate ``own`` (brain).
    """
    readouts = sorted({i.readout for i in instances}, key=[i.readout for i in instances].index)
    families = list(dict.fromkeys(i.family for i in instances))
    candidates = list(instances[0].scores["candidate"].values)
    groups = [*families, "matched", "mismatched", "all"]
    acc = np.full((len(readouts), len(criteria), len(groups)), np.nan)
    lo, hi, nb = acc.copy(), acc.copy(), np.zeros(acc.shape, dtype=np.int64)
    conf = np.full((len(readouts), len(criteria), len(families), len(candidates)), np.nan)
    for r, ro in enumerate(readouts):
        insts = [i for i in instances if i.readout == ro]
        draws = _seed_draws(insts, n_boot, seed)
        for c, crit in enumerate(criteria):
            if any(crit not in i.scores for i in insts):
                continue
            p = np.stack([picks(i, crit, n_boot, seed + k) for k, i in enumerate(insts)])  # instance x n_boot
            own = np.asarray([candidates.index(i.own) for i in insts])
            hit = (p == own[:, None]).astype(float)
            for g, name in enumerate(groups):
                member = np.asarray([_member(name, i) for i in insts])
                if not member.any():
                    continue
                boots = np.asarray([hit[d[member[d]], b].mean() if member[d].any() else np.nan
                                    for b, d in enumerate(draws)])
                acc[r, c, g] = hit[member, 0].mean()
                lo[r, c, g], hi[r, c, g] = _ci(boots, level)
                nb[r, c, g] = int(member.sum())
            for f, fam in enumerate(families):
                rows = np.asarray([i.family == fam for i in insts])
                conf[r, c, f] = [(p[rows] == k).mean() for k in range(len(candidates))]
    rec = xr.Dataset(
        {"accuracy": (("readout", "criterion", "brain"), acc), "ci_low": (("readout", "criterion", "brain"), lo),
         "ci_high": (("readout", "criterion", "brain"), hi), "n_brains": (("readout", "criterion", "brain"), nb)},
        coords={"readout": readouts, "criterion": list(criteria), "brain": groups},
        attrs={"analysis": "validation_recovery", "n_boot": int(n_boot), "ci_level": float(level), "seed": int(seed),
               "meaning": "share of SIMULATED brains whose own network the criterion ranks first; CI over photos "
                          "and brain seeds"},
    )
    owns = [next(i.own for i in instances if i.family == fam) for fam in families]
    cm = xr.Dataset({"share": (("readout", "criterion", "brain", "candidate"), conf)},
                    coords={"readout": readouts, "criterion": list(criteria), "brain": families,
                            "candidate": candidates, "own": ("brain", owns)},
                    attrs={"analysis": "validation_confusion",
                           "meaning": "share of seeds x bootstrap replicates on which each candidate was picked"})
    return rec, cm


def controversial_recovery(instances: list[Instance], *, n_boot: int = 500, seed: int = 0,
                           level: float = 0.95) -> xr.Dataset:
    """Share of decided controversial images on which the brain sided with its own network, per pair and budget.

    Returns
    -------
    xarray.Dataset
        ``share``, ``ci_low``, ``ci_high``, ``n_controversial``, ``n_decided`` (readout, brain,
        other, eps), counts pooled over the family's seeds; ``best_share`` (readout, brain, other):
        the largest share over budgets; ``worst_pair_best_share`` (readout, brain): the smallest
        of those over the other candidates (>= 0.75 is the issue's bar); ``reaches_75`` (readout, brain).
    """
    insts = [i for i in instances if "controversial" in i.scores]
    readouts = list(dict.fromkeys(i.readout for i in insts))
    families = list(dict.fromkeys(i.family for i in insts))
    others = sorted({str(o) for i in insts for o in i.scores["other"].values})
    eps = np.unique(np.concatenate([i.scores["eps"].values for i in insts]))
    shape = (len(readouts), len(families), len(others), len(eps))
    share, lo, hi = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    n_c, n_d = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    for r, ro in enumerate(readouts):
        for f, fam in enumerate(families):
            group = [i for i in insts if i.readout == ro and i.family == fam]
            if not group:
                continue
            draws = _seed_draws(group, n_boot, seed)
            per = []
            for k, i in enumerate(group):
                w = _weights(i.scores["group"].values.astype(str), n_boot, seed + k)
                o = i.scores["controversial"]
                fo = np.zeros((len(others), len(eps), n_boot))
                de = np.zeros_like(fo)
                for oname in o["other"].values:
                    a = others.index(str(oname))
                    pos = np.searchsorted(eps, o["eps"].values)
                    v = o.sel(other=oname).values  # eps x image
                    fo[a, pos] = np.nan_to_num((v == 1).astype(float)) @ w.T
                    de[a, pos] = np.nan_to_num((np.abs(v) == 1).astype(float)) @ w.T
                    n_c[r, f, a, pos] += np.isfinite(v).sum(-1)
                    n_d[r, f, a, pos] += (np.abs(np.nan_to_num(v)) == 1).sum(-1)
                per.append((fo, de))
            fo_all = np.stack([p[0] for p in per])
            de_all = np.stack([p[1] for p in per])
            boots = np.full((len(others), len(eps), n_boot), np.nan)
            for b, d in enumerate(draws):
                num, den = fo_all[d, ..., b].sum(0), de_all[d, ..., b].sum(0)
                boots[..., b] = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)
            share[r, f] = boots[..., 0]
            for idx in np.ndindex(len(others), len(eps)):
                lo[(r, f) + idx], hi[(r, f) + idx] = _ci(boots[idx][1:], level)
    d4 = ("readout", "brain", "other", "eps")
    with np.errstate(invalid="ignore"):
        best = np.nanmax(np.where(np.isnan(share), -np.inf, share), axis=-1)
    best = np.where(np.isinf(best), np.nan, best)
    # a pair's own network is no "other": mask the brain's own network
    worst = np.nanmin(np.where(np.isnan(best), np.inf, best), axis=-1)
    worst = np.where(np.isinf(worst), np.nan, worst)
    return xr.Dataset(
        {"share": (d4, share), "ci_low": (d4, lo), "ci_high": (d4, hi), "n_controversial": (d4, n_c),
         "n_decided": (d4, n_d), "best_share": (d4[:-1], best), "worst_pair_best_share": (d4[:2], worst),
         "reaches_75": (d4[:2], (np.nan_to_num(worst) >= 0.75).astype(np.int8))},
        coords={"readout": readouts, "brain": families, "other": others, "eps": eps},
        attrs={"analysis": "validation_controversial", "n_boot": int(n_boot), "ci_level": float(level),
               "meaning": "share of decided controversial images on which the SIMULATED brain sided with its own "
                          "network (counts pooled over seeds; CI over photos and seeds)"},
    )


def recovery_frame(rec: xr.Dataset) -> Any:
    """Long table: readout, criterion, brain, accuracy, ci_low, ci_high, n_brains."""
    return rec.to_dataframe().reset_index()


def format_recovery(rec: xr.Dataset, cont: xr.Dataset | None = None) -> str:
    """The recovery table as text: one row per criterion x readout, columns matched / mismatched / all."""
    cols = [b for b in ("matched", "mismatched", "all") if int(rec["n_brains"].sel(brain=b).max()) > 0]
    head = f"{'criterion':<14}{'readout':<16}" + "".join(f"{c + ' acc [95% CI]':<28}" for c in cols)
    lines = ["recovery: share of SIMULATED brains whose own network ranks first", head, "-" * len(head)]
    for crit in rec["criterion"].values:
        for ro in rec["readout"].values:
            cells = []
            for b in cols:
                v = rec.sel(readout=ro, criterion=crit, brain=b)
                n = int(v["n_brains"])
                cells.append(f"{float(v['accuracy']):.2f} [{float(v['ci_low']):.2f}, {float(v['ci_high']):.2f}] n={n}"
                             if n else "-")
            lines.append(f"{crit:<14}{ro:<16}" + "".join(f"{c:<28}" for c in cells))
    if cont is not None and cont.sizes.get("brain", 0):
        lines += ["", "controversial probes: brain sides with its own network (worst pair, best budget; bar 0.75)"]
        for ro in cont["readout"].values:
            for fam in cont["brain"].values:
                w = float(cont["worst_pair_best_share"].sel(readout=ro, brain=fam))
                lines.append(f"  {ro:<16}{fam:<44}{w:.2f}{'  reaches 0.75' if w >= 0.75 else ''}")
    return "\n".join(lines)
