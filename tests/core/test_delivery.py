"""Delivery decisions: backoff, parking, verdicts and splitting."""

from __future__ import annotations

import pytest

from connector.core.delivery import (
    Park,
    Retry,
    RetryPolicy,
    Verdict,
    after_throttle,
    after_transient,
    halves,
    judge,
    outage_wait,
    parts,
)
from connector.core.records import BatchReply, Kind, Outcome, OutcomeStatus

POLICY = RetryPolicy(max_attempts=5, initial=10.0, cap=100.0, park_after=3600.0)


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)],
)
def test_backoff_doubles_from_initial(attempts: int, expected: float) -> None:
    """Each failed attempt doubles the wait (at jitter 1.0 the full window is used)."""
    decision = after_transient(POLICY, attempts=attempts, created_at=0, now=100, jitter=1.0)
    assert decision == Retry(at=100 + expected)


def test_backoff_is_capped() -> None:
    """The wait never exceeds the cap however many attempts failed."""
    policy = RetryPolicy(max_attempts=50, initial=10.0, cap=100.0, park_after=1e9)
    decision = after_transient(policy, attempts=20, created_at=0, now=0, jitter=1.0)
    assert decision == Retry(at=100.0)


def test_retry_after_is_a_floor() -> None:
    """The portal's Retry-After wins over a shorter backoff."""
    decision = after_transient(POLICY, attempts=1, created_at=0, now=0, retry_after=42)
    assert decision == Retry(at=42)


def test_parks_after_max_attempts() -> None:
    """An item that failed max_attempts times is parked for the operator."""
    decision = after_transient(POLICY, attempts=5, created_at=0, now=10)
    assert isinstance(decision, Park)
    assert "5 attempts" in decision.reason


def test_parks_after_max_age() -> None:
    """An item failing for longer than park_after is parked even with attempts left."""
    decision = after_transient(POLICY, attempts=1, created_at=0, now=4000)
    assert isinstance(decision, Park)


def test_throttling_never_parks() -> None:
    """After a 429 the item waits again, whatever its attempts or age: not its fault."""
    decision = after_throttle(POLICY, attempts=POLICY.max_attempts, now=10**6, retry_after=60)
    assert decision == Retry(at=10**6 + POLICY.cap * 0.75)  # the capped backoff beats 60 s


def test_throttling_waits_at_least_retry_after_without_growing_the_backoff() -> None:
    """Retry-After is a floor; the backoff is the one of the failures counted so far."""
    assert after_throttle(POLICY, attempts=0, now=0, retry_after=3600) == Retry(at=3600)
    assert after_throttle(POLICY, attempts=2, now=0, jitter=1.0) == Retry(at=20.0)


def test_one_failed_call_is_no_outage_and_a_run_of_them_waits_longer_up_to_a_minute() -> None:
    """A single failure holds nothing; from the second in a row the wait doubles from
    `initial`, bounded by the policy's cap and by a minute between probes."""
    assert outage_wait(POLICY, 0) is None
    assert outage_wait(POLICY, 1) is None
    assert [outage_wait(POLICY, n) for n in (2, 3, 4, 5)] == [10.0, 20.0, 40.0, 60.0]
    assert outage_wait(POLICY, 50) == 60.0
    short = RetryPolicy(max_attempts=5, initial=1.0, cap=4.0)
    assert [outage_wait(short, n) for n in (2, 3, 4, 5)] == [1.0, 2.0, 4.0, 4.0]


def test_policy_rejects_nonsense() -> None:
    """A policy whose cap is below its initial wait is refused when built."""
    with pytest.raises(ValueError):
        RetryPolicy(initial=10, cap=1)


def _reply(per_item: bool, *statuses: OutcomeStatus) -> BatchReply:
    return BatchReply(per_item=per_item, outcomes=tuple(Outcome(status=s) for s in statuses))


def test_per_item_outcomes_decide_each_item() -> None:
    """With per-item results, each item gets its own verdict."""
    reply = _reply(
        True, OutcomeStatus.OK, OutcomeStatus.REJECTED, OutcomeStatus.EXISTS, OutcomeStatus.MISSING
    )
    verdicts = [v for v, _ in judge(reply, batch_size=4)]
    assert verdicts == [Verdict.ACK, Verdict.REJECT, Verdict.REPAIR, Verdict.REPAIR]


def test_a_step_the_portal_already_holds_is_acknowledged() -> None:
    """An already-exists code in a per-item result for a step means the portal holds that
    very step (a step's identity is its dossier, time and status): retrying it could never
    succeed. For a header it means isUpdating was wrong, and the dossier is looked up."""
    reply = _reply(True, OutcomeStatus.EXISTS, OutcomeStatus.MISSING)
    steps = [v for v, _ in judge(reply, batch_size=2, kind=Kind.STEP)]
    headers = [v for v, _ in judge(reply, batch_size=2, kind=Kind.HEADER)]
    assert steps == [Verdict.ACK, Verdict.REPAIR]
    assert headers == [Verdict.REPAIR, Verdict.REPAIR]
    # A call-level "exists" names no step: it confirms nothing.
    whole = _reply(False, OutcomeStatus.EXISTS)
    assert [v for v, _ in judge(whole, batch_size=1, kind=Kind.STEP)] == [Verdict.REPAIR]


def test_whole_batch_refusal_is_split() -> None:
    """A batch refused without per-item results is split to find the bad items."""
    reply = _reply(False, *[OutcomeStatus.REJECTED] * 3)
    assert {v for v, _ in judge(reply, batch_size=3)} == {Verdict.SPLIT}


def test_single_item_refusal_is_final() -> None:
    """A refused batch of one item needs no split: the item is rejected."""
    reply = _reply(False, OutcomeStatus.REJECTED)
    assert [v for v, _ in judge(reply, batch_size=1)] == [Verdict.REJECT]


def test_unknown_outcome_is_resent() -> None:
    """An item the reply left undecided is sent again; the decided ones keep their verdict."""
    reply = _reply(True, OutcomeStatus.OK, OutcomeStatus.UNKNOWN, OutcomeStatus.REJECTED)
    verdicts = [v for v, _ in judge(reply, batch_size=3)]
    assert verdicts == [Verdict.ACK, Verdict.RESEND, Verdict.REJECT]


def test_halves_of_one_item_leave_the_left_empty() -> None:
    """The push job skips the empty half when it re-delivers a single unknown item."""
    assert halves(["only"]) == ([], ["only"])


def test_whole_batch_success_acks_all() -> None:
    """A success without per-item results acknowledges every item."""
    reply = _reply(False, OutcomeStatus.OK, OutcomeStatus.OK)
    assert [v for v, _ in judge(reply, batch_size=2)] == [Verdict.ACK, Verdict.ACK]


def test_halves_cover_everything_once() -> None:
    """Splitting keeps every item exactly once and in order."""
    left, right = halves([1, 2, 3, 4, 5])
    assert left + right == [1, 2, 3, 4, 5]
    assert left and right


def test_items_that_failed_go_in_smaller_calls_until_one_goes_alone() -> None:
    """The call an item goes in shrinks geometrically with its failed attempts, to one
    item for its last attempt; items that never failed fill whole batches; order is kept."""
    tried = {"d": 2}  # attempts per item; the others have none

    def cut(items: list[str], batch: int, failed: int | None = None) -> list[list[str]]:
        def attempts(item: str) -> int:
            return tried.get(item, 0) if failed is None else failed

        return parts(items, batch, attempts=attempts, max_attempts=5)

    items = list("abcdefghij")
    # 16 items a call, but the one with "d" holds at most 16 ** (1 - 2/4) = 4.
    assert cut(items, 16) == [["a", "b", "c", "d"], ["e", "f", "g", "h", "i", "j"]]
    assert cut(items, 16, failed=0) == [items]
    assert cut(items, 16, failed=1) == [items[:8], items[8:]]  # 16 ** (3/4)
    assert cut(items, 16, failed=4) == [[item] for item in items]  # the last attempt
    assert cut(items, 16, failed=40) == [[item] for item in items]
    assert cut([], 16) == []
