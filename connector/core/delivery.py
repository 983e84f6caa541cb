"""Delivery decisions: what to do with each item after a push attempt. Pure.

The push job asks these functions and carries out the answer; nothing here sends, sleeps
or reads the clock. Short retries within one call are the portal adapter's (tenacity);
this module owns the long ones that must survive a restart (the outbox's next attempt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from connector.core.records import BatchReply, Kind, Outcome, OutcomeStatus

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The outbox's backoff: exponential from `initial` to `cap`, parked after `max_attempts`
    attempts or once the item has waited `park_after` seconds."""

    max_attempts: int = 12
    initial: float = 5.0
    cap: float = 900.0
    park_after: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial <= 0 or self.cap < self.initial:
            raise ValueError("RetryPolicy needs max_attempts >= 1 and 0 < initial <= cap")


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Send again at `at` (epoch seconds)."""

    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Park:
    """Stop retrying: an operator must look at it."""

    reason: str


def after_transient(
    policy: RetryPolicy,
    *,
    attempts: int,
    created_at: float,
    now: float,
    retry_after: float | None = None,
    jitter: float = 0.5,
) -> Retry | Park:
    """Decide the next attempt after a failed one; `attempts` counts the one just made.

    `jitter` in [0, 1) spreads retries of many items (0.5 means the middle of the window);
    the portal's Retry-After is a floor, never shortened by jitter.
    """
    if attempts >= policy.max_attempts:
        return Park(reason=f"gave up after {attempts} attempts")
    if now - created_at >= policy.park_after:
        return Park(reason=f"still failing after {int(now - created_at)} s")
    return Retry(at=now + _delay(policy, attempts, retry_after, jitter))


def after_throttle(
    policy: RetryPolicy,
    *,
    attempts: int,
    now: float,
    retry_after: float | None = None,
    jitter: float = 0.5,
) -> Retry:
    """The next attempt after the portal throttled the call (HTTP 429). Never parks.

    Throttling is the portal's rate limit, not the item's fault: the call is not one of the
    item's attempts, so `attempts` is the count of real failures so far (not incremented)
    and neither the attempt limit nor the age limit applies. Retry-After is a floor.
    """
    return Retry(at=now + _delay(policy, attempts, retry_after, jitter))


#: The longest wait between two calls while the portal fails every call: a probe a minute
#: finds it back soon enough, and costs one item.
OUTAGE_PROBE_SECONDS = 60.0


def outage_wait(policy: RetryPolicy, failures: int) -> float | None:
    """How long every portal call waits after `failures` failed calls in a row.

    One failure says nothing about the portal as a whole: the batch backs off and the others
    go on (None). From the second in a row the portal is taken as down: no call until the
    wait has passed, growing from `initial` to at most a minute, so an outage is probed one
    call at a time (of one item, see `PushJob._kind`) instead of walking the whole backlog.
    """
    if failures < 2:
        return None
    wait: float = min(policy.cap, OUTAGE_PROBE_SECONDS, policy.initial * 2 ** (failures - 2))
    return wait


def _delay(policy: RetryPolicy, attempts: int, retry_after: float | None, jitter: float) -> float:
    delay: float = min(policy.cap, policy.initial * 2 ** max(attempts - 1, 0))
    delay = delay * (0.5 + jitter / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


class Verdict(StrEnum):
    """What the push job does with one item of a reply."""

    ACK = "ack"  # the portal confirmed it
    REJECT = "reject"  # permanent: dead letter with the portal's code
    REPAIR = "repair"  # a header's isUpdating was wrong: look the dossier up and resend
    SPLIT = "split"  # a whole batch was refused without per-item results: find the bad ones
    RESEND = "resend"  # the reply did not say what became of it: send again, in a smaller batch


def judge(
    reply: BatchReply, *, batch_size: int, kind: Kind = Kind.HEADER
) -> list[tuple[Verdict, Outcome]]:
    """One verdict per item sent, aligned with the items."""
    if not reply.per_item and batch_size > 1 and reply.outcomes[0].status != OutcomeStatus.OK:
        return [(Verdict.SPLIT, o) for o in reply.outcomes]
    held_step = kind is Kind.STEP and reply.per_item
    return [(_verdict(o, held_step=held_step), o) for o in reply.outcomes]


def _verdict(outcome: Outcome, *, held_step: bool) -> Verdict:
    if outcome.status == OutcomeStatus.OK:
        return Verdict.ACK
    if outcome.status == OutcomeStatus.EXISTS and held_step:
        # A per-item result says the portal holds a step with this identity (MaHoSo,
        # ThoiDiemXuLy, TrangThai), which is this step: a resend after a lost reply, say.
        # Retrying could never succeed. A call-level "exists" names no step: not taken.
        return Verdict.ACK
    if outcome.status in (OutcomeStatus.EXISTS, OutcomeStatus.MISSING):
        return Verdict.REPAIR
    if outcome.status == OutcomeStatus.UNKNOWN:
        return Verdict.RESEND
    return Verdict.REJECT


def parts(
    items: Sequence[T], batch: int, *, attempts: Callable[[T], int], max_attempts: int
) -> list[list[T]]:
    """`items` in order, cut into calls: the more failed attempts an item has, the smaller
    the call it goes in, down to one item alone for its last attempt.

    A batch the portal keeps failing on (an item it chokes on) then shrinks call after call
    until that item goes alone, and the others are sent in other calls instead of being
    parked with it. The size falls geometrically from `batch` (items that never failed) to
    1 at `max_attempts - 1` failed attempts, whatever the two settings.
    """
    cut: list[list[T]] = []
    current: list[T] = []
    limit = batch
    for item in items:
        size = _call_size(batch, attempts(item), max_attempts)
        if current and len(current) >= min(limit, size):
            cut.append(current)
            current, limit = [], batch
        current.append(item)
        limit = min(limit, size)
    if current:
        cut.append(current)
    return cut


def _call_size(batch: int, failed: int, max_attempts: int) -> int:
    if failed <= 0:
        return batch
    if failed >= max_attempts - 1:
        return 1
    return max(1, int(batch ** (1 - failed / (max_attempts - 1))))


def halves(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """Split a refused batch in two to isolate the bad items (log2(n) extra calls).

    Order is kept (steps stay in time order); a one-item list gives an empty left half.
    """
    middle = len(items) // 2
    return list(items[:middle]), list(items[middle:])
