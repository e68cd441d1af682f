"""Property test: every perturbation stays inside its budget and every probe image inside [0, 1]."""

from __future__ import annotations

import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainprobe.probes import ProbeCheckWarning, probe
from brainprobe.probes.checks import budget_violation
from tests.probes.conftest import TinyEncoder

_MODEL = TinyEncoder(n_targets=4, seed=3, act=torch.nn.Tanh)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 3),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    norm=st.sampled_from(["l2", "linf"]),
    eps=st.lists(st.floats(0.0, 3.0, exclude_min=True, allow_subnormal=False), min_size=1, max_size=3),  # eps > 0
    objective=st.sampled_from(["drive:V1", "drive-:V4", "drive", "shift"]),
    random_start=st.booleans(),
    saturate=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    batch_size=st.integers(1, 5),
)
def test_budget_and_box_always_hold(n, h, w, norm, eps, objective, random_start, saturate, seed, batch_size) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 3, h, w), generator=g)
    # push a fraction of pixels onto the box faces, where the box binds
    faces = torch.rand(x.shape, generator=g) < saturate
    x = torch.where(faces, (x > 0.5).float(), x)
    if norm == "linf":
        eps = [e / 3 for e in eps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeCheckWarning)
        # shift needs >= 2 images for its SD; use the unnormalised form for one image
        ob = objective if (objective != "shift" or n > 1) else "drive"
        res = probe(_MODEL, x, norm=norm, eps=eps, objective=ob, steps=3, random_start=random_start,
                    seed=seed, batch_size=batch_size, checks=False)
    e = torch.tensor(eps)[:, None].expand(-1, n).flatten()
    assert float(budget_violation(res.delta.flatten(0, 1), e, norm).max()) <= 1e-6
    adv = x.unsqueeze(0) + res.delta
    assert float(adv.min()) >= -1e-6 and float(adv.max()) <= 1 + 1e-6
    assert torch.isfinite(res.objective_value).all()
