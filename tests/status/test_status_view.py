"""render_status: the operator's summary of a snapshot in a terminal."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from connector.status_view import render_status


def _render(snapshot: dict[str, Any]) -> Console:
    console = Console(record=True, width=140, file=io.StringIO(), color_system="truecolor")
    render_status(snapshot, console)
    return console


def test_key_numbers_are_printed(snapshot: dict[str, Any]) -> None:
    """Outbox counts, dead letters and codes, blocked steps, cursor, push and throughput show."""
    text = _render(snapshot).export_text()
    for expected in (
        "1200",
        "5400",
        "dead letters",
        "invalid ×4",
        "400 ×1",
        "blocked steps",
        "dossiers",
        "1234",
        "1.2 s",
        "portal 503",
        "active",
        "250.0 headers/min",
        "1200.0 steps/min",
        "0.1.0",
    ):
        assert expected in text, expected


BOLD_RED = "\x1b[1;31m"


def test_problems_are_highlighted_in_red(snapshot: dict[str, Any]) -> None:
    """A refused session, a paused pull, a current push error and dead letters are red."""
    snapshot["session"] = "refused: login failed"
    snapshot["pull"] = {"state": "paused", "last_error": "source unreachable"}
    snapshot["push"]["last_error"]["at"] = "2026-11-27T04:00:05Z"
    ansi = _render(snapshot).export_text(styles=True)
    for problem in ("refused: login failed", "paused", "  error: source unreachable", "5"):
        assert BOLD_RED + problem in ansi, problem
    assert BOLD_RED + "  last error at 2026-11-27T04:00:05Z: portal 503" in ansi


def test_blocked_steps_point_to_the_command_that_says_why(snapshot: dict[str, Any]) -> None:
    snapshot["blocked_steps"] = 12
    assert "12  why: connector outbox blocked" in _render(snapshot).export_text()
    snapshot["blocked_steps"] = 0
    assert "outbox blocked" not in _render(snapshot).export_text()


def test_healthy_parts_are_not_red(snapshot: dict[str, Any]) -> None:
    """An active session, ok jobs and a push error followed by a success are not red."""
    snapshot["dead_letters"] = 0
    ansi = _render(snapshot).export_text(styles=True)
    for fine in ("active", "ok", "0", "  last error at"):
        assert BOLD_RED + fine not in ansi, fine


def test_minimal_snapshot_does_not_crash() -> None:
    """An empty snapshot renders placeholders rather than raising."""
    text = _render({}).export_text()
    assert "Outbox" in text
    assert "—" in text


def test_malformed_values_are_tolerated() -> None:
    """Wrong types and None in any field still render."""
    snapshot: dict[str, Any] = {
        "outbox": {"header": None, "step": {"pending": "many"}},
        "cursors": {"steps": None},
        "push": {"last_error": "plain text"},
        "dead_letter_codes": [["x"], None],
        "throughput": {"window_s": None},
        "daemon": None,
    }
    text = _render(snapshot).export_text()
    assert "steps" in text
    assert "plain text" in text


def test_stopped_daemon_is_said_so() -> None:
    """A snapshot read from the store while the daemon is down says the daemon is not running."""
    text = _render({"daemon": {"running": False}}).export_text()
    assert "daemon not running" in text


def test_the_age_of_the_figures_is_shown(snapshot: dict[str, Any]) -> None:
    """The summary says how old the shared store figures are, or why there are none."""
    snapshot.update(state_store="ok", figures_as_of="2026-11-27T04:00:00Z", figures_age_s=3.0)
    assert "as of 2026-11-27T04:00:00Z (3.0 s old)" in _render(snapshot).export_text()
    failed = {"state_store": "unavailable: state store counts failed: database is locked"}
    ansi = _render(failed).export_text(styles=True)
    assert BOLD_RED + "unavailable: state store counts failed" in ansi


def test_a_cursor_position_is_printed_whole_at_80_columns(snapshot: dict[str, Any]) -> None:
    """A position is compared with the local system: never cut or wrapped, even at 80
    columns with a long stream name."""
    snapshot["cursors"]["dossiers_of_the_district_people_committees"] = {
        "position": ["2026-11-27T03:59:59.123456Z", 123456789],
        "moved_at": "2026-11-27T04:00:01Z",
        "lag_s": 1.2,
    }
    console = Console(record=True, width=80, file=io.StringIO())
    render_status(snapshot, console)
    text = console.export_text()
    assert "2026-11-27T03:59:59.123456Z / 123456789" in text
    assert "dossiers_of_the_district_people_committees" in text
    assert "…" not in text


def test_the_last_reconciliation_is_shown_and_drift_is_red(snapshot: dict[str, Any]) -> None:
    """What the last sample found is on the summary: drift in red with its kinds, none in
    green; before the first sample, only the job's state."""
    snapshot["reconcile"] = {"state": "idle", "last_error": None, "report": {}}
    assert "last sample" not in _render(snapshot).export_text()
    report = {"at": "2026-11-27T04:00:20Z", "checked": 20, "drift": {"status": 2, "steps": 1}}
    snapshot["reconcile"] = {"state": "ok", "last_error": None, "report": report}
    ansi = _render(snapshot).export_text(styles=True)
    assert "last sample 2026-11-27T04:00:20Z: 20 checked, " in _render(snapshot).export_text()
    assert BOLD_RED + "3 drifted (status 2, steps 1)" in ansi
    report["drift"] = {}
    text = _render(snapshot).export_text()
    assert "20 checked, no drift" in text
