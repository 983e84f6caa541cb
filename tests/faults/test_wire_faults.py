"""Faults on the wire between the connector and the portal, injected by the fault proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from connector.app import App
from tests.faults.checker import Bounds, assert_clean
from tests.faults.proxy import DOWNSTREAM, FaultProxy
from tests.faults.workload import Rig, close_app, drive

pytestmark = pytest.mark.e2e


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _later(seconds: float, action: Callable[[], object]) -> None:
    await asyncio.sleep(seconds)
    action()


async def test_blackhole_then_refused_then_healed(rig: Rig) -> None:
    """A portal that swallows requests, then refuses connections, costs timeouts and retries
    but no loss, no duplicate and no dead letter."""
    with rig.portal() as sandbox, FaultProxy(_port(sandbox.url)) as proxy:
        proxy.set(blackhole=True)
        timeouts = {"connect": 1, "read": 1, "write": 1, "pool": 1, "total": 2}
        app = App(rig.settings(proxy.url, **{"portal.timeouts": timeouts}))
        steps = asyncio.gather(
            _later(2.5, lambda: proxy.set(blackhole=False, refuse=True)),
            _later(4.5, proxy.clear),
        )
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await steps
            await close_app(app)
        assert proxy.counts["blackholed"] > 0
    assert_clean(rig.check())


async def test_trickled_replies_hit_the_total_deadline(rig: Rig) -> None:
    """Bytes that keep trickling never trip the read timeout; the total deadline ends the call."""
    with rig.portal() as sandbox, FaultProxy(_port(sandbox.url)) as proxy:
        proxy.set(bandwidth=200)
        timeouts = {"connect": 2, "read": 5, "write": 5, "pool": 5, "total": 1.5}
        app = App(rig.settings(proxy.url, **{"portal.timeouts": timeouts}))
        pull = app.pull_job()
        await asyncio.to_thread(pull.run)
        assert await app.push_job().round() == 20  # one header batch, retried later
        error = app.health.push.last_error or ""
        assert "no complete reply within 1.5 s" in error
        proxy.clear()
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
    assert_clean(rig.check(Bounds(noop_applications=20, duplicate_steps=80)))


async def test_reset_mid_reply_is_never_a_success(rig: Rig) -> None:
    """Replies cut by a reset after the portal applied the batch are retried as unknown: the
    resend is harmless, and nothing is acknowledged from a broken reply."""
    with rig.portal() as sandbox, FaultProxy(_port(sandbox.url)) as proxy:
        cuts = 8
        proxy.set(cut_after=200, cut_direction=DOWNSTREAM, cut_times=cuts)
        app = App(rig.settings(proxy.url))
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
        assert proxy.counts["cuts"] == cuts
    assert_clean(rig.check(Bounds(noop_applications=cuts * 20, duplicate_steps=cuts * 80)))
