"""The push rate limit: a token bucket on the monotonic clock, as a pure decision.

`reserve` takes the tokens for a batch at once and says how long to wait before sending
it, so a batch larger than the bucket still goes (after a proportionally longer wait) and
the long-run rate never exceeds the limit. The caller owns the clock and the sleeping.
"""

from __future__ import annotations

import math


class TokenBucket:
    """`rate` items per second with bursts of at most `burst` items (default one second)."""

    def __init__(self, rate: float, *, burst: float | None = None, now: float = 0.0) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be a finite number > 0, not {rate!r}")
        self.rate = rate
        self.burst = burst if burst is not None else rate
        if not math.isfinite(self.burst) or self.burst <= 0:
            raise ValueError(f"burst must be a finite number > 0, not {self.burst!r}")
        self._tokens = self.burst
        self._at = now

    def reserve(self, items: int, now: float) -> float:
        """Take `items` tokens; the seconds to wait before sending them (0 when available)."""
        if now > self._at:  # a monotonic clock never goes back; ignore it if one does
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        self._tokens -= items
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
