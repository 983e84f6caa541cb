"""`connector run`: the daemon's life from start to a clean stop.

On start, the daemon takes the state store's worker lock (one `connector run` per store,
see `store.worker`). A batch being sent when the last run crashed was never settled, so it
is still pending and goes again (at most one batch; the portal's isUpdating rules and step
identity make that harmless). SIGTERM or
SIGINT stops scheduling, lets the running push round settle its batch, then closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress

import anyio.to_thread
import structlog

from connector.app import App, OperatorActions
from connector.core.masking import scrub_text
from connector.errors import StoreError
from connector.jobs.housekeeping import housekeeping
from connector.ports import Clock
from connector.scheduler import Scheduler
from connector.status import StatusServer, create_status_app

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 30.0
#: How often the wall clock is compared with the monotonic one, and the gap that counts as
#: a jump (NTP slews far more gently than this).
CLOCK_CHECK_SECONDS = 1.0
CLOCK_JUMP_SECONDS = 5.0
#: How often the jobs' state is kept in the store for `connector status` (and at a stop).
JOBS_SAVE_SECONDS = 60.0


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = asyncio.Event()
        self.status: StatusServer | None = None
        self._warming: asyncio.Task[None] | None = None

    async def run(self) -> None:
        app = self.app
        await anyio.to_thread.run_sync(app.lock_worker)
        recovered = await anyio.to_thread.run_sync(app.store.recover)
        if recovered:
            # Only a store written by an earlier version has items marked in flight.
            log.info("items left in flight by an earlier version are queued again", items=recovered)
        self._install_signals()
        scheduler = Scheduler(asyncio.get_running_loop())
        push = app.push_job()
        with suppress(StoreError):  # the first push round reads it again
            await push.resume()
        await self._start_status(OperatorActions(app, origin="http", on_queued=scheduler.wake_push))
        pull = app.pull_job(on_queued=scheduler.wake_push, should_stop=self.stopping.is_set)
        reconcile = app.reconcile_job()
        settings = app.settings

        async def push_run() -> int:
            return await push.drain(should_stop=self.stopping.is_set)

        scheduler.add_jobs(
            settings.schedule,
            pull=pull.run,
            push=push_run,
            reconcile=reconcile.run,
            housekeeping=lambda: housekeeping(
                app.store, app.clock, retention_days=settings.state.retention_days
            ),
        )
        scheduler.start()
        guard = asyncio.create_task(
            watch_clock(app.clock, scheduler.reschedule_now, should_stop=self.stopping.is_set)
        )
        saver = asyncio.create_task(self._save_jobs_every(JOBS_SAVE_SECONDS))
        log.info(
            "connector running",
            source=settings.source.name,
            portal=settings.portal.base_url,
            profile=settings.portal.profile,
        )
        try:
            await self.stopping.wait()
        finally:
            guard.cancel()
            saver.cancel()
            await self._shutdown(scheduler)

    def stop(self) -> None:
        self.stopping.set()

    async def _save_jobs_every(self, seconds: float) -> None:
        """The jobs' state into the store now and then, for `connector status` after a
        stop or a crash; a store that cannot take it now is tried again next time."""
        while True:
            await asyncio.sleep(seconds)
            await self._save_jobs()

    async def _save_jobs(self) -> None:
        """Best effort: whatever stops a save (a full disk, a store gone) is logged and the
        daemon goes on, or stops as it was stopping."""
        try:
            await anyio.to_thread.run_sync(self.app.save_jobs)
        except Exception as exc:  # a status nicety must not stop the daemon
            log.warning("jobs' state not saved", reason=scrub_text(str(exc)))

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)

    async def _start_status(self, actions: OperatorActions) -> None:
        cfg = self.app.settings.status
        if not cfg.enabled:
            return
        token = self.app.settings.status_token()
        status_app = create_status_app(
            snapshot=self.app.snapshot,
            metrics=self.app.metrics,
            ready=self.app.ready,
            token=token.get_secret_value() if token else None,
            require_token=token_required(cfg.host),
            actions=actions,
        )
        self.status = StatusServer(status_app, cfg.host, cfg.port)
        await self.status.start()
        log.info("status endpoint listening", url=f"http://{cfg.host}:{self.status.port}/status")
        # Not awaited: the jobs start at once; a first request waits for this computation.
        self._warming = asyncio.create_task(anyio.to_thread.run_sync(self.app.warm_figures))

    async def _shutdown(self, scheduler: Scheduler) -> None:
        log.info("stopping: letting the running push round settle")
        scheduler.pause()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while scheduler.push_running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        scheduler.shutdown()  # waits for a pull page in progress to be stored
        await self._save_jobs()
        if self.status is not None:
            await self.status.stop()
        with suppress(Exception):
            await self.app.portal.aclose()
        self.app.close()
        log.info("connector stopped")


async def watch_clock(
    clock: Clock,
    on_jump: Callable[[], None],
    *,
    should_stop: Callable[[], bool],
    interval: float = CLOCK_CHECK_SECONDS,
    tolerance: float = CLOCK_JUMP_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Call `on_jump` whenever wall time moves apart from monotonic time by `tolerance`.

    The sleep is on the event loop's monotonic clock, so a jump cannot stall the watch.
    """
    offset = clock.now() - clock.monotonic()
    while not should_stop():
        await sleep(interval)
        current = clock.now() - clock.monotonic()
        if abs(current - offset) > tolerance:
            log.warning("wall clock jumped; every job runs now", jump_s=round(current - offset, 1))
            offset = current
            on_jump()


#: The addresses the status server may listen on without a token: the loopback default.
#: Any other (127.0.0.2 included, loopback as it is) needs `status.token` for all but /healthz.
OPEN_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def token_required(host: str) -> bool:
    """True unless the status server listens on exactly the loopback default."""
    return host not in OPEN_HOSTS


def run_daemon(app: App) -> None:
    asyncio.run(Daemon(app).run())


def run_once(app: App) -> dict[str, object]:
    """One pull and one push drain, for cron-style use and for trying a configuration."""

    async def once() -> dict[str, object]:
        await anyio.to_thread.run_sync(app.lock_worker)
        try:
            await anyio.to_thread.run_sync(app.store.recover)
            pulled = await anyio.to_thread.run_sync(app.pull_job().run)
            push = app.push_job()
            try:
                settled = await push.drain(max_seconds=300.0)
            finally:
                await app.portal.aclose()
        finally:
            app.unlock_worker()
        return {
            "pulled": pulled.records,
            "queued": pulled.queued,
            "invalid": pulled.invalid,
            "settled": settled,
            "push": app.health.push.as_dict()["state"],
        }

    return asyncio.run(once())
