"""The portal-wide pause, shared by every job that calls the portal.

A 429 (or a 5xx with Retry-After) is about the portal, not the batch that met it, and so
are calls failing one after the other (an outage, see `delivery.outage_wait`): until the
wait has passed, no job calls the portal at all (push claims nothing, reconcile looks
nothing up). The hold is runtime state: after a restart the first call may meet the
throttle or the outage again, which sets the hold anew. Neither counts as an item's
attempt: the count of calls failed in a row outlives the restart (`PushJob._set_failures`).
The portal client keeps a hold of its own (`portals.retrying.RetryAfterGate`) for the time
a call that met a Retry-After still waits it out, before the jobs hear of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

#: The longest Retry-After honoured: a longer hint (a portal bug, a typo) is cut to this,
#: so neither a hold nor any item's next attempt is pushed out without bound.
MAX_HOLD_SECONDS = 24 * 3600.0


def bounded(hint: float | None) -> float | None:
    """A Retry-After hint within [0, MAX_HOLD_SECONDS], None when there is none."""
    if hint is None:
        return None
    return min(max(hint, 0.0), MAX_HOLD_SECONDS)


#: What most holds wait for, as the status page says it.
RETRY_AFTER = "the portal's Retry-After"


@dataclass(slots=True)
class PortalHold:
    """No portal call before `until`, on the monotonic clock: a wall-clock jump neither
    shortens nor stretches the wait."""

    until: float = 0.0  # monotonic seconds
    reason: str = ""  # the failure that asked for the wait, for the status page
    cause: str = RETRY_AFTER  # what the wait is for, for the status page

    def hold(
        self, seconds: float, *, monotonic: float, reason: str, cause: str = RETRY_AFTER
    ) -> float:
        """Hold for `seconds` (bounded) from `monotonic`; returns the seconds held for.
        A hold already running longer is kept."""
        seconds = bounded(seconds) or 0.0
        if monotonic + seconds > self.until:
            self.until = monotonic + seconds
            self.reason = reason
            self.cause = cause
        return seconds

    def remaining(self, monotonic: float) -> float:
        """Seconds left before the portal may be called again (0 when it may)."""
        return max(self.until - monotonic, 0.0)

    def describe(self, *, monotonic: float, now: float) -> str:
        """For the status page: until when the wait lasts and why (`now` is wall time).

        The end is given as a time, not as seconds left: the status shows this message as
        long as it is the job's last error, and a count of seconds would be stale at once.
        """
        left = self.remaining(monotonic)
        until = datetime.fromtimestamp(now + left, UTC).isoformat(timespec="seconds")
        return f"waiting for {self.cause}: no calls until {until}; {self.reason}"
