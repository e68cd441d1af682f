"""robustify: determinism, stop + resume, output loading, argument errors, inner PGD optima."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainprobe.errors import BrainprobeError, ConfigError, DataError, ModelError

SOURCE = "mobilenet_v2"
LAYER = "features.4"  # early block: keeps the tiny runs fast


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    import skimage.data

    return [skimage.data.astronaut()[::4, ::4], skimage.data.coffee()[::4, ::4], skimage.data.chelsea()[::4, ::4]]


def _run(photos, tmp_path, **kw):  # type: ignore[no-untyped-def]
    from brainprobe.robust import robustify

    args = dict(layers=[LAYER], norm="l2", eps=0.5, pgd_steps=2, steps=3, lr=1e-3, optimizer="adam", batch_size=4, resolution=32,
                images=photos, seed=3, out_dir=tmp_path, progress=False)
    args.update(kw)
    return robustify(SOURCE, **args)


def _state(path):  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):  # type: ignore[no-untyped-def]
    """An uninterrupted 3-step run (shared by several tests)."""
    torch.set_num_threads(1)
    return _run(photos, tmp_path_factory.mktemp("ref"))


def test_deterministic_for_a_seed(photos, tmp_path, reference) -> None:
    again = _run(photos, tmp_path)
    assert again.recipe["sha256"] == reference.recipe["sha256"]
    assert again.history == [dict(h, elapsed_s=a["elapsed_s"]) for h, a in zip(reference.history, again.history)]
    other = _run(photos, tmp_path / "other", seed=4)
    assert other.recipe["sha256"] != reference.recipe["sha256"]


def test_training_changes_the_distilled_trunk_only(reference) -> None:
    from brainprobe.zoo import load_backbone

    teacher = load_backbone(SOURCE).net.state_dict()
    student = _state(reference.weights_path)
    assert set(student) == set(teacher)
    def same(k: str) -> bool:
        t = teacher[k].half() if teacher[k].is_floating_point() else teacher[k]
        return torch.equal(student[k], t)

    changed = {k for k in student if not same(k)}
    assert any(k.startswith("features.4.") for k in changed)
    # nothing after the distilled layer gets a gradient without the KL term
    assert not any(k.startswith(("features.5.", "features.18.", "classifier")) for k in changed)
    assert all(v.dtype == torch.float16 for v in student.values() if v.is_floating_point())


def test_stop_and_resume_equals_uninterrupted(photos, tmp_path, reference) -> None:
    ckpt = tmp_path / "run.ckpt"
    first = _run(photos, tmp_path / "a", steps=2, checkpoint=ckpt)
    assert first.recipe["steps"] == 2 and ckpt.is_file()
    resumed = _run(photos, tmp_path / "b", steps=3, checkpoint=ckpt)
    assert resumed.recipe["steps"] == 3
    assert resumed.recipe["sha256"] == reference.recipe["sha256"]
    assert [h["robust"] for h in resumed.history] == [h["robust"] for h in reference.history]


def test_resume_with_other_settings_is_a_one_line_error(photos, tmp_path) -> None:
    ckpt = tmp_path / "run.ckpt"
    _run(photos, tmp_path, steps=1, checkpoint=ckpt)
    with pytest.raises(ConfigError, match=r"different settings \(eps\)") as err:
        _run(photos, tmp_path, steps=2, eps=0.25, checkpoint=ckpt)
    assert "\n" not in str(err.value)


def test_output_loads_through_load_backbone(reference) -> None:
    from brainprobe._hashing import sha256_file
    from brainprobe.zoo import RECIPE_KEYS, load_backbone, register_robustified

    recipe = json.loads(reference.recipe_path.read_text())
    assert set(RECIPE_KEYS) <= set(recipe)
    assert recipe["name"] == "mobilenet_v2_robust_l2_eps0.5" == reference.name
    assert recipe["sha256"] == sha256_file(reference.weights_path)
    assert recipe["steps"] == 3 and recipe["layers"] == [LAYER] and recipe["resolution"] == 32
    spec = register_robustified(reference.recipe_path)
    assert spec.training.kind == "robustified" and spec.weights.source_model == SOURCE
    model = load_backbone(reference.name)
    saved = _state(reference.weights_path)
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, saved[key].to(value.dtype)), key
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (2, 1000)


def test_kl_term_trains_the_head(photos, tmp_path) -> None:
    from brainprobe.zoo import load_backbone

    res = _run(photos, tmp_path, steps=1, kl_weight=1.0)
    assert res.recipe["final_losses"]["kl"] >= 0
    teacher = load_backbone(SOURCE).net.state_dict()
    student = _state(res.weights_path)
    assert not torch.equal(student["classifier.1.weight"].float(), teacher["classifier.1.weight"].half().float())


def test_sgd_keeps_a_student_with_nothing_to_learn_unchanged(photos, tmp_path) -> None:
    """With a vanishing budget every loss is ~0 at the start. SGD's updates are proportional to the
    gradient, so the student stays the teacher; Adam moves every parameter by ~lr per step
    regardless (the noise floor that limited the Adam-trained shipped models' fidelity)."""
    sgd = _run(photos, tmp_path / "sgd", eps=1e-6, optimizer="sgd", lr=None, steps=4)  # the default lr
    adam = _run(photos, tmp_path / "adam", eps=1e-6, optimizer="adam", lr=1e-3, steps=4)
    assert sgd.recipe["optimizer"].startswith("SGD") and adam.recipe["optimizer"] == "Adam"
    assert sgd.recipe["lr"] == 3e-3
    assert max(h["clean"] for h in sgd.history) < 1e-6
    assert adam.history[-1]["clean"] > 1e-3


def test_channels_last_training_matches_nchw(photos, tmp_path, reference) -> None:
    """The memory format changes speed, not the training: losses agree to float rounding."""
    nchw = _run(photos, tmp_path, channels_last=False)
    assert reference.recipe["channels_last"] is True and nchw.recipe["channels_last"] is False
    for a, b in zip(reference.history, nchw.history):
        assert a["robust"] == pytest.approx(b["robust"], rel=1e-3)
        assert a["clean"] == pytest.approx(b["clean"], rel=1e-3, abs=1e-6)
    ref, other = _state(reference.weights_path), _state(nchw.weights_path)
    assert all(v.is_contiguous() for v in ref.values())  # the file is in the usual layout
    w = "features.4.conv.0.0.weight"
    assert torch.allclose(ref[w].float(), other[w].float(), atol=2e-3)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"norm": "l3"}, ConfigError, "norm must be one of l2, linf"),
        ({"eps": -1.0}, ConfigError, "eps must be a positive number"),
        ({"norm": "linf", "eps": 8.0}, ConfigError, "linf eps is in"),
        ({"steps": None}, ConfigError, "give a budget"),
        ({"pgd_steps": 0}, ConfigError, "pgd_steps must be"),
        ({"name": "my_model"}, ConfigError, "must start with 'mobilenet_v2_robust_l2_eps'"),
        ({"optimizer": "rmsprop"}, ConfigError, "optimizer must be one of adam, sgd"),
        ({"layers": ["features.99"]}, ModelError, "no layer 'features.99'"),
        ({"images": np.zeros((2, 3, 16, 16), np.float32)}, DataError, "expected uint8 H x W x 3"),
        ({"images": "/nonexistent/folder"}, DataError, "image folder not found"),
    ],
)
def test_bad_arguments_are_one_line_errors(photos, tmp_path, kw, error, match) -> None:
    with pytest.raises(error, match=match) as err:
        _run(photos, tmp_path, **kw)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, BrainprobeError)


def test_image_folder_source(tmp_path) -> None:
    from PIL import Image

    from brainprobe.robust._trainer import _training_photos

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    photos, desc = _training_photos(tmp_path, 32, 0)
    assert len(photos) == 2 and photos[0].shape == (40, 50, 3) and desc.startswith("folder:")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        _training_photos(tmp_path / "empty", 32, 0)


def test_procedural_source_is_seeded_dead_leaves(monkeypatch) -> None:
    """images="procedural": seeded dead-leaves images, no photograph; the recipe says so."""
    from brainprobe.robust import _trainer
    from brainprobe.robust._procedural import procedural_photos

    monkeypatch.setattr(_trainer, "PROCEDURAL_N", 3)
    monkeypatch.setattr(_trainer, "PROCEDURAL_SIZE", 48)
    photos, desc = _trainer._training_photos("procedural", 32, 5)
    assert desc.startswith("procedural:dead_leaves (3 images of 48 px, seed 5")
    assert all(np.array_equal(a, b) for a, b in zip(photos, procedural_photos(3, 48, seed=5)))


def test_cli_bad_arguments_exit_2(capsys) -> None:
    from brainprobe.cli import main

    for argv, match in (
        (["robustify", SOURCE, "--eps", "abc", "--steps", "1"], "--eps: expected a number"),
        (["robustify", SOURCE, "--eps", "1"], "give a budget"),
        (["robustify", SOURCE, "--time", "ten", "--eps", "1"], "--time: expected seconds"),
        (["robustify"], "give the backbone to robustify"),
        (["robustify", SOURCE, "--evaluate", "x"], "not both"),
        (["robustify", SOURCE, "--optimizer", "rmsprop", "--steps", "1"], "optimizer must be one of adam, sgd"),
    ):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and match in err and "\n" not in err and "Traceback" not in err


def test_cli_parsers() -> None:
    from brainprobe.cli.robustify import parse_duration, parse_eps

    assert parse_eps("1/255") == pytest.approx(1 / 255)
    assert parse_eps("0.25") == 0.25
    assert parse_duration("10m") == 600 and parse_duration("90") == 90 and parse_duration("1h") == 3600


def test_ctrl_c_stops_at_a_step_boundary_and_resumes_exactly(photos, tmp_path, reference, monkeypatch) -> None:
    import os
    import signal

    from brainprobe.robust import _trainer as rb

    real_sample = rb.CropSampler.sample
    calls = {"n": 0}

    def sample_then_interrupt(self, n):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C in the middle of the second step
            os.kill(os.getpid(), signal.SIGINT)
        return real_sample(self, n)

    monkeypatch.setattr(rb.CropSampler, "sample", sample_then_interrupt)
    # the handler in force before (default_int_handler; SIG_IGN when the suite runs under nohup / &)
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the test sends a real SIGINT
    ckpt = tmp_path / "run.ckpt"
    try:
        with pytest.raises(BrainprobeError, match="interrupted after step 2; rerun the same command"):
            _run(photos, tmp_path, checkpoint=ckpt)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the run
    finally:
        signal.signal(signal.SIGINT, before)
    monkeypatch.setattr(rb.CropSampler, "sample", real_sample)
    resumed = _run(photos, tmp_path, checkpoint=ckpt)
    assert resumed.recipe["sha256"] == reference.recipe["sha256"]
