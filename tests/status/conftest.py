"""A full status snapshot shared by the status, metrics and view tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def snapshot() -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "daemon": {"started_at": "2026-11-27T04:00:00Z", "uptime_s": 12.3},
        "outbox": {
            "header": {
                "pending": 3,
                "in_flight": 0,
                "acked": 1200,
                "rejected": 1,
                "invalid": 4,
                "parked": 0,
                "superseded": 2,
            },
            "step": {"pending": 10, "acked": 5400, "parked": 2},
        },
        "dead_letters": 5,
        "blocked_steps": 7,
        "oldest_pending_age_s": 2.5,
        "cursors": {
            "dossiers": {
                "position": ["2026-11-27T03:59:59.000000Z", 1234],
                "moved_at": "2026-11-27T04:00:01Z",
                "lag_s": 1.2,
            }
        },
        "pull": {"state": "ok", "last_run_at": "2026-11-27T04:00:10Z", "last_error": None},
        "push": {
            "state": "ok",
            "last_success_at": "2026-11-27T04:00:00Z",
            "last_error": {"at": "2026-11-27T03:58:00Z", "message": "portal 503"},
            "failed_calls_in_a_row": 3,
        },
        "session": "active",
        "throughput": {"window_s": 300, "headers_per_min": 250.0, "steps_per_min": 1200.0},
        "dead_letter_codes": [["invalid", 4], ["400", 1]],
    }
