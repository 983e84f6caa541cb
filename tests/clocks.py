"""A clock for tests of the jobs: wall and monotonic time that move only when told."""

from __future__ import annotations


class ManualClock:
    """The `Clock` port, moved by hand: `advance` moves both times, `jump` the wall alone."""

    def __init__(self, *, wall: float = 1_750_000_000.0, mono: float = 10_000.0) -> None:
        self.wall = wall
        self.mono = mono

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def jump(self, seconds: float) -> None:
        """The wall clock alone moves, as an operator or a bad NTP server would move it."""
        self.wall += seconds
