"""Representational similarity analysis (RSA) on rsatoolbox, and linear CKA.

RDMs, comparators (Pearson ``corr``, Kendall ``tau-a``, ``spearman``, whitened ``corr_cov`` /
``cosine_cov``), noise ceilings and bootstraps are rsatoolbox's; this module only wires them to
brainprobe's models and benchmarks. Model RDMs use correlation distance (1 - Pearson r between
the N images' feature vectors), as the brain RDMs of the 92-image set do. Linear CKA (Kornblith et
al. 2019) and its debiased form (the unbiased HSIC of Song et al. 2012 / Székely & Rizzo 2014, as
used by Nguyen et al. 2021) are written here because rsatoolbox does not have them.
"""

from __future__ import annotations

import contextlib
import io
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from brainprobe.errors import ConfigError, DataError

METHODS = ("corr", "tau-a", "spearman", "corr_cov", "cosine_cov", "cosine", "rho-a")
"""rsatoolbox comparators accepted by :func:`compare_rdms` and :func:`rsa_benchmark`."""


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"RSA method {method!r} is unknown; choose from {', '.join(METHODS)}")
    return method


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """rsatoolbox's bootstraps draw from numpy's global RNG: seed it, and restore its state after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# ------------------------------------------------------------------------------------- RDMs


def features_rdm(features: np.ndarray | Sequence[np.ndarray], *, image_ids: Sequence[str] | None = None,
                 descriptors: Mapping[str, Sequence[Any]] | None = None) -> Any:
    """Correlation-distance RDM(s) of feature matrices (rsatoolbox ``calc_rdm``, method ``correlation``).

    Parameters
    ----------
    features
        One N x F array (N images, F features) or a sequence of them (one RDM each).
    image_ids
        N stimulus ids (pattern descriptor ``image``); default ``0..N-1``.
    descriptors
        rdm_descriptors, one value per RDM (e.g. ``{"model": [...], "layer": [...]}``).

    Returns
    -------
    rsatoolbox.rdm.RDMs
        Dissimilarity 1 - Pearson r, N(N-1)/2 entries per RDM.
    """
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, concat

    feats = [features] if isinstance(features, np.ndarray) else list(features)
    if not feats:
        raise DataError("features_rdm: no feature matrices given; pass at least one N x F array")
    n = feats[0].shape[0]
    ids = list(image_ids) if image_ids is not None else [str(i) for i in range(n)]
    rdms = []
    for k, f in enumerate(feats):
        f = np.asarray(f, dtype=np.float64).reshape(f.shape[0], -1)
        if f.shape[0] != n:
            raise DataError(f"features_rdm: matrix {k} has {f.shape[0]} rows, the first has {n}; give the same images")
        if np.any(f.std(axis=1) == 0):
            raise DataError(f"features_rdm: matrix {k} has a constant row; correlation distance is undefined there")
        # no descriptor: rsatoolbox would average and *sort* patterns by it, reordering the images
        rdm = calc_rdm(Dataset(f), method="correlation")
        rdm.pattern_descriptors = {"image": list(ids), "index": list(range(n))}
        for key, values in (descriptors or {}).items():
            rdm.rdm_descriptors[key] = [values[k]]
        rdms.append(rdm)
    out = concat(rdms) if len(rdms) > 1 else rdms[0]
    out.dissimilarity_measure = "1 - Pearson r"
    return out


def _as_rdms(rdm: Any) -> Any:
    from rsatoolbox.rdm import RDMs

    if isinstance(rdm, RDMs):
        return rdm
    arr = np.asarray(rdm, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and np.allclose(np.diag(arr), 0):
        i, j = np.triu_indices(arr.shape[0], k=1)
        arr = arr[i, j][None]
    return RDMs(np.atleast_2d(arr))


def compare_rdms(a: Any, b: Any, method: str = "corr") -> np.ndarray:
    """Similarity of every RDM in ``a`` with every RDM in ``b`` (rsatoolbox ``compare``).

    Parameters
    ----------
    a, b
        rsatoolbox ``RDMs``, an N x N matrix, or squareform vector(s) (R x N(N-1)/2).
    method
        One of :data:`METHODS` (``corr`` Pearson, ``tau-a`` Kendall tau-a, ``spearman``,
        ``corr_cov`` whitened correlation, ``cosine_cov`` whitened cosine).

    Returns
    -------
    np.ndarray, n_rdm(a) x n_rdm(b)
    """
    from rsatoolbox.rdm import compare

    return np.asarray(compare(_as_rdms(a), _as_rdms(b), method=_check_method(method)), dtype=np.float64)


def noise_ceiling(rdms: Any, method: str = "corr", rdm_descriptor: str = "subject") -> tuple[float, float]:
    """Lower and upper noise ceiling across subjects (rsatoolbox ``boot_noise_ceiling``).

    Lower: each subject's RDM compared with the mean of the others (leave one subject out);
    upper: compared with the mean of all. Both averaged over subjects.

    Parameters
    ----------
    rdms : rsatoolbox.rdm.RDMs, one (or more) per subject, grouped by ``rdm_descriptor``.

    Returns
    -------
    (lower, upper) : float, in the units of ``method``.
    """
    from rsatoolbox.inference import boot_noise_ceiling

    lo, hi = boot_noise_ceiling(rdms, method=_check_method(method), rdm_descriptor=rdm_descriptor)
    return float(lo), float(hi)


def rsa_bootstrap(model_rdms: Any, data: Any, *, names: Sequence[str] | None = None, method: str = "corr",
                  n_boot: int = 1000, seed: int = 0, rdm_descriptor: str = "subject") -> dict[str, np.ndarray]:
    """Bootstrap over stimuli and subjects (rsatoolbox ``eval_bootstrap``) of fixed model RDMs.

    Parameters
    ----------
    model_rdms : rsatoolbox.rdm.RDMs, one RDM per model (M).
    data : rsatoolbox.rdm.RDMs, one RDM per subject (S).
    n_boot : bootstrap samples; seed: seeds numpy's global RNG for the call and restores it after.

    Returns
    -------
    dict
        ``evaluations`` (n_boot x M, NaN where a sample had < 3 distinct stimuli),
        ``noise_ceiling`` (2 x n_boot: lower, upper), ``point`` (M, mean over subjects on the
        full data), ``ci_low``/``ci_high`` (M, 2.5 / 97.5 percentiles), ``ceiling_ci`` (2 x 2).
    """
    from rsatoolbox.inference import eval_bootstrap
    from rsatoolbox.model import ModelFixed

    method = _check_method(method)
    names = list(names) if names is not None else [f"model{k}" for k in range(model_rdms.n_rdm)]
    models = [ModelFixed(n, model_rdms[k]) for k, n in enumerate(names)]
    with _seeded(seed), contextlib.redirect_stderr(io.StringIO()):  # rsatoolbox's own tqdm bar
        res = eval_bootstrap(models, data, method=method, N=n_boot, rdm_descriptor=rdm_descriptor,
                             pattern_descriptor="index")
    ev = np.asarray(res.evaluations, dtype=np.float64).reshape(n_boot, len(models))
    nc = np.asarray(res.noise_ceiling, dtype=np.float64)
    ok = np.isfinite(ev[:, 0])
    point = compare_rdms(model_rdms, data, method).mean(axis=1)
    return {
        "evaluations": ev,
        "noise_ceiling": nc,
        "point": point,
        "ci_low": np.nanpercentile(ev[ok], 2.5, axis=0),
        "ci_high": np.nanpercentile(ev[ok], 97.5, axis=0),
        "ceiling_ci": np.nanpercentile(nc[:, ok], [2.5, 97.5], axis=1).T,
    }


# -------------------------------------------------------------------------------------- CKA


def _gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    return x @ x.T


def _center(k: np.ndarray) -> np.ndarray:
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012, eq. 5) of two N x N Gram matrices (N > 3)."""
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones = np.ones(n)
    term1 = np.sum(k * l)  # trace(K L) for symmetric L
    term2 = (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (ones @ k) @ (l @ ones)
    return float((term1 + term2 - term3) / (n * (n - 3)))


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear centred kernel alignment between two representations of the same N stimuli.

    Parameters
    ----------
    x : N x P array (any trailing shape is flattened); y : N x Q array.
    debiased
        False: Kornblith et al. (2019) CKA, HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the
        biased HSIC (centred Gram matrices); in [0, 1], invariant to orthogonal transforms and
        isotropic scaling, but biased upward at small N / large P. True: the same ratio with the
        unbiased HSIC (Song et al. 2012; Nguyen et al. 2021), close to 0 for independent
        representations at any N (needs N > 3; can be slightly negative).

    Returns
    -------
    float
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"linear_cka: x has {x.shape[0]} rows and y {y.shape[0]}; give the same stimuli in both")
    n = x.shape[0]
    k, l = _gram(x), _gram(y)
    if debiased:
        if n < 4:
            raise DataError(f"linear_cka: debiased CKA needs at least 4 stimuli, got {n}")
        hkl, hkk, hll = _hsic_unbiased(k, l), _hsic_unbiased(k, k), _hsic_unbiased(l, l)
    else:
        kc, lc = _center(k), _center(l)
        hkl, hkk, hll = float(np.sum(kc * lc)), float(np.sum(kc * kc)), float(np.sum(lc * lc))
    denom = np.sqrt(hkk * hll) if hkk > 0 and hll > 0 else 0.0
    if denom == 0:
        raise DataError("linear_cka: a representation is constant across stimuli; CKA is undefined")
    return float(hkl / denom)


# ------------------------------------------------------------------------- models on a benchmark


def _spec_info(name: str) -> tuple[str, str]:
    try:
        from brainprobe.zoo import get_spec

        spec = get_spec(name)
        return spec.training.kind, spec.family
    except Exception:  # a user model that is not in the zoo
        return "unknown", "unknown"


def benchmark_images(benchmark: Any, resolution: int) -> Any:
    """The benchmark's images as float32 N x 3 x r x r in [0, 1] (antialiased bilinear resize)."""
    import torch

    from brainprobe._images import to_float_tensor

    x = to_float_tensor(np.asarray(benchmark.images))
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True,
                                            align_corners=False).clamp_(0, 1)
    return x


def layer_features(backbone: Any, images: Any, layers: Sequence[str], *, pooling: str = "flatten",
                   batch_size: int = 32) -> dict[str, np.ndarray]:
    """Activations of a zoo backbone at ``layers`` for float images (N x 3 x H x W), pooled to N x F."""
    import torch

    from brainprobe.encoding.features import pool
    from brainprobe.zoo import truncate

    cut = truncate(backbone, list(layers))
    dev = next(backbone.parameters()).device
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            acts = cut(images[i : i + batch_size].to(dev))
            for layer in layers:
                out[layer].append(pool(acts[layer], pooling).float().cpu().numpy())
    return {layer: np.concatenate(v) for layer, v in out.items()}


def _loso_best_layer(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-subject-out layer choice.

    scores : L x S (RSA of each layer with each subject; NaN rows for missing layers).
    Returns (chosen layer per held-out subject (S,), its score on that subject (S,),
    the layer chosen with all subjects ()).
    """
    n_sub = scores.shape[1]
    chosen = np.empty(n_sub, dtype=int)
    held = np.empty(n_sub)
    for s in range(n_sub):
        train = np.delete(scores, s, axis=1).mean(axis=1)
        chosen[s] = int(np.nanargmax(train))
        held[s] = scores[chosen[s], s]
    return chosen, held, np.asarray(int(np.nanargmax(scores.mean(axis=1))))


def rsa_benchmark(
    models: Sequence[str] | Mapping[str, Any],
    benchmark: Any = "kriegeskorte92",
    *,
    layers: Mapping[str, Sequence[str]] | None = None,
    method: str = "corr",
    resolution: int = 128,
    pooling: str = "flatten",
    n_boot: int = 200,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = False,
) -> Any:
    """RSA of models' layers with human IT (per subject, with noise ceiling) and monkey IT.

    Parameters
    ----------
    models
        Zoo names, or a mapping name -> loaded ``Backbone``.
    benchmark
        An ``RDMBenchmark`` or a name for :func:`brainprobe.data.load_rdm_benchmark`.
    layers
        name -> layers; default each spec's curated ``default_layers``.
    method
        rsatoolbox comparator (:data:`METHODS`); ``corr`` (Pearson) by default.
    resolution
        Images are resized to resolution x resolution pixels (antialiased bilinear).
    pooling
        How a layer's activation becomes a feature vector (``flatten``, ``avg``, ``avgpool{k}``).
    n_boot
        rsatoolbox bootstrap samples over stimuli and subjects (for the CIs and ceiling CIs).

    Returns
    -------
    xarray.Dataset
        dims ``model``, ``layer_index`` (a model's k-th curated layer), ``subject``. Variables:
        ``layer`` (model, layer_index; "" where a model has fewer layers); ``rsa_human``
        (model, layer_index, subject): RSA with each subject's session-mean RDM;
        ``rsa_human_mean`` and its bootstrap ``rsa_human_ci_low/high`` (model, layer_index);
        ``rsa_monkey`` (model, layer_index); ``rsa_human_boot`` (boot, model, layer_index) and
        ``rsa_human_best_boot`` (boot, model): the paired bootstrap samples (same resamples for
        every model; NaN where a resample had < 3 distinct stimuli); ``best_layer`` / ``best_layer_index`` (model, the
        layer best on all subjects); ``rsa_human_cv`` (model: mean over held-out subjects of the
        layer chosen on the others), ``cv_layer_index`` (model, subject), ``cv_agreement``
        (model: fraction of folds choosing ``best_layer``); ``rsa_human_best`` with
        ``_ci_low/_ci_high`` (model); scalars ``noise_ceiling_lower/upper`` with bootstrap
        ``_ci_low/_ci_high``, ``human_monkey`` (mean over subjects of RSA(subject, monkey)),
        ``human_monkey_pooled`` (RSA of the subjects' mean RDM with monkey IT). Coordinates
        ``training``, ``architecture`` (model). ``attrs['real'] = 1``.
    """
    import xarray as xr
    from rsatoolbox.rdm import RDMs, concat

    from brainprobe._progress import progress as bar
    from brainprobe.zoo import get_spec, load_backbone

    method = _check_method(method)
    if isinstance(benchmark, str):
        from brainprobe.data.rdm_benchmark import load_rdm_benchmark

        benchmark = load_rdm_benchmark(benchmark)
    names = list(models)
    if not names:
        raise ConfigError("rsa_benchmark: no models given; pass at least one zoo name")
    subjects = benchmark.subject_rdms("human")
    sub_ids = [str(s) for s in subjects.rdm_descriptors["subject"]]
    x = benchmark_images(benchmark, resolution)
    layer_of = {n: list((layers or {}).get(n) or get_spec(n).default_layers) for n in names}
    n_layers = max(len(v) for v in layer_of.values())
    rdm_list, keys = [], []
    it = bar(names, total=len(names), desc="RSA features") if progress else names
    for name in it:
        bb = models[name] if isinstance(models, Mapping) else load_backbone(name, device=device)
        feats = layer_features(bb, x, layer_of[name], pooling=pooling, batch_size=batch_size)
        for k, layer in enumerate(layer_of[name]):
            rdm_list.append(features_rdm(feats[layer], image_ids=benchmark.image_ids,
                                         descriptors={"model": [name], "layer": [layer]}))
            keys.append((name, k))
    model_rdms = concat(rdm_list)
    per_subject = compare_rdms(model_rdms, subjects, method)  # R x S
    monkey = compare_rdms(model_rdms, benchmark.monkey, method)[:, 0] if benchmark.monkey is not None else None
    boot = rsa_bootstrap(model_rdms, subjects, names=[f"{n}:{layer_of[n][k]}" for n, k in keys], method=method,
                         n_boot=n_boot, seed=seed)
    lo, hi = noise_ceiling(subjects, method)

    m, s = len(names), len(sub_ids)
    shape = (m, n_layers)
    rsa_h = np.full((m, n_layers, s), np.nan)
    mean_h, ci_lo, ci_hi, rsa_m = (np.full(shape, np.nan) for _ in range(4))
    layer_names = np.full(shape, "", dtype=object)
    for r, (name, k) in enumerate(keys):
        i = names.index(name)
        rsa_h[i, k] = per_subject[r]
        mean_h[i, k] = boot["point"][r]
        ci_lo[i, k], ci_hi[i, k] = boot["ci_low"][r], boot["ci_high"][r]
        rsa_m[i, k] = monkey[r] if monkey is not None else np.nan
        layer_names[i, k] = layer_of[name][k]
    boot_h = np.full((n_boot, m, n_layers), np.nan)
    for r, (name, k) in enumerate(keys):
        boot_h[:, names.index(name), k] = boot["evaluations"][:, r]
    cv_idx = np.zeros((m, s), dtype=int)
    cv_score = np.zeros((m, s))
    best = np.zeros(m, dtype=int)
    for i in range(m):
        cv_idx[i], cv_score[i], best[i] = _loso_best_layer(rsa_h[i])
    best_rows = [keys.index((names[i], int(best[i]))) for i in range(m)]
    mean_subject = subjects.dissimilarities.mean(axis=0)
    pooled = RDMs(mean_subject[None])
    training, arch = zip(*(_spec_info(n) for n in names))
    ds = xr.Dataset(
        {
            "layer": (("model", "layer_index"), layer_names.astype(str)),
            "rsa_human": (("model", "layer_index", "subject"), rsa_h),
            "rsa_human_mean": (("model", "layer_index"), mean_h),
            "rsa_human_ci_low": (("model", "layer_index"), ci_lo),
            "rsa_human_ci_high": (("model", "layer_index"), ci_hi),
            "rsa_monkey": (("model", "layer_index"), rsa_m),
            "rsa_human_boot": (("boot", "model", "layer_index"), boot_h),
            "rsa_human_best_boot": (("boot", "model"), boot["evaluations"][:, best_rows]),
            "best_layer_index": ("model", best),
            "best_layer": ("model", np.array([layer_of[n][int(b)] for n, b in zip(names, best)], dtype=str)),
            "rsa_human_best": ("model", np.array([boot["point"][r] for r in best_rows])),
            "rsa_human_best_ci_low": ("model", np.array([boot["ci_low"][r] for r in best_rows])),
            "rsa_human_best_ci_high": ("model", np.array([boot["ci_high"][r] for r in best_rows])),
            "rsa_monkey_best": ("model", np.array([monkey[r] if monkey is not None else np.nan for r in best_rows])),
            "cv_layer_index": (("model", "subject"), cv_idx),
            "rsa_human_cv_subject": (("model", "subject"), cv_score),
            "rsa_human_cv": ("model", cv_score.mean(axis=1)),
            "cv_agreement": ("model", (cv_idx == best[:, None]).mean(axis=1)),
            "noise_ceiling_lower": ((), lo),
            "noise_ceiling_upper": ((), hi),
            "noise_ceiling_lower_ci_low": ((), float(boot["ceiling_ci"][0, 0])),
            "noise_ceiling_lower_ci_high": ((), float(boot["ceiling_ci"][0, 1])),
            "noise_ceiling_upper_ci_low": ((), float(boot["ceiling_ci"][1, 0])),
            "noise_ceiling_upper_ci_high": ((), float(boot["ceiling_ci"][1, 1])),
            "human_monkey": ((), float(compare_rdms(subjects, benchmark.monkey, method).mean())
                             if benchmark.monkey is not None else np.nan),
            "human_monkey_pooled": ((), float(compare_rdms(pooled, benchmark.monkey, method)[0, 0])
                                    if benchmark.monkey is not None else np.nan),
        },
        coords={"model": names, "layer_index": np.arange(n_layers), "subject": sub_ids,
                "training": ("model", list(training)), "architecture": ("model", list(arch))},
        attrs={"analysis": "rsa", "benchmark": benchmark.name, "method": method, "resolution": resolution,
               "pooling": pooling, "n_boot": n_boot, "seed": seed, "real": 1,
               "rdm": "1 - Pearson r (model and brain)",
               "citation": benchmark.attrs.get("citation", "")},
    )
    return ds
