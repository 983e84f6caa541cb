"""The sandbox over real loopback sockets: SandboxThread, the reset fault and `serve`."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from connector.sandbox import SandboxThread
from tests.sandbox.sandbox_support import DSTCODE, PASSWORD, UNIT, code, dossier, make_config


def _login(client: httpx.Client) -> str:
    reply = client.post("/auth", json={"username": "demo", "password": PASSWORD}, headers=DSTCODE)
    return str(reply.json()["session"])


def _push_body(session: str) -> dict[str, object]:
    return {
        "session": session,
        "madonvi": UNIT,
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": [dossier(1)],
    }


def test_login_push_and_stats_over_loopback() -> None:
    """A real HTTP client logs in, pushes a dossier and sees it in the stats."""
    with SandboxThread(make_config()) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        assert sandbox.url.startswith("http://127.0.0.1:")
        reply = client.post("/integration", json=_push_body(_login(client)), headers=DSTCODE)
        assert reply.json()["result"][0]["error_code"] == "0"
        stats = client.get("/_sandbox/stats").json()
        assert (stats["dossiers"], stats["logins"], stats["requests"]) == (1, 1, 2)


@pytest.mark.parametrize(("after_apply", "held"), [(True, 1), (False, 0)])
def test_a_reset_breaks_the_reply(after_apply: bool, held: int) -> None:
    """A reset reply is truncated on the wire; the request was applied only if so configured."""
    config = make_config(reset_after_apply=after_apply)
    with SandboxThread(config) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        session = _login(client)
        client.post("/_sandbox/faults", json={"fault_rate": 1.0, "faults": ["reset"]})
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/integration", json=_push_body(session), headers=DSTCODE)
        client.post("/_sandbox/faults", json={"fault_rate": 0.0})
        stats = client.get("/_sandbox/stats").json()
        assert (stats["dossiers"], stats["faults"]) == (held, {"reset": 1})
        view = client.get(f"/_sandbox/dossiers/{code(1)}")
        assert view.status_code == (200 if held else 404)


def test_serve_announces_its_address() -> None:
    """`serve` prints one line with the bound address once it listens."""
    script = (
        "from connector.sandbox import SandboxConfig, serve;"
        "serve(SandboxConfig(password='pw', port=0, db_path=':memory:'))"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("sandbox portal listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        reply = httpx.post(f"http://127.0.0.1:{port}/auth", json={}, headers=DSTCODE)
        assert reply.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
