"""Suite-wide fixtures: no network, deterministic torch, a private BRAINPROBE_HOME."""

from __future__ import annotations

import ipaddress
import socket

import pytest


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else None
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: object) -> object:
    if not _is_local(address):
        raise OSError(f"network access is disabled in the test suite (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise OSError(f"network access is disabled in the test suite (tried {address!r})")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost", "127.0.0.1", "::1", "0.0.0.0") and not _is_local((host,)):
        raise socket.gaierror(f"network access is disabled in the test suite (lookup of {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    # Patched for the whole session: tests, fixtures and the code under test alike. Loopback stays
    # open because Ray's local cluster and the report test's local browser talk over it.
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _brainprobe_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep caches of every test out of the user's home."""
    home = tmp_path_factory.getbasetemp() / "brainprobe-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("BRAINPROBE_HOME", str(home))


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(0)
