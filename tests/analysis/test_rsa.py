"""RSA (rsatoolbox-backed), linear CKA, and the fragility objective of brain similarity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from brainprobe.analysis import compare_rdms, features_rdm, linear_cka, noise_ceiling, rsa_bootstrap
from brainprobe.analysis._rsa import _loso_best_layer
from brainprobe.analysis._rsa_fragility import pearson_rows, rdm_vector, rsa_score_fn, set_pgd
from brainprobe.errors import ConfigError, DataError

rsatoolbox = pytest.importorskip("rsatoolbox")


@pytest.fixture(scope="module")
def bench():
    from brainprobe.data import load_rdm_benchmark

    return load_rdm_benchmark("kriegeskorte92")


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(92, 40))
    return [base + rng.normal(scale=s, size=base.shape) for s in (0.5, 2.0)]


# ------------------------------------------------------------------------------ RSA vs rsatoolbox


@pytest.mark.parametrize("method", ["corr", "tau-a", "spearman", "corr_cov", "cosine_cov"])
def test_compare_equals_rsatoolbox(bench, feats, method):
    from rsatoolbox.rdm import compare

    model = features_rdm(feats, image_ids=bench.image_ids)
    subjects = bench.subject_rdms()
    ours = compare_rdms(model, subjects, method)
    theirs = compare(model, subjects, method=method)
    assert ours.shape == (2, 4)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    # and the brain-vs-brain values (human IT vs monkey IT)
    np.testing.assert_allclose(compare_rdms(subjects, bench.monkey, method), compare(subjects, bench.monkey, method=method))


def test_comparators_match_independent_formulas(bench, feats):
    model = features_rdm(feats[0])
    v = model.dissimilarities[0]
    h = bench.subject_rdms().dissimilarities[0]
    assert compare_rdms(model, h[None], "corr")[0, 0] == pytest.approx(np.corrcoef(v, h)[0, 1], abs=1e-10)
    assert compare_rdms(model, h[None], "spearman")[0, 0] == pytest.approx(scipy.stats.spearmanr(v, h)[0], abs=1e-10)
    # tau-a without ties equals tau-b
    assert compare_rdms(model, h[None], "tau-a")[0, 0] == pytest.approx(scipy.stats.kendalltau(v, h)[0], abs=1e-6)


def test_features_rdm_is_correlation_distance(feats):
    rdm = features_rdm(feats[0]).get_matrices()[0]
    np.testing.assert_allclose(rdm, 1 - np.corrcoef(feats[0]), atol=1e-10)
    # the differentiable version used by the fragility objective agrees
    diff = rdm_vector(torch.as_tensor(feats[0])).numpy()
    np.testing.assert_allclose(diff, features_rdm(feats[0]).dissimilarities[0], atol=1e-10)


def test_noise_ceiling_is_rsatoolbox_and_ordered(bench):
    from rsatoolbox.inference import boot_noise_ceiling

    subjects = bench.subject_rdms()
    lo, hi = noise_ceiling(subjects, "corr")
    assert (lo, hi) == pytest.approx(boot_noise_ceiling(subjects, method="corr", rdm_descriptor="subject"))
    assert 0 < lo < hi < 1
    # lower bound by hand: each subject against the mean of the others (rsatoolbox pools
    # z-scored RDMs for Pearson comparisons)
    d = subjects.dissimilarities
    d = (d - d.mean(1, keepdims=True)) / d.std(1, keepdims=True)
    manual = np.mean([np.corrcoef(d[s], np.delete(d, s, 0).mean(0))[0, 1] for s in range(4)])
    assert lo == pytest.approx(manual, abs=1e-10)


def test_rsa_bootstrap_seeded_and_leaves_global_rng(bench, feats):
    model = features_rdm(feats, image_ids=bench.image_ids)
    subjects = bench.subject_rdms()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = rsa_bootstrap(model, subjects, n_boot=20, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)
    b = rsa_bootstrap(model, subjects, n_boot=20, seed=1)
    np.testing.assert_array_equal(a["evaluations"], b["evaluations"])
    np.testing.assert_allclose(a["point"], compare_rdms(model, subjects).mean(axis=1))
    assert np.all(a["ci_low"] <= a["ci_high"])
    with pytest.raises(ConfigError, match="unknown"):
        rsa_bootstrap(model, subjects, n_boot=5, method="pearson")


def test_loso_best_layer():
    scores = np.array([[0.1, 0.1, 0.1, 0.1], [0.3, 0.2, 0.3, 0.2], [0.2, 0.9, 0.2, 0.2]])
    chosen, held, best = _loso_best_layer(scores)
    assert int(best) == 2  # highest mean
    # leaving out subject 1 (where layer 2 is 0.9) picks layer 1 on the others
    assert list(chosen) == [2, 1, 2, 2]
    np.testing.assert_allclose(held, [0.2, 0.2, 0.2, 0.2])


# ---------------------------------------------------------------------------------------- CKA


def test_cka_identity_and_invariances():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    for debiased in (False, True):
        assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert linear_cka(x, 3.7 * x @ q, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    y = rng.normal(size=(60, 30))
    assert linear_cka(x, y) == pytest.approx(linear_cka(x @ q * 0.1, y))
    # not invariant to a non-isotropic scaling
    assert linear_cka(x, x * np.linspace(0.1, 10, 20)) < 0.99


def test_cka_debiased_near_zero_for_independent_data():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(1500, 50)), rng.normal(size=(1500, 50))
    assert abs(linear_cka(x, y, debiased=True)) < 0.01
    # biased CKA is inflated at small N and large P; the debiased one is not
    xs, ys = rng.normal(size=(30, 300)), rng.normal(size=(30, 300))
    assert linear_cka(xs, ys) > 0.5
    assert abs(linear_cka(xs, ys, debiased=True)) < 0.15


def test_cka_matches_kornblith_feature_space_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 7)), rng.normal(size=(40, 5))
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(ref, rel=1e-10)


def test_cka_errors():
    with pytest.raises(DataError, match="rows"):
        linear_cka(np.ones((5, 2)), np.ones((4, 2)))
    with pytest.raises(DataError, match="constant"):
        linear_cka(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2)))


# ------------------------------------------------------------------------- fragility objective


def _linear_setup(n=10, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = 0.3 + 0.4 * torch.rand(n, 3, 6, 6, generator=g)
    w = torch.randn(3 * 6 * 6, d, generator=g, dtype=torch.float32) / 10
    model = lambda x: x.flatten(1) @ w  # noqa: E731  a linear model: features = W^T x
    return images, w, model


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_set_pgd_reaches_known_optimum_of_a_linear_objective(norm):
    """Linear model and a linear set score S(x) = sum_i a_i . W^T x_i: max over per-image balls is
    S(x) + eps * sum_i ||W a_i||_2 (l2) or eps * sum_i ||W a_i||_1 (linf), with delta_i* = eps *
    W a_i / ||W a_i|| (l2) or eps * sign(W a_i) (linf), as long as the [0,1] box is not active."""
    images, w, model = _linear_setup()
    a = torch.randn(images.shape[0], w.shape[1], generator=torch.Generator().manual_seed(5))
    score = lambda f: (f * a).sum()  # noqa: E731
    eps = 0.05 if norm == "l2" else 0.01
    grad = (a @ w.T)  # N x P: d S / d x_i = W a_i
    opt = grad.norm(dim=1).sum() if norm == "l2" else grad.abs().sum(dim=1).sum()
    for direction in (1, -1):
        delta, trace, _ = set_pgd(model, images, score, norm=norm, eps=eps, direction=direction, steps=5)
        change = float(score(model(images + delta)) - score(model(images)))
        assert direction * change == pytest.approx(float(eps * opt), rel=1e-4)
        want = direction * eps * (grad / grad.norm(dim=1, keepdim=True) if norm == "l2" else grad.sign())
        np.testing.assert_allclose(delta.flatten(1).numpy(), want.numpy(), atol=1e-5)
        assert trace[0] == pytest.approx(float(score(model(images))), rel=1e-6)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_rdm_objective_on_linear_model_reaches_first_order_optimum(bench, norm):
    """For a linear model the RDM-correlation score is smooth in the pixels; at a small budget its
    maximum over per-image balls is eps * sum_i ||grad_i||_* + O(eps^2) (dual norm: l2 -> l2,
    linf -> l1). PGD must reach it from both sides (raise and lower), and never exceed it by more
    than the second-order remainder."""
    images, _, model = _linear_setup(n=10, d=12)
    rng = np.random.default_rng(0)
    target = np.stack([features_rdm(rng.normal(size=(10, 12))).dissimilarities[0] for _ in range(3)])
    score = rsa_score_fn(target)
    x = images.clone().requires_grad_(True)
    s0 = score(model(x))
    (g,) = torch.autograd.grad(s0, x)
    s0 = float(s0.detach())
    g = g.flatten(1).double()
    dual = g.norm(dim=1).sum() if norm == "l2" else g.abs().sum(dim=1).sum()
    eps = 1e-3 if norm == "l2" else 1e-4
    first_order = float(eps * dual)
    for direction in (1, -1):
        delta, _, feats = set_pgd(model, images, score, norm=norm, eps=eps, direction=direction, steps=10)
        change = direction * (float(score(model(images + delta))) - s0)
        assert change == pytest.approx(first_order, rel=0.03)
        flat = delta.flatten(1)
        assert float((flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)).max()) <= eps * (1 + 1e-5)
        # the returned features are those of x + delta
        np.testing.assert_allclose(feats.numpy(), model(images + delta).detach().numpy(), atol=1e-5)


def test_rsa_score_fn_equals_mean_rsatoolbox_corr(bench, feats):
    subjects = bench.subject_rdms()
    fn = rsa_score_fn(subjects.dissimilarities)
    ours = float(fn(torch.as_tensor(feats[0])))
    assert ours == pytest.approx(compare_rdms(features_rdm(feats[0]), subjects, "corr").mean(), abs=1e-10)
    r = pearson_rows(torch.as_tensor(subjects.dissimilarities[0]), torch.as_tensor(subjects.dissimilarities))
    assert float(r[0]) == pytest.approx(1.0)


def test_set_pgd_rejects_bad_arguments():
    images, _, model = _linear_setup(n=4)
    with pytest.raises(ConfigError, match="norm"):
        set_pgd(model, images, lambda f: f.sum(), norm="l1", eps=0.1)
    with pytest.raises(ConfigError, match="direction"):
        set_pgd(model, images, lambda f: f.sum(), norm="l2", eps=0.1, direction=2)


# ---------------------------------------------------------------------- real models (slower)


@pytest.mark.slow
def test_rsa_benchmark_and_fragility_on_a_real_model(bench):
    from brainprobe.analysis import rsa_benchmark, rsa_fragility

    ds = rsa_benchmark(["mobilenet_v2"], bench, layers={"mobilenet_v2": ["features.2", "features.4"]}, n_boot=20,
                       resolution=64)
    assert ds.sizes == {"model": 1, "layer_index": 2, "subject": 4, "boot": 20}
    assert ds.attrs["real"] == 1 and str(ds.training.values[0]) == "standard"
    lo, hi = float(ds.noise_ceiling_lower), float(ds.noise_ceiling_upper)
    assert 0 < lo < hi
    r = ds.rsa_human.values[0]
    np.testing.assert_allclose(ds.rsa_human_mean.values[0], r.mean(axis=1))
    assert str(ds.best_layer.values[0]) in ("features.2", "features.4")
    assert -0.5 < float(ds.human_monkey) < 1
    fr = rsa_fragility(["mobilenet_v2"], bench, rsa=ds, norms=["l2"], eps={"l2": [0.5]}, steps=2, resolution=64)
    clean = float(fr.clean_score.values[0])
    assert clean == pytest.approx(float(ds.rsa_human_best.values[0]), abs=1e-6)
    lower, raise_ = fr.score.sel(norm="l2", eps_index=0).values[0]
    assert lower < clean < raise_
    assert float(fr.delta_norm.max()) <= 0.5 * (1 + 1e-5)
