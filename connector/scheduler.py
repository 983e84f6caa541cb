"""APScheduler wiring: the only module that imports apscheduler.

Pull and housekeeping are blocking (database reads and writes) and run in the scheduler's
thread pool; push and reconcile are coroutines on the event loop. Every job coalesces and
never overlaps itself, so a slow run delays the next one instead of stacking them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from connector.settings import ScheduleSettings

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}


class Scheduler:
    """The daemon's timetable, plus a way to run push at once when work is waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._aps = AsyncIOScheduler(
            event_loop=loop,
            executors={"default": ThreadPoolExecutor(2), "asyncio": AsyncIOExecutor()},
            job_defaults=JOB_DEFAULTS,
            timezone="UTC",
        )
        self.push_running = False

    def add_jobs(
        self,
        schedule: ScheduleSettings,
        *,
        pull: Callable[[], Any],
        push: Callable[[], Awaitable[Any]],
        reconcile: Callable[[], Awaitable[Any]],
        housekeeping: Callable[[], Any],
    ) -> None:
        now = datetime.now(UTC)
        self._every("pull", pull, schedule.pull_seconds, first=now, executor="default")
        self._every(
            "push", self._tracked(push), schedule.push_seconds, first=now, executor="asyncio"
        )
        self._every(
            "reconcile",
            reconcile,
            schedule.reconcile_seconds,
            first=now + timedelta(seconds=min(30.0, schedule.reconcile_seconds)),
            executor="asyncio",
        )
        self._every(
            "housekeeping",
            housekeeping,
            schedule.housekeeping_seconds,
            first=now + timedelta(seconds=60),
            executor="default",
        )

    def _every(
        self,
        name: str,
        func: Callable[[], Any],
        seconds: float,
        *,
        first: datetime,
        executor: str,
    ) -> None:
        self._aps.add_job(
            func,
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            next_run_time=first,
            executor=executor,
        )

    def _tracked(self, push: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            self.push_running = True
            try:
                return await push()
            finally:
                self.push_running = False

        return run

    def wake_push(self) -> None:
        """Run push now (callable from any thread); a running push drains anyway."""
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if not self.push_running and self._aps.running:
            self._aps.modify_job("push", next_run_time=datetime.now(UTC))

    def reschedule_now(self) -> None:
        """Every idle job runs at once (after the wall clock jumped, its run times are wrong).

        APScheduler 3 keeps run times in wall-clock terms: a jump back would hold every job
        until the old time comes round again, a jump forward past the grace time would drop
        runs. A job that is running keeps running and is not started twice.
        """
        if not self._aps.running:
            return
        now = datetime.now(UTC)
        for job in self._aps.get_jobs():
            if job.id == "push" and self.push_running:
                continue
            self._aps.modify_job(job.id, next_run_time=now)

    def start(self) -> None:
        self._aps.start()

    def pause(self) -> None:
        """Stop starting new runs; running ones finish."""
        if self._aps.running:
            self._aps.pause()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=True)
