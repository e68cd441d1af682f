"""Linearity: first-order optima checked against scipy; linear models meet them exactly, box binding included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from _analysis_helpers import LinearModel, Probe, QuadraticModel, mid_images
from brainprobe.analysis import first_order_l2, first_order_linf, linearity
from brainprobe.probes import probe


def _boxy(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradients and images with about 20% of the pixels at 0 and 20% at 1, like photos."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, p))
    x[rng.uniform(size=(n, p)) < 0.2] = 0.0
    x[:, ::5] = 1.0
    g = rng.normal(size=(n, p))
    return g, x


def test_first_order_linf_matches_linprog() -> None:
    g, x = _boxy(3, 30, 0)
    eps = np.array([0.05, 0.3, 2.0])
    value, binding = first_order_linf(g, x, eps)
    for i in range(3):
        for k, e in enumerate(eps):
            bounds = [(max(-e, -xi), min(e, 1 - xi)) for xi in x[i]]
            res = linprog(-g[i], bounds=bounds, method="highs")
            assert value[k, i] == pytest.approx(-res.fun, rel=1e-9)
    assert (binding[0] > 0).all() and (binding[-1] == 1).all()  # box binds: at small eps for pixels at 0/1, all at eps=2


def test_first_order_l2_matches_constrained_optimiser() -> None:
    g, x = _boxy(2, 15, 1)
    eps = np.array([0.1, 0.8, 10.0])
    value, binding = first_order_l2(g, x, eps)
    for i in range(2):
        for k, e in enumerate(eps):
            bounds = [(-xi, 1 - xi) for xi in x[i]]
            cons = {"type": "ineq", "fun": lambda d, e=e: e**2 - d @ d, "jac": lambda d: -2 * d}
            best = -np.inf
            for start in (np.zeros_like(g[i]), np.clip(e * g[i] / np.linalg.norm(g[i]), -x[i], 1 - x[i]) * 0.5):
                res = minimize(lambda d: -g[i] @ d, start, jac=lambda d: -g[i], bounds=bounds, constraints=[cons],
                               method="SLSQP", options={"ftol": 1e-12, "maxiter": 500})
                best = max(best, -res.fun)
            assert value[k, i] == pytest.approx(best, rel=1e-5)
    # without the box the optimum is eps * |g|; the box only lowers it and binds on some pixels
    assert (value[0] <= 0.1 * np.linalg.norm(g, axis=1) + 1e-12).all()
    assert (binding[1] > 0).all()


def test_linear_model_is_exactly_linear_with_box_binding() -> None:
    torch.manual_seed(0)
    x = torch.rand(5, 3, 6, 6)
    x[:, :, :2] = 1.0  # bright sky: the box binds for pixels pushed up
    x[:, :, -1] = 0.0
    w = torch.randn(2, 3 * 6 * 6)
    model = LinearModel(w)
    eps = [0.01, 0.05, 0.2, 0.6]
    pr = probe(model, x, norm="linf", eps=eps, objective="drive", steps=30, progress=False)
    ds = linearity({"lin": model}, x, {"lin": pr}, objective="drive", n_boot=100)
    ratio = ds["ratio"].sel(model="lin", norm="linf").values
    np.testing.assert_allclose(ratio, 1.0, atol=1e-4)
    binding = ds["box_binding"].sel(model="lin", norm="linf").mean("image").values
    assert binding[0] > 0.1 and binding[-1] > binding[0]  # the box matters, more so as eps grows
    # and the box-free bound eps * |g|_1 overshoots: the box really is in the prediction
    g1 = np.abs(w.mean(0).double().numpy()).sum()
    assert ds["predicted"].sel(model="lin", norm="linf").mean("image").values[-1] < 0.9 * 0.6 * g1
    assert np.isinf(float(ds["eps_depart"].sel(model="lin", norm="linf")))


def test_linear_model_l2_exact_optimum_with_box() -> None:
    torch.manual_seed(1)
    x = torch.rand(4, 3, 4, 4)
    x[:, 0] = 1.0
    model = LinearModel(torch.randn(1, 48))
    g = model.weight[0].double().numpy()
    eps = np.array([0.2, 1.0, 2.5])
    # the exact box-constrained l2 maximiser delta_i = clip(lam g_i, -x_i, 1 - x_i), lam by bisection
    deltas = []
    for e in eps:
        per = []
        for xi in x.flatten(1).double().numpy():
            lo, hi = 0.0, 1e6
            for _ in range(200):
                lam = (lo + hi) / 2
                d = np.clip(lam * g, -xi, 1 - xi)
                lo, hi = (lam, hi) if d @ d < e**2 else (lo, lam)
            per.append(np.clip(lo * g, -xi, 1 - xi))
        deltas.append(np.stack(per))
    delta = torch.tensor(np.stack(deltas), dtype=torch.float32).reshape(len(eps), *x.shape)
    ds = linearity({"lin": model}, x, {"lin": Probe(delta, torch.tensor(eps), "l2")}, objective="drive", n_boot=50)
    np.testing.assert_allclose(ds["ratio"].values.ravel(), 1.0, atol=2e-4)
    assert float(ds["box_binding"].isel(eps=-1).mean()) > 0.3


def test_quadratic_model_departs_where_theory_says() -> None:
    """y = z + c z^2, z = w.x: l2 drive gives ratio of means 1 + c eps |w| / (1 + 2 c mean z)."""
    x = mid_images(6, size=6, spread=0.05)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(1, 3 * 6 * 6, generator=g).abs() / 10  # z > 0: the gradient points along w
    c = 2.0
    model = QuadraticModel(w, c)
    eps = np.geomspace(0.02, 1.0, 25)
    pr = probe(model, x, norm="l2", eps=eps.tolist(), objective="drive", steps=10, progress=False)
    ds = linearity({"q": model}, x, {"q": pr}, objective="drive", n_boot=50)
    z = (x.flatten(1) @ w.T).double().numpy().ravel()
    wn = float(w.norm())
    expected_ratio = 1 + c * eps * wn / (1 + 2 * c * z.mean())
    np.testing.assert_allclose(ds["ratio"].sel(model="q", norm="l2").values, expected_ratio, rtol=2e-3)
    expected_depart = 0.1 * (1 + 2 * c * z.mean()) / (c * wn)
    assert float(ds["eps_depart"].sel(model="q", norm="l2")) == pytest.approx(expected_depart, rel=0.02)


def test_shift_l2_first_order_is_eps_sigma_max() -> None:
    x = mid_images(6, size=4)
    w = torch.randn(5, 48, generator=torch.Generator().manual_seed(4))
    model = LinearModel(w)
    eps = torch.tensor([0.01, 0.02])
    sd = (x.flatten(1) @ w.T).double().std(0).numpy()
    _, _, vh = np.linalg.svd(w.double().numpy() / sd[:, None])
    best = torch.tensor(vh[0], dtype=torch.float32).reshape(1, 1, 3, 4, 4) * eps.reshape(-1, 1, 1, 1, 1)
    optimal = Probe(best.expand(2, 6, 3, 4, 4).clone(), eps, "l2")
    ds = linearity({"lin": model}, x, {"lin": optimal}, objective="shift", n_boot=50)
    np.testing.assert_allclose(ds["ratio"].values.ravel(), 1.0, atol=1e-5)
    # PGD never beats the first-order optimum of a linear model
    pr = probe(model, x, norm="l2", eps=eps, objective="shift", steps=20, progress=False)
    ds = linearity({"lin": model}, x, {"lin": pr}, objective="shift", n_boot=50)
    assert (ds["actual"] <= ds["predicted"] * (1 + 1e-5)).all()
