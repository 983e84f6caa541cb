"""StatusServer: a real uvicorn listener on 127.0.0.1 inside the running event loop."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette

from connector.errors import ConfigError
from connector.metrics import Metrics
from connector.status import StatusServer, create_status_app


def _app() -> Starlette:
    return create_status_app(
        snapshot=lambda: {"version": "0.1.0"}, metrics=Metrics(), ready=lambda: (True, "")
    )


async def test_server_listens_on_an_ephemeral_port_and_stops() -> None:
    """Port 0 picks a free port; the server answers there and refuses connections once stopped."""
    server = StatusServer(_app(), "127.0.0.1", 0)
    await server.start()
    port = server.port
    assert port != 0
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{port}/status")
        assert reply.json() == {"version": "0.1.0"}
    finally:
        await server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_taken_port_raises_a_clear_error() -> None:
    """Starting on a port another socket listens on raises ConfigError naming the key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = StatusServer(_app(), "127.0.0.1", port)
        with pytest.raises(ConfigError, match=r"status\.port"):
            await server.start()


async def test_stop_before_start_is_harmless() -> None:
    """Stopping a server that never started does nothing and raises nothing."""
    server = StatusServer(_app(), "127.0.0.1", 0)
    await server.stop()
    assert server.port == 0
