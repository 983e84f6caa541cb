"""Wall-clock jumps: timeouts and backoff on the monotonic clock, every job rescheduled."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from connector.app import App
from connector.daemon import watch_clock
from connector.scheduler import Scheduler
from connector.settings import ScheduleSettings
from tests.faults.checker import assert_clean
from tests.faults.workload import FastClock, Rig, close_app, drive


async def test_watch_clock_reports_each_jump_once() -> None:
    """A jump forward and one back are each noticed once; steady time is never a jump."""
    clock = FastClock()
    jumps: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_clock(
            clock,
            lambda: jumps.append(clock.now()),
            should_stop=stop.is_set,
            interval=0.02,
            tolerance=5,
        )
    )
    await asyncio.sleep(0.1)
    assert jumps == []
    clock.jump(3600)
    await asyncio.sleep(0.1)
    clock.jump(-7200)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(watcher, 1)
    assert len(jumps) == 2


async def test_reschedule_now_runs_each_job_once_more() -> None:
    """After a jump, every job runs once at once (none stalls until the old time, none twice)."""
    runs: Counter[str] = Counter()
    scheduler = Scheduler(asyncio.get_running_loop())

    async def push() -> None:
        runs["push"] += 1

    async def reconcile() -> None:
        runs["reconcile"] += 1

    hour = 3600.0
    scheduler.add_jobs(
        ScheduleSettings(
            pull_seconds=hour, push_seconds=hour, reconcile_seconds=hour, housekeeping_seconds=hour
        ),
        pull=lambda: runs.update(["pull"]),
        push=push,
        reconcile=reconcile,
        housekeeping=lambda: runs.update(["housekeeping"]),
    )
    scheduler.start()
    try:
        for _ in range(100):
            if runs["pull"] and runs["push"]:
                break
            await asyncio.sleep(0.02)
        before = Counter(runs)
        assert before["pull"] == 1 and before["push"] == 1 and before["reconcile"] == 0
        scheduler.reschedule_now()
        for _ in range(100):
            if all(
                runs[name] > before[name] for name in ("pull", "push", "reconcile", "housekeeping")
            ):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert {name: runs[name] - before[name] for name in runs} == {
            "pull": 1,
            "push": 1,
            "reconcile": 1,
            "housekeeping": 1,
        }
    finally:
        scheduler.shutdown()


@pytest.mark.e2e
async def test_outbox_backoff_survives_a_clock_jump_back(rig: Rig) -> None:
    """Items waiting for a retry when the wall clock goes back an hour wait no longer than the
    longest backoff, and nothing is sent twice."""
    clock = FastClock()
    with rig.portal() as sandbox:
        rig.admin("/_sandbox/outage", {"seconds": 1.0})
        app = App(rig.settings(sandbox.url), clock=clock)
        try:
            push = app.push_job()
            await asyncio.to_thread(app.pull_job().run)
            await push.round()  # fails: every header of the batch now waits for a retry
            assert app.health.push.state == "retrying"
            await asyncio.sleep(1.1)
            clock.jump(-3600)
            await drive(app, until=rig.drained, timeout=30)
            clock.jump(+7200)
            await drive(app, until=rig.drained, timeout=30)
        finally:
            await close_app(app)
    assert_clean(rig.check())
