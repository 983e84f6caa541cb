"""The state store's part of the status document, computed once and shared for a while.

Those figures scan the whole outbox: seconds on a store of a million dossiers, cold far
more. Every /status, /metrics and `connector status` request, from every scraper, used to
run the scans again. Now one computation serves all callers until it is `max_age` seconds
old, and never sooner than `DUTY_FACTOR` times its own duration after it started, so even a
slow store spends at most about a tenth of its time on status. Callers that arrive while a
computation runs wait for it rather than start their own. A failure is shared only with
those waiting callers: the next request after it tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.ports import Clock

#: A computation that took d seconds is not started again within DUTY_FACTOR × d seconds.
DUTY_FACTOR = 10.0

#: Computes the figures as at the wall time it is given.
Compute = Callable[[float], Mapping[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One computation's figures and when they were taken."""

    values: Mapping[str, Any]
    as_of: float  # wall time the computation started: the `now` the figures describe
    started: float  # the same moment on the monotonic clock, for ages
    took: float  # seconds the computation lasted

    def age(self, clock: Clock) -> float:
        return max(0.0, clock.monotonic() - self.started)


@dataclass(frozen=True, slots=True)
class _Failure:
    error: Exception
    ended: float  # monotonic


class FiguresCache:
    """Figures computed at most once per interval, whatever the number of callers."""

    def __init__(self, compute: Compute, clock: Clock, *, max_age: float) -> None:
        self._compute = compute
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()  # held for a whole computation: others wait for it
        self._figures: Figures | None = None
        self._failure: _Failure | None = None

    def get(self, *, fresh: bool = False) -> Figures:
        """The shared figures while they are young enough, else figures computed now; with
        `fresh`, computed now whatever their age (a one-off caller wanting the current state).

        Raises what the computation raised, to this caller and those waiting with it.
        """
        asked = self._clock.monotonic()
        with self._lock:
            failure = self._failure
            if failure is not None and failure.ended > asked:
                raise failure.error  # the computation this caller waited for failed
            figures = self._figures
            if not fresh and figures is not None and self._young(figures, asked):
                return figures
            return self._refresh()

    def expire(self) -> None:
        """Forget the figures: something an operator did changed them (a retry, a resync),
        and the next request should show it, whatever their age."""
        with self._lock:
            self._figures = None

    def _young(self, figures: Figures, at: float) -> bool:
        """Still servable: within `max_age`, or within the slow store's own bound."""
        limit = max(self._max_age, DUTY_FACTOR * figures.took)
        return at - figures.started <= limit

    def _refresh(self) -> Figures:
        """Compute under the lock; on failure nothing stale is left to be served as current."""
        started, as_of = self._clock.monotonic(), self._clock.now()
        try:
            values = self._compute(as_of)
        except Exception as exc:
            self._figures = None
            self._failure = _Failure(exc, self._clock.monotonic())
            raise
        took = max(0.0, self._clock.monotonic() - started)
        self._figures = Figures(values=values, as_of=as_of, started=started, took=took)
        self._failure = None
        return self._figures
