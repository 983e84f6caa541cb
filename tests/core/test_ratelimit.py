"""The push rate limit's token bucket, on explicit times."""

from __future__ import annotations

import pytest

from connector.core.ratelimit import TokenBucket


def test_a_full_bucket_lets_a_burst_through_then_makes_the_next_batch_wait() -> None:
    """One second's worth goes at once; the next batch waits for its own tokens."""
    bucket = TokenBucket(100.0, now=0.0)
    assert bucket.reserve(100, 0.0) == 0.0
    assert bucket.reserve(50, 0.0) == pytest.approx(0.5)


def test_a_batch_larger_than_the_bucket_waits_in_proportion() -> None:
    """A batch bigger than the burst is not refused: it waits until the rate allows it."""
    bucket = TokenBucket(10.0, now=0.0)
    assert bucket.reserve(30, 0.0) == pytest.approx(2.0)


def test_the_long_run_rate_never_exceeds_the_limit() -> None:
    """Sending whenever allowed, the items sent by time t stay within rate × t + burst."""
    bucket = TokenBucket(200.0, now=0.0)
    now, sent = 0.0, 0
    for _ in range(500):
        now += bucket.reserve(37, now)
        sent += 37
        assert sent <= 200.0 * now + 200.0 + 1e-6
    assert sent / now == pytest.approx(200.0, rel=0.02)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    """A long pause does not bank more than one burst."""
    bucket = TokenBucket(5.0, burst=10.0, now=0.0)
    assert bucket.reserve(10, 3600.0) == 0.0
    assert bucket.reserve(5, 3600.0) == pytest.approx(1.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_a_rate_that_is_not_a_positive_number_is_refused(rate: float) -> None:
    """Zero (meaning unlimited) is the caller's case to handle, not the bucket's."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate)
