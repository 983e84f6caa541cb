"""5xx bursts, outages of ten minutes and three hours, restarts during an outage, and 429
storms: delivered exactly once, never hammered, nothing parked for the portal's fault."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from connector.app import App
from tests.faults.checker import Bounds, assert_clean
from tests.faults.workload import FastClock, Rig, close_app, drive

pytestmark = pytest.mark.e2e


async def test_5xx_bursts_deliver_exactly_once(rig: Rig) -> None:
    """With a third of the portal's calls failing with 500/503, everything still arrives once."""
    with rig.portal(fault_rate=0.35, faults=("503", "500"), seed=5) as sandbox:
        app = App(rig.settings(sandbox.url))
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
        stats = rig.stats()
    assert stats["faults"].get("503", 0) + stats["faults"].get("500", 0) > 0
    assert_clean(rig.check())


async def test_ten_minute_outage_with_a_fast_clock(rig: Rig) -> None:
    """A portal down for ten minutes (of injected time) costs retries with growing backoff,
    parks nothing, and everything arrives once when it returns."""
    delivery = {"backoff_initial": 30, "backoff_max": 600, "max_attempts": 8}
    elapsed, faults = await _outage(rig, speed=200.0, seconds=3.5, delivery=delivery)
    assert elapsed >= 600, "the outage must span ten minutes of connector time"
    # Exponential backoff, not a hot loop: a handful of calls per batch during the outage.
    assert 0 < faults.get("outage", 0) < 60, faults


async def test_an_outage_longer_than_every_backoff_parks_nothing(rig: Rig) -> None:
    """A portal down for three hours (of injected time) under the default retry policy:
    twelve attempts from 5 s doubling to 15 min would park every item tried within the
    first hour. Calls failing one after the other are the portal's outage, not the items'
    fault: nothing is parked, the portal is probed about once a minute, and everything
    arrives once when it returns."""
    delivery = {"backoff_initial": 5, "backoff_max": 900, "max_attempts": 12}
    elapsed, faults = await _outage(rig, speed=400.0, seconds=27, delivery=delivery)
    assert elapsed >= 3 * 3600, "the outage must span three hours"
    # About a probe a minute (each with its tries within the call and its login), not more.
    assert 0 < faults.get("outage", 0) < 600, faults


async def _outage(
    rig: Rig, *, speed: float, seconds: float, delivery: dict[str, Any]
) -> tuple[float, dict[str, int]]:
    """Run the connector on a clock `speed` times fast through a sandbox outage of `seconds`
    real seconds, until drained; check it ended healthy and clean. Returns the connector
    time it took and the sandbox's fault counts."""
    clock = FastClock(speed=speed)
    with rig.portal() as sandbox:
        rig.admin("/_sandbox/outage", {"seconds": seconds})
        app = App(rig.settings(sandbox.url, delivery=delivery), clock=clock)
        started = clock.now()
        try:
            await drive(app, until=rig.drained, timeout=90)
        finally:
            await close_app(app)
        faults: dict[str, int] = rig.stats()["faults"]
    assert app.health.push.state == "ok"
    assert_clean(rig.check())
    return clock.now() - started, faults


async def test_429_storm_honours_retry_after(rig: Rig) -> None:
    """Throttled calls wait at least Retry-After and nothing is dead-lettered for it."""
    clock = FastClock(speed=1.0)
    with rig.portal(fault_rate=0.5, faults=("429",), retry_after=0.5, seed=9) as sandbox:
        app = App(rig.settings(sandbox.url), clock=clock)
        try:
            await drive(app, until=rig.drained, timeout=120)
        finally:
            await close_app(app)
        stats = rig.stats()
    assert stats["faults"].get("429", 0) > 0
    assert_clean(rig.check(Bounds()))


async def test_restarts_during_an_outage_count_no_attempt_again(rig: Rig) -> None:
    """The connector restarted four times while the portal is down (a crash loop during an
    outage): only the very first failed call counts an attempt of its items, because the
    count of calls failed in a row outlives each run. Everything arrives once afterwards."""
    clock = FastClock(speed=20.0)
    with rig.portal() as sandbox:
        rig.admin("/_sandbox/outage", {"seconds": 4.0})
        for _ in range(4):  # each run: a pull, then push rounds until the hold stops them
            app = App(rig.settings(sandbox.url), clock=clock)
            try:
                await asyncio.to_thread(app.pull_job().run)
                push = app.push_job()
                for _ in range(3):
                    await push.round()
                    await asyncio.sleep(0.05)
            finally:
                await close_app(app)
        assert rig.stats()["faults"].get("outage", 0) > 0, "the runs must meet the outage"
        counted = _attempts(rig)
        assert counted and set(counted.values()) == {1}, counted
        app = App(rig.settings(sandbox.url), clock=clock)
        try:
            await drive(app, until=rig.drained, timeout=60)
        finally:
            await close_app(app)
    assert _attempts(rig) == counted
    assert_clean(rig.check())


def _attempts(rig: Rig) -> dict[str, int]:
    """Attempts counted per outbox key, for every item that has any."""
    with closing(sqlite3.connect(f"file:{rig.state_db}?mode=ro", uri=True)) as state:
        return dict(state.execute("SELECT key, attempts FROM outbox WHERE attempts > 0"))
