"""The factorised readout: per target a spatial mask x channel weights on a layer's map (Klindt et al. 2017).

For a map X (C x H x W, S = H*W positions) of one image the prediction of target t is::

    y_t = b_t + sum_{c,s} w_tc m_ts X~_cs,     X~_cs = (X_cs - mu_cs) / sigma_c,     ||m_t||_2 = 1

(``mu``: training mean of each map entry; ``sigma``: training SD of each channel over images and
positions, so the factorisation of the mask and the channel weights is kept). It is linear in the
map, so it folds exactly into one affine map on the flattened features (``folded``), which is how
the Encoder runs it.

Fitting (torch, CPU or CUDA): responses are z-scored; the channel weights start from the ridge
solution under a uniform mask (the masks start uniform); Adam on mini-batches of images minimises, per target,

    mean_n (y_nt - y^_nt)^2 + l1 * ||w_t||_1 + smooth * ||Laplacian(m_t)||_2^2

with early stopping on a validation split (each target keeps its parameters of the epoch with its
best validation loss). ``l1`` and ``smooth`` are chosen from a small grid by the median validation
R^2 of a random subset of the targets (all grid points fitted in one batched run), then all targets
are fitted with the chosen pair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from brainprobe.errors import ConfigError, DataError

DEFAULT_L1: tuple[float, ...] = (0.003, 0.03)
"""Default grid of the L1 penalty on channel weights (z-scored responses and channels)."""
DEFAULT_SMOOTH: tuple[float, ...] = (0.01, 0.1)
"""Default grid of the Laplacian penalty on the unit-norm spatial mask."""


@dataclass
class FactorizedReadout:
    """A fitted factorised readout of one layer (float64 numpy).

    Attributes
    ----------
    layer : the layer it reads.
    shape : (C, H, W) of the map.
    x_mean : (C*H*W,) training mean of each map entry (channel-major, as ``pool(..., "flatten")``).
    x_scale : (C,) training SD of each channel.
    y_mean, y_scale : (T,) training mean and SD of each target.
    mask : (T, H*W) unit-norm spatial masks (sign fixed so that each sums to >= 0).
    weights : (T, C) channel weights on z-scored channels, in units of the target's SD.
    bias : (T,) intercepts on the z-scored response scale.
    penalty : (T,) the chosen L1 weight of each target.
    cv_scores : (T,) validation R^2 (1 - MSE / variance) at the kept epoch.
    settings : how it was fitted (grids, chosen penalties, epochs, split, seconds).
    """

    layer: str
    shape: tuple[int, int, int]
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    mask: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    penalty: np.ndarray
    cv_scores: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def comparable_cv(self, Y: np.ndarray) -> np.ndarray:
        """(T,) validation R^2, comparable with the ridge readouts' CV R^2."""
        return self.cv_scores

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """One affine map on the raw flattened map: ``Y_hat = X @ W + b``; W (C*H*W, T), b (T,)."""
        c, h, w = self.shape
        outer = self.weights[:, :, None] / self.x_scale[None, :, None] * self.mask[:, None, :]  # T x C x S
        W = (outer.reshape(len(self.bias), c * h * w) * self.y_scale[:, None]).T
        b = self.y_scale * self.bias + self.y_mean - self.x_mean @ W
        return W, b

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted responses (N x T, float64) for raw flattened maps X (N x C*H*W)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != int(np.prod(self.shape)):
            raise DataError(f"features must be N x {int(np.prod(self.shape))} (a flattened {self.shape} map), got shape {X.shape}")
        W, b = self.folded()
        return X @ W + b


def _laplacian(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sum of squared discrete Laplacians of K masks (K x S), edges replicated; 0 for a 1 x 1 map."""
    if h * w == 1:
        return mask.new_zeros(mask.shape[0])
    kernel = mask.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    m = torch.nn.functional.pad(mask.reshape(-1, 1, h, w), (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(m, kernel).pow(2).flatten(1).sum(1)


def _predict(X: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """X (B, C, S), mask (K, S), weights (K, C), bias (K,) -> (B, K); the smaller intermediate first."""
    b, c, s = X.shape
    if c <= s:  # (B*C, S) @ (S, K) -> B x C x K, then sum over channels
        u = (X.reshape(b * c, s) @ mask.T).reshape(b, c, -1)
        return (u * weights.T[None]).sum(1) + bias
    v = (weights @ X.permute(1, 0, 2).reshape(c, b * s)).reshape(-1, b, s)  # K x B x S
    return (v * mask[:, None, :]).sum(-1).T + bias


def _run(X: torch.Tensor, Y: torch.Tensor, Xv: torch.Tensor, Yv: torch.Tensor, w0: torch.Tensor,
         l1: torch.Tensor, smooth: torch.Tensor, shape: tuple[int, int, int], *, lr: float, max_epochs: int,
         patience: int, batch_size: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """Adam with per-target early stopping; K = columns of Y. Returns the best parameters, their val loss (K,), epochs run."""
    _, h, w = shape
    k = Y.shape[1]
    v = torch.ones(k, h * w, dtype=X.dtype, device=X.device)
    weights = w0.clone()
    bias = torch.zeros(k, dtype=X.dtype, device=X.device)
    params = [v.requires_grad_(), weights.requires_grad_(), bias.requires_grad_()]
    opt = torch.optim.Adam(params, lr=lr)
    n = X.shape[0]

    def current() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"mask": v / v.norm(dim=1, keepdim=True).clamp_min(1e-12), "weights": weights.detach().clone(), "bias": bias.detach().clone()}

    def val_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return (Yv - _predict(Xv, p["mask"], p["weights"], p["bias"])).pow(2).mean(0)

    best = current()
    best_loss = val_loss(best)
    since, epoch = 0, 0
    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(n, generator=generator).to(X.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            mask = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
            err = (Y[idx] - _predict(X[idx], mask, weights, bias)).pow(2).mean(0)
            penalty = l1 * weights.abs().sum(1) + smooth * _laplacian(mask, h, w)
            opt.zero_grad(set_to_none=True)
            (err + penalty).sum().backward()
            opt.step()
        now = current()
        loss = val_loss(now)
        better = loss < best_loss
        if bool(better.any()):
            for name in best:
                best[name][better] = now[name][better]
            best_loss = torch.where(better, loss, best_loss)
        since = 0 if float(better.float().mean()) > 0.02 else since + 1  # stop once (almost) no target improves
        if since >= patience:
            break
    return best, best_loss, epoch


def fit_factorized(
    layer: str,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    shape: tuple[int, int, int],
    l1: Sequence[float] = DEFAULT_L1,
    smooth: Sequence[float] = DEFAULT_SMOOTH,
    val_fraction: float = 0.2,
    lr: float = 0.05,
    max_epochs: int = 150,
    patience: int = 10,
    batch_size: int = 32,
    n_select: int = 32,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> FactorizedReadout:
    """Fit a factorised readout (spatial mask x channel weights per target) by gradient descent.

    Parameters
    ----------
    layer : name of the layer (recorded).
    X : (N, C*H*W) flattened maps of the training images (channel-major).
    Y : (N, T) training responses.
    shape : (C, H, W) of the map.
    l1 : grid of the L1 penalty on channel weights.
    smooth : grid of the Laplacian penalty on the unit-norm masks.
    val_fraction : share of the training images held out for early stopping and the grid choice.
    lr : Adam learning rate.
    max_epochs, patience : epoch cap; stop after ``patience`` epochs in which (almost) no target improved.
    batch_size : images per Adam step.
    n_select : targets (a random subset) on which the penalty grid is compared.
    seed : seeds the split, the subset and the mini-batch order.
    device : torch device; default CUDA when available, else CPU.

    Returns
    -------
    FactorizedReadout
    """
    from brainprobe.encoding._backend import default_device

    t0 = time.perf_counter()
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=np.float64)
    if shape is None or len(shape) != 3:
        raise ConfigError(f"factorized readout of {layer}: needs the map shape (C, H, W), got {shape!r}")
    c, h, w = (int(v) for v in shape)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[1] != c * h * w:
        raise DataError(f"factorized readout of {layer}: X {X.shape} and Y {Y.shape} do not match a {shape} map")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise DataError("features or responses contain NaN or inf; remove or impute them before fitting")
    grid = [(float(a), float(s)) for a in l1 for s in smooth]
    if not grid or any(a < 0 or s < 0 for a, s in grid):
        raise ConfigError(f"factorized readout: l1 {list(l1)} and smooth {list(smooth)} must be non-empty grids of values >= 0")
    n, t = Y.shape
    n_val = int(round(val_fraction * n))
    if not 0 < val_fraction < 1 or n_val < 3 or n - n_val < 3:
        raise DataError(f"factorized readout: {n} training images cannot give train and validation splits of >= 3 "
                        f"(val_fraction={val_fraction}); use more images or another readout")
    dev = default_device(device)
    dtype = torch.float32
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)

    X64 = X.astype(np.float64).reshape(n, c, h * w)
    x_mean = X64.mean(0)  # C x S
    x_scale = (X64 - x_mean).transpose(1, 0, 2).reshape(c, -1).std(1)
    x_scale[~(x_scale > 1e-12)] = 1.0
    y_mean, y_scale = Y.mean(0), Y.std(0)
    y_scale[~(y_scale > 1e-12)] = 1.0
    Xz = torch.as_tensor((X64 - x_mean) / x_scale[None, :, None], dtype=dtype, device=dev)
    Yz = torch.as_tensor((Y - y_mean) / y_scale, dtype=dtype, device=dev)
    perm = rng.permutation(n)
    val, fit = torch.as_tensor(np.sort(perm[:n_val]), device=dev), torch.as_tensor(np.sort(perm[n_val:]), device=dev)
    Xf, Yf, Xv, Yv = Xz[fit], Yz[fit], Xz[val], Yz[val]

    # start: ridge on the uniformly pooled map (one C x C solve for all targets)
    with torch.no_grad():
        Z = Xf.mean(2) * np.sqrt(h * w)  # the unit-norm uniform mask
        gram = Z.T @ Z
        lam = 1e-1 * float(gram.diagonal().mean()) + 1e-6
        w0 = torch.linalg.solve(gram + lam * torch.eye(c, dtype=dtype, device=dev), Z.T @ Yf).T  # T x C

    opts = dict(lr=lr, max_epochs=max_epochs, patience=patience, batch_size=batch_size, generator=gen)
    chosen = grid[0]
    scores = {}
    if len(grid) > 1:
        sub = np.sort(rng.choice(t, size=min(n_select, t), replace=False))
        g = len(grid)
        rep = np.tile(sub, g)
        l1v = torch.as_tensor(np.repeat([a for a, _ in grid], len(sub)), dtype=dtype, device=dev)
        smv = torch.as_tensor(np.repeat([s for _, s in grid], len(sub)), dtype=dtype, device=dev)
        _, loss, _ = _run(Xf, Yf[:, rep], Xv, Yv[:, rep], w0[rep], l1v, smv, (c, h, w), **opts)
        var = Yv[:, rep].var(0, unbiased=False).clamp_min(1e-12)
        r2 = (1 - loss / var).reshape(g, len(sub)).cpu().numpy()
        scores = {f"l1={a:g},smooth={s:g}": float(np.median(r2[i])) for i, (a, s) in enumerate(grid)}
        chosen = grid[int(np.argmax(np.median(r2, axis=1)))]
    l1t = torch.full((t,), chosen[0], dtype=dtype, device=dev)
    smt = torch.full((t,), chosen[1], dtype=dtype, device=dev)
    best, loss, epochs = _run(Xf, Yf, Xv, Yv, w0, l1t, smt, (c, h, w), **opts)
    var = Yv.var(0, unbiased=False).clamp_min(1e-12)
    cv_scores = (1 - loss / var).double().cpu().numpy()

    mask = best["mask"].double().cpu().numpy()
    weights = best["weights"].double().cpu().numpy()
    sign = np.where(mask.sum(1) < 0, -1.0, 1.0)
    return FactorizedReadout(
        layer=layer, shape=(c, h, w), x_mean=x_mean.reshape(-1), x_scale=x_scale, y_mean=y_mean, y_scale=y_scale,
        mask=mask * sign[:, None], weights=weights * sign[:, None], bias=best["bias"].double().cpu().numpy(),
        penalty=np.full(t, chosen[0]), cv_scores=cv_scores,
        settings={"l1_grid": [float(a) for a in l1], "smooth_grid": [float(s) for s in smooth], "l1": chosen[0],
                  "smooth": chosen[1], "grid_val_r2": scores, "val_fraction": val_fraction, "lr": lr,
                  "max_epochs": max_epochs, "patience": patience, "batch_size": batch_size, "epochs": epochs,
                  "n_select": n_select, "seed": seed, "device": str(dev), "seconds": time.perf_counter() - t0,
                  "solver": "adam", "score": "r2"},
    )
