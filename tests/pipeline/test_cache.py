"""The content-addressed cache: atomic commits, checksums, corrupt and partial entries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from brainprobe.pipeline.cache import Cache, make_key


def test_keys_depend_on_inputs_and_version() -> None:
    a = make_key("probes", 1, {"eps": [0.1, 0.2], "model": "m"})
    assert a == make_key("probes", 1, {"model": "m", "eps": [0.1, 0.2]})
    assert a != make_key("probes", 2, {"eps": [0.1, 0.2], "model": "m"})
    assert a != make_key("probes", 1, {"eps": [0.1, 0.3], "model": "m"})
    assert a != make_key("fit", 1, {"eps": [0.1, 0.2], "model": "m"})


def test_commit_verify_and_corruption(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = make_key("s", 1, {"x": 1})
    assert not cache.valid("s", key)
    with cache.writer("s", key) as tmp:
        np.save(tmp / "a.npy", np.arange(10.0))
    assert cache.valid("s", key)
    f = cache.path("s", key) / "a.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # flip one bit of the payload
    f.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="fails its checksum"):
        assert not cache.valid("s", key)
    assert not cache.path("s", key).exists()  # removed, to be recomputed


def test_missing_file_is_detected(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = make_key("s", 1, {"x": 2})
    with cache.writer("s", key) as tmp:
        (tmp / "a.bin").write_bytes(b"abc")
        (tmp / "b.bin").write_bytes(b"def")
    (cache.path("s", key) / "b.bin").unlink()
    with pytest.warns(UserWarning, match="missing b.bin"):
        assert not cache.valid("s", key)


def test_failed_writer_commits_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = make_key("s", 1, {"x": 3})
    with pytest.raises(RuntimeError):
        with cache.writer("s", key) as tmp:
            (tmp / "a.bin").write_bytes(b"abc")
            raise RuntimeError("killed")
    assert not cache.path("s", key).exists()
    assert list((tmp_path / "s").iterdir()) == []


def test_left_over_temporaries_are_cleaned(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    stale = tmp_path / "probes" / f".tmp-abc-{os.getpid()}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "change.npy").write_bytes(b"half")
    assert cache.clean_temporaries() == 1
    assert not stale.exists()
