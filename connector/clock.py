"""The system clock behind the `Clock` port; tests inject their own."""

from __future__ import annotations

import time


class SystemClock:
    """Wall time for timestamps, the monotonic clock for intervals and timeouts."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
