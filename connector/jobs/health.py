"""What each job last did, for /status and /readyz. Runtime state, not configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.core.hold import PortalHold


@dataclass(slots=True)
class JobHealth:
    """The last outcome of one job. `state` is 'ok', 'idle', 'paused', 'retrying' (a transient
    failure, or waiting for the portal's Retry-After) or 'refused'."""

    state: str = "idle"
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def succeeded(self, now: float) -> None:
        self.state = "ok"
        self.last_run_at = now
        self.last_success_at = now

    def failed(self, now: float, message: str, *, state: str = "paused") -> None:
        self.state = state
        self.last_run_at = now
        self.last_error = message
        self.last_error_at = now

    def as_dict(self) -> dict[str, Any]:
        error = None
        if self.last_error is not None:
            error = {"at": self.last_error_at, "message": self.last_error}
        return {
            "state": self.state,
            "last_run_at": self.last_run_at,
            "last_success_at": self.last_success_at,
            "last_error": error,
        }


@dataclass(slots=True)
class Health:
    """Every job's health, plus per-stream 'caught up' flags for the lag figure, the
    portal's Retry-After hold, which every job calling the portal shares, and how many push
    calls failed in a row (the push job keeps it, the status shows it)."""

    pull: JobHealth = field(default_factory=JobHealth)
    push: JobHealth = field(default_factory=JobHealth)
    reconcile: JobHealth = field(default_factory=JobHealth)
    caught_up: dict[str, bool] = field(default_factory=dict)
    reconcile_report: dict[str, Any] = field(default_factory=dict)
    portal_hold: PortalHold = field(default_factory=PortalHold)
    portal_failures: int = 0
