"""Fault injection: what each fault looks like to a client, and that it changes no state."""

from __future__ import annotations

import time
from typing import Any

from connector.sandbox.config import SandboxConfig
from tests.sandbox.sandbox_support import (
    ClientFactory,
    FakeClock,
    PortalClient,
    dossier,
    make_config,
)


async def _set_faults(portal: PortalClient, **settings: Any) -> None:
    reply = await portal.http.post("/_sandbox/faults", json=settings)
    assert reply.status_code == 200, reply.text


async def test_a_503_fault_answers_html_and_applies_nothing(portal: PortalClient) -> None:
    """A drawn 503 is an HTML error page and the pushed dossier is not held."""
    await portal.login()
    await _set_faults(portal, fault_rate=1.0, faults=["503"])
    reply = await portal.call("DongBoHoSoMC", isUpdating="False", data=[dossier()])
    assert reply.status_code == 503
    assert reply.headers["content-type"].startswith("text/html")
    stats = await portal.stats()
    assert (stats["dossiers"], stats["faults"]) == (0, {"503": 1})


async def test_a_500_fault_is_an_http_500(portal: PortalClient) -> None:
    """A drawn 500 answers HTTP 500, also on login."""
    await _set_faults(portal, fault_rate=1.0, faults=["500"])
    reply = await portal.http.post("/auth", json={}, headers={"dstcode": "DEMO-DST"})
    assert reply.status_code == 500


async def test_a_429_fault_carries_retry_after(portal: PortalClient) -> None:
    """A throttled call is HTTP 429 with the configured Retry-After."""
    await portal.login()
    await _set_faults(portal, fault_rate=1.0, faults=["429"], retry_after=2)
    reply = await portal.call("TraCuuHoSo", mahoso="x")
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "2"


async def test_a_stall_delays_a_normal_answer(make_client: ClientFactory) -> None:
    """A stalled call answers normally after stall_seconds."""
    portal = make_client()
    await portal.login()
    await _set_faults(portal, fault_rate=1.0, faults=["stall"], stall_seconds=0.3)
    started = time.monotonic()
    reply = await portal.push([dossier()])
    assert time.monotonic() - started >= 0.3
    assert reply["error_code"] == "0"


async def test_a_slow_reply_trickles_but_arrives_whole(make_client: ClientFactory) -> None:
    """A slow reply takes about slow_seconds and is still the complete JSON."""
    portal = make_client(make_config(fault_rate=1.0, faults=("slow",), slow_seconds=0.3))
    started = time.monotonic()
    session = await portal.login()
    assert time.monotonic() - started >= 0.25
    assert session


async def test_an_outage_answers_503_until_it_ends(make_client: ClientFactory) -> None:
    """During an outage window every portal call is a 503; afterwards calls work again."""
    clock = FakeClock()
    portal = make_client(clock=clock)
    await portal.login()
    assert (await portal.http.post("/_sandbox/outage", json={"seconds": 30})).status_code == 200
    assert (await portal.call("TraCuuHoSo", mahoso="x")).status_code == 503
    clock.now += 31
    assert (await portal.call("TraCuuHoSo", mahoso="x")).status_code == 200
    assert (await portal.stats())["faults"] == {"outage": 1}


async def test_fault_settings_are_validated(portal: PortalClient) -> None:
    """The admin endpoint refuses unknown kinds, rates outside [0, 1] and unknown keys."""
    for bad in (
        {"faults": ["boom"]},
        {"fault_rate": 1.5},
        {"colour": "red"},
        {"retry_after": "1"},
        {"reset_after_apply": 1},
    ):
        assert (await portal.http.post("/_sandbox/faults", json=bad)).status_code == 400
    assert (await portal.http.post("/_sandbox/outage", json={"seconds": -1})).status_code == 400
    ok = await portal.http.post("/_sandbox/faults", json={"fault_rate": 0.5, "faults": ["429"]})
    assert ok.json()["faults"] == ["429"]


async def test_faults_are_drawn_from_the_seed(make_client: ClientFactory) -> None:
    """Two sandboxes with the same seed inject the same faults on the same calls."""

    async def pattern(config: SandboxConfig) -> list[int]:
        portal = make_client(config)
        body = {"username": "demo", "password": "x"}
        headers = {"dstcode": "DEMO-DST"}
        return [
            (await portal.http.post("/auth", json=body, headers=headers)).status_code
            for _ in range(30)
        ]

    config = make_config(fault_rate=0.5, faults=("503", "500"), seed=7)
    first = await pattern(config)
    assert first == await pattern(config)
    assert {401, 503, 500} == set(first)
