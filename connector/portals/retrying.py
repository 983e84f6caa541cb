"""Short retries inside one portal call: transient failures only, bounded in count and time.

The wait is exponential with jitter, but never shorter than the portal's own Retry-After.
When honouring Retry-After would overrun the time budget the call gives up at once and the
outbox's long backoff takes over (the hint travels on the re-raised `PortalTransient`).

A Retry-After is about the portal, not the call that met it: a client's `RetryAfterGate`
keeps every other call of that client from going out until it has passed, whichever job
makes the call, and while the call that met it is still waiting it out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from connector.core.hold import PortalHold
from connector.errors import PortalTransient
from connector.settings import RetrySettings

T = TypeVar("T")
log = structlog.get_logger(__name__)


class RetryAfterGate:
    """No call of one portal client before the last Retry-After it met has passed.

    Without it only the call that met the hint waited: the reconcile job's look-ups went on
    while the push waited out a 429 inside its call, and the other way round. The jobs'
    own hold (`Health.portal_hold`) starts only once a call gives up; this covers the time
    before, with the same kind of hold.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._hold = PortalHold()
        self._cause: PortalTransient | None = None  # the failure that carried the hint

    def note(self, exc: PortalTransient) -> None:
        """A failure carrying Retry-After closes the gate for that long (bounded); a longer
        wait already running is kept, and so is its cause."""
        if exc.retry_after is None:
            return
        until = self._hold.until
        self._hold.hold(exc.retry_after, monotonic=self._clock(), reason=exc.reason)
        if self._hold.until != until:
            self._cause = exc

    def remaining(self) -> float:
        return self._hold.remaining(self._clock())

    def closed(self, left: float, last: PortalTransient | None = None) -> PortalTransient:
        """What a call the gate stops raises, with the time left as its hint.

        A call that already failed on its own (`last`: a 503, a timeout the portal may
        have applied) reports that failure, as it would have without the gate. One never
        sent is marked throttled, as a 429 is: kept back by the portal's wait, it is no
        failed call of its items, so it counts no attempt and no failure in a row.
        """
        if last is not None:
            hint = max(left, last.retry_after or 0.0)
            return PortalTransient(last.reason, retry_after=hint, throttled=last.throttled)
        said = self._cause.reason if self._cause else "Retry-After"
        return PortalTransient(
            f"not sent: the portal asked to wait ({said})", retry_after=left, throttled=True
        )


class RetryPolicy:
    """Decides stop and wait for one call; elapsed time comes from the injected clock."""

    def __init__(self, settings: RetrySettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_initial,
            max=settings.backoff_max,
            jitter=settings.backoff_initial,
        )
        self._started = clock()

    def remaining(self) -> float:
        return self._settings.max_seconds - (self._clock() - self._started)

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._settings.attempts:
            return True
        return _hint(state) > self.remaining() or self.remaining() <= 0

    def wait(self, state: RetryCallState) -> float:
        backoff = min(self._backoff(state), max(self.remaining(), 0.0))
        return max(backoff, _hint(state))


def _hint(state: RetryCallState) -> float:
    """The Retry-After the last failure carried, 0 when none."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, PortalTransient) and exc.retry_after is not None:
        return exc.retry_after
    return 0.0


def _log_wait(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("portal.retry", attempt=state.attempt_number, wait=round(wait, 3), reason=str(exc))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    gate: RetryAfterGate | None = None,
) -> T:
    """Run `call`, retrying PortalTransient; re-raise the last one when the budget is spent.

    With a `gate`, each attempt first waits out a Retry-After another call met, when the
    budget allows; otherwise it gives up unsent with the time left as its hint.
    """
    policy = RetryPolicy(settings, clock)
    retrying = AsyncRetrying(
        sleep=sleep,
        stop=policy.stop,
        wait=policy.wait,
        retry=retry_if_exception_type(PortalTransient),
        before_sleep=_log_wait,
        reraise=True,
    )

    failed: list[PortalTransient] = []  # this call's own failures, the last one last

    async def attempt() -> T:  # tenacity awaits only what it sees declared `async def`
        if gate is None:
            return await call()
        # Again after each wait: another call may have met a longer Retry-After meanwhile.
        # Time passes with each wait, so the budget ends the loop if the gate never opens.
        while (left := gate.remaining()) > 0:
            if left > policy.remaining():
                raise gate.closed(left, failed[-1] if failed else None)
            log.info("portal.waiting_for_retry_after", wait=round(left, 3))
            await sleep(left)
        try:
            return await call()
        except PortalTransient as exc:
            gate.note(exc)
            failed.append(exc)
            raise

    return await retrying(attempt)
