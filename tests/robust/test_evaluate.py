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
        for metric in ("adv_random_ratio_s/t", "low_freq_share_s/t"):  # the same model: identical geometry
            assert report.get(metric, norm, eps)["value"] == pytest.approx(1.0, rel=1e-5), (metric, norm)
        assert report.get("adv_random_ratio_teacher", norm, eps)["value"] > 1  # PGD beats noise of the same norm
    geometry = report.to_dict()["geometry"]
    assert geometry["clean_agreement"]["metric"] == "top1_agreement" and geometry["clean_agreement"]["value"] == 1.0
    assert set(geometry) == {"clean_agreement", "l2 0.25", "linf 1/255"}
    assert geometry["linf 1/255"]["low_freq_share_s/t"]["value"] == pytest.approx(1.0, rel=1e-5)
    text = report.to_text()
    assert "sensitivity_ratio_pgd" in text and "adv_random_ratio_s/t" in text and "WARNING" not in text


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


def test_evaluate_rejects_an_unknown_layer(tmp_path, crops) -> None:
    from brainprobe.errors import ModelError
    from brainprobe.robust import evaluate_robustified
    from brainprobe.zoo import load_backbone

    name = _fake_robustified(tmp_path, 0.12, load_backbone(SOURCE).net)
    with pytest.raises(ModelError, match="--eval-layer: mobilenet_v2 has no layer 'features.99'"):
        evaluate_robustified(name, crops=crops, layer="features.99")


def test_bootstrap_ci_brackets_the_mean() -> None:
    from brainprobe.robust import bootstrap_ci

    x = np.random.default_rng(0).normal(size=400)
    value, lo, hi = bootstrap_ci(np.mean, x, n_boot=1000, seed=0)
    se = x.std() / 20
    assert lo < value < hi and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


# ---------------------------------------------------------------- geometry diagnostic, known answers


class _Rank1(torch.nn.Module):
    """y = u (v . x): the worst-case direction is v (l2) or sign(v) (linf), known in closed form."""

    def __init__(self, d: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("v", torch.randn(d, generator=g))
        self.register_buffer("u", torch.randn(1, 4, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.v)[:, None] * self.u


class _Blurred(torch.nn.Module):
    """A random linear readout of Gaussian-blurred pixels (sigma 3 px): a low-pass model."""

    def __init__(self, side: int, blur: bool, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.blur = blur
        self.register_buffer("w", torch.randn(3 * side * side, 8, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur:
            import torchvision.transforms.functional as TF

            x = TF.gaussian_blur(x, kernel_size=[19, 19], sigma=[3.0, 3.0])
        return x.flatten(1) @ self.w


def _grey(n: int, side: int) -> torch.Tensor:
    # mid-grey images: no pixel is clipped by the [0, 1] box at these budgets
    return torch.full((n, 3, side, side), 0.5) + 0.01 * torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(1))


def test_adversarial_to_random_ratio_of_a_rank1_linear_model() -> None:
    from brainprobe.robust import bootstrap_ci, probe_geometry

    side, n = 16, 60
    d = 3 * side * side
    model = _Rank1(d)
    x = _grey(n, side)
    (l2,) = probe_geometry(model, x, "l2", [0.5], steps=5, seed=0)
    (linf,) = probe_geometry(model, x, "linf", [1 / 255], steps=5, seed=0)
    v = model.v
    # PGD finds the exact optimum: |v . delta| = eps ||v||_2 (l2), eps ||v||_1 (linf), times ||u|| / sqrt(T)
    scale = model.u.norm().item() / 2
    assert np.allclose(l2["pgd"], 0.5 * v.norm().item() * scale, rtol=1e-3)
    assert np.allclose(linf["pgd"], v.abs().sum().item() / 255 * scale, rtol=1e-3)
    expected = {"l2": np.sqrt(np.pi * d / 2), "linf": (v.abs().sum() / v.norm()).item() / np.sqrt(2 / np.pi)}
    for norm, g in (("l2", l2), ("linf", linf)):
        ratio, lo, hi = bootstrap_ci(lambda a, b: a.mean() / b.mean(), g["pgd"], g["random"], n_boot=500)
        assert lo <= expected[norm] <= hi, (norm, ratio, lo, hi, expected[norm])
        assert ratio == pytest.approx(expected[norm], rel=0.25)


def test_probes_of_a_low_pass_model_are_low_frequency() -> None:
    from brainprobe.analysis import white_noise_share
    from brainprobe.robust import probe_geometry

    side = 32
    x = _grey(6, side)
    (blurred,) = probe_geometry(_Blurred(side, blur=True), x, "l2", [1.0], steps=5)
    (raw,) = probe_geometry(_Blurred(side, blur=False), x, "l2", [1.0], steps=5)
    # a Gaussian of sigma 3 px keeps 97% of white power below 0.1 cycles/pixel; the image borders
    # (not periodic, as the FFT assumes) and the probe's 5% random nudge cost a few per cent more
    assert blurred["low_freq_share"].min() > 0.8
    assert blurred["low_freq_share"].mean() > 20 * raw["low_freq_share"].mean()
    # a readout of raw pixels has white-noise gradients: about the share of frequency bins below the cutoff
    assert raw["low_freq_share"].mean() == pytest.approx(white_noise_share(side, side, 0.1), abs=0.02)
