"""Which fault, if any, a portal request gets: the decision, separated from acting on it.

The draw uses a seeded RNG, so a failing run replays with the same faults. An outage window
answers 503 to every portal call until it ends. The responses that carry the faults are in
`connector.sandbox.responses`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from connector.sandbox.config import SandboxConfig, check_faults

#: The fault drawn during an outage window (answered as a 503).
OUTAGE = "outage"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    """The fault knobs that may change while the sandbox runs."""

    fault_rate: float
    faults: tuple[str, ...]
    stall_seconds: float
    slow_seconds: float
    retry_after: float
    reset_after_apply: bool

    def __post_init__(self) -> None:
        check_faults(self.fault_rate, self.faults)
        for name in ("stall_seconds", "slow_seconds", "retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def from_config(cls, config: SandboxConfig) -> FaultSettings:
        """The settings the sandbox starts with."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def changed(self, changes: Mapping[str, Any]) -> FaultSettings:
        """A copy with `changes` applied; unknown names and bad values raise ValueError."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown fault setting(s): {sorted(unknown)}")
        return replace(self, **{name: _coerce(name, value) for name, value in changes.items()})

    def as_dict(self) -> dict[str, Any]:
        """The settings in JSON form (for the admin endpoint's reply)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FaultPlan:
    """Draws the fault for each portal request and counts what it injected."""

    def __init__(self, settings: FaultSettings, *, seed: int, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._clock = clock
        self._outage_until = 0.0

    def draw(self) -> str | None:
        """The fault for the next request ("503", "stall", ... or OUTAGE), or None."""
        fault = self._pick()
        if fault is not None:
            self.injected[fault] += 1
        return fault

    def start_outage(self, seconds: float) -> None:
        """Answer 503 to every portal call for the next `seconds`."""
        self._outage_until = self._clock() + seconds

    def _pick(self) -> str | None:
        if self._clock() < self._outage_until:
            return OUTAGE
        rate = self.settings.fault_rate
        if rate <= 0 or self._rng.random() >= rate:
            return None
        return self._rng.choice(self.settings.faults)


def _coerce(name: str, value: Any) -> Any:
    """A JSON value as the setting's type; the dataclass then checks its range."""
    if name == "faults":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("faults must be a list of fault kinds")
        return tuple(value)
    if name == "reset_after_apply":
        if not isinstance(value, bool):
            raise ValueError("reset_after_apply must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)
