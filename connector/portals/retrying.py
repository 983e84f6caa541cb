"""Short retries inside one portal call: transient failures only, bounded in count and time.

The wait is exponential with jitter, but never shorter than the portal's own Retry-After.
When honouring Retry-After would overrun the time budget the call gives up at once and the
outbox's long backoff takes over (the hint travels on the re-raised `PortalTransient`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from connector.errors import PortalTransient
from connector.settings import RetrySettings

T = TypeVar("T")
log = structlog.get_logger(__name__)


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
) -> T:
    """Run `call`, retrying PortalTransient; re-raise the last one when the budget is spent."""
    policy = RetryPolicy(settings, clock)
    retrying = AsyncRetrying(
        sleep=sleep,
        stop=policy.stop,
        wait=policy.wait,
        retry=retry_if_exception_type(PortalTransient),
        before_sleep=_log_wait,
        reraise=True,
    )

    async def attempt() -> T:  # tenacity awaits only what it sees declared `async def`
        return await call()

    return await retrying(attempt)
