import socket
import urllib.request

import pytest


def test_outbound_connections_fail() -> None:
    with pytest.raises(OSError):
        urllib.request.urlopen("http://example.com", timeout=2)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError):
            s.connect(("93.184.216.34", 80))
    finally:
        s.close()


def test_loopback_stays_open() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        cli.connect(srv.getsockname())
    finally:
        cli.close()
        srv.close()
