"""robustify --evaluate: the quality report checked on students with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

SOURCE = "mobilenet_v2"
LAYER = "features.4"


def _fake_robustified(tmp_path, name_eps: float, net: torch.nn.Module):  # type: ignore[no-untyped-def]
    """Write ``net`` as if robustify had made it, and register it."""
    from brainprobe.zoo import load_backbone, register_robustified, robust_name
    from brainprobe.robust import save_robustified

    recipe = {
        "name": robust_name(SOURCE, "l2", name_eps), "source_model": SOURCE,
        "source_weights_sha256": load_backbone(SOURCE).weights_sha256, "layers": [LAYER], "norm": "l2",
        "eps": name_eps, "steps": 0, "lr": 0.0, "seed": 0, "resolution": 32, "images": "test",
        "wall_time_s": 0.0, "final_losses": {"robust": 0.0, "clean": 0.0, "kl": 0.0},
    }
    _, recipe_path, recipe = save_robustified(net, recipe, tmp_path, fp16=False)
    register_robustified(recipe_path)
    return recipe["name"]


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    import skimage.data

    photo = skimage.data.astronaut()
    out = []
    for _ in range(10):
        top, left = rng.integers(0, 512 - 128, 2)
        out.append(photo[top : top + 128 : 4, left : left + 128 : 4])
    return np.stack(out)


def _evaluate(name, crops):  # type: ignore[no-untyped-def]
    from brainprobe.robust import evaluate_robustified

    return evaluate_robustified(name, crops=crops, l2_budgets=[0.25], linf_budgets=[1 / 255], pgd_steps=3,
                                n_targets=16, n_boot=200, seed=0)


def test_a_copy_of_the_teacher_scores_exactly_one(tmp_path, crops) -> None:
    from brainprobe.zoo import load_backbone

    name = _fake_robustified(tmp_path, 0.11, load_backbone(SOURCE).net)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="robustify quality")  # no fidelity warning for a perfect copy
        report = _evaluate(name, crops)
    assert report.get("top1_agreement", images="photos@224")["value"] == 1.0
    assert report.get("top1_agreement", images="photos@224")["n"] == 20
    assert report.get("readout_r2")["value"] == pytest.approx(1.0, abs=1e-6)
    for norm, eps in (("l2", 0.25), ("linf", 1 / 255)):
        for metric in ("sensitivity_ratio_pgd", "sensitivity_ratio_noise",
                       "transfer_teacher_to_student", "transfer_student_to_teacher"):
            row = report.get(metric, norm, eps)
            assert row["value"] == pytest.approx(1.0, rel=1e-5), (metric, norm)
            assert row["ci_low"] == pytest.approx(1.0, rel=1e-5) and row["ci_high"] == pytest.approx(1.0, rel=1e-5)
        # PGD finds far larger changes than noise of the same norm
        pgd = report.get("sensitivity_teacher", norm, eps)["value"]
        assert pgd > 0
    text = report.to_text()
    assert "sensitivity_ratio_pgd" in text and "WARNING" not in text


def test_an_unfaithful_student_warns(tmp_path, crops) -> None:
    from brainprobe.zoo import load_backbone

    net = load_backbone(SOURCE).net
    with torch.no_grad():
        w = net.get_submodule("features.2.conv.0.0").weight
        w.copy_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * w.std())
    name = _fake_robustified(tmp_path, 0.12, net)
    with pytest.warns(UserWarning, match="robustify quality check: clean readout R\\^2"):
        report = _evaluate(name, crops)
    assert report.get("readout_r2")["value"] < 0.7
    assert report.warnings and "WARNING" in report.to_text()


def test_evaluate_rejects_a_standard_model() -> None:
    from brainprobe.errors import ModelError
    from brainprobe.robust import evaluate_robustified

    with pytest.raises(ModelError, match="not a robustified model"):
        evaluate_robustified(SOURCE)


def test_bootstrap_ci_brackets_the_mean() -> None:
    from brainprobe.robust import bootstrap_ci

    x = np.random.default_rng(0).normal(size=400)
    value, lo, hi = bootstrap_ci(np.mean, x, n_boot=1000, seed=0)
    se = x.std() / 20
    assert lo < value < hi and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
