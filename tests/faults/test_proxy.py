"""The fault proxy on its own: forwarding, reset after N bytes, blackhole, refuse."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.faults.proxy import DOWNSTREAM, FaultProxy


@pytest.fixture
def echo() -> Iterator[int]:
    """A line echo server on loopback, answering each connection until it closes."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _talk(port: int, data: bytes, *, timeout: float = 2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while len(received) < len(data):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def test_forwards_untouched(echo: int) -> None:
    """Without faults the bytes come back as sent."""
    with FaultProxy(echo) as proxy:
        assert _talk(proxy.port, b"hello world") == b"hello world"


def test_cut_after_n_bytes_resets(echo: int) -> None:
    """A cut delivers the first N bytes of the reply, then a reset, once per allowed cut."""
    with FaultProxy(echo) as proxy:
        proxy.set(cut_after=5, cut_direction=DOWNSTREAM, cut_times=1)
        with (
            pytest.raises(ConnectionResetError),
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as conn,
        ):
            conn.sendall(b"0123456789")
            got = b""
            for _ in range(10):
                chunk = conn.recv(4096)
                got += chunk
                assert got == b"01234"[: len(got)]
                if not chunk:
                    break
        assert proxy.counts["cuts"] == 1
        assert _talk(proxy.port, b"again") == b"again"


def test_blackhole_swallows_and_refuse_refuses(echo: int) -> None:
    """A blackhole accepts and never answers; refuse closes the door; clear reopens it."""
    with FaultProxy(echo) as proxy:
        proxy.set(blackhole=True)
        with pytest.raises(TimeoutError):
            _talk(proxy.port, b"anyone?", timeout=0.5)
        proxy.set(blackhole=False, refuse=True)
        with pytest.raises(ConnectionRefusedError):
            _talk(proxy.port, b"hello")
        proxy.clear()
        assert _talk(proxy.port, b"back") == b"back"


def test_trickle_delivers_everything(echo: int) -> None:
    """A bandwidth limit slows the bytes down but loses none."""
    with FaultProxy(echo) as proxy:
        proxy.set(bandwidth=2000, latency=0.01)
        assert _talk(proxy.port, b"x" * 300, timeout=5) == b"x" * 300
