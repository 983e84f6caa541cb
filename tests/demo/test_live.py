"""The live activity: dossiers arrive, open ones advance, every change is stamped later."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.demo.generate import init_demo
from connector.demo.live import DemoActivity, run_activity
from tests.demo.conftest import CROSSWALKS, NOW


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "live.db"
    init_demo(target, CROSSWALKS, dossiers=400, seed=5, now=NOW)
    return target


@pytest.fixture
def activity(path: Path) -> Iterator[DemoActivity]:
    live = DemoActivity(path, CROSSWALKS, seed=1)
    yield live
    live.close()


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _latest_stamp(path: Path) -> str:
    rows = _query(path, "SELECT max(modified_at) FROM dossiers UNION ALL "
                  "SELECT max(modified_at) FROM steps")  # fmt: skip
    return str(max(r[0] for r in rows))


def test_tick_adds_dossiers_and_steps(path: Path, activity: DemoActivity) -> None:
    """A tick creates the asked dossiers and appends steps, stamped after everything else."""
    before = _latest_stamp(path)
    (steps_before,) = _query(path, "SELECT count(*) FROM steps")[0]
    created, steps = activity.tick(new_dossiers=3, advances=4, now=NOW + timedelta(minutes=1))
    assert created == 3
    assert _query(path, "SELECT count(*) FROM dossiers")[0][0] == 403
    assert _query(path, "SELECT count(*) FROM steps")[0][0] == steps_before + steps
    assert steps >= 3 + 1
    changed = _query(path, f"SELECT count(*) FROM dossiers WHERE modified_at > '{before}'")
    assert changed[0][0] >= 4


def test_new_dossiers_are_received_with_a_due_date(path: Path, activity: DemoActivity) -> None:
    """Arrivals are received now (online ones after a registration step) and numbered on."""
    activity.tick(new_dossiers=5, advances=0, now=NOW + timedelta(minutes=1))
    rows = _query(path, "SELECT dossier_no, received_at, due_at, status FROM dossiers "
                  "WHERE id > 400 ORDER BY id")  # fmt: skip
    assert len(rows) == 5
    for number, received, due, status in rows:
        assert received == "2026-03-02 11:31:00"
        assert due is not None and due > received
        assert status in {"received", "refused"}
        assert number.split("-")[1] == "260302"
    numbers = [r[0] for r in _query(path, "SELECT dossier_no FROM dossiers")]
    assert len(numbers) == len(set(numbers))


def test_advances_keep_trails_consistent(path: Path, activity: DemoActivity) -> None:
    """After many ticks, each dossier's status is its last step's and steps stay ordered."""
    for minute in range(1, 60):
        activity.tick(new_dossiers=1, advances=8, now=NOW + timedelta(minutes=minute))
    mismatched = _query(
        path,
        "SELECT count(*) FROM dossiers d JOIN steps s ON s.id ="
        " (SELECT max(id) FROM steps WHERE dossier_id = d.id)"
        " WHERE s.status != d.status OR s.modified_at != d.modified_at",
    )
    assert mismatched[0][0] == 0
    disordered = _query(
        path,
        "SELECT count(*) FROM steps a JOIN steps b ON a.dossier_id = b.dossier_id"
        " AND a.id < b.id WHERE a.action_at >= b.action_at OR a.modified_at >= b.modified_at",
    )
    assert disordered[0][0] == 0
    assert _query(path, "SELECT count(*) FROM dossiers WHERE status = 'returned'"
                  " AND returned_at IS NULL")[0][0] == 0  # fmt: skip


def test_stamps_stay_increasing_when_the_clock_lags(path: Path, activity: DemoActivity) -> None:
    """A 'now' earlier than the latest stamp still yields later stamps (the cursor's rule)."""
    before = _latest_stamp(path)
    activity.tick(new_dossiers=1, advances=1, now=NOW - timedelta(days=1))
    new = _query(path, f"SELECT count(*) FROM steps WHERE modified_at > '{before}'")
    assert new[0][0] >= 2


def test_run_activity_is_bounded_by_ticks(path: Path) -> None:
    """With `ticks`, the loop runs that many rounds and returns."""
    run_activity(path, CROSSWALKS, interval=0.0, ticks=3)
    assert _query(path, "SELECT count(*) FROM dossiers")[0][0] == 406


def test_run_activity_stops_on_event(path: Path) -> None:
    """A set stop event ends the loop before any tick."""
    stop = threading.Event()
    stop.set()
    run_activity(path, CROSSWALKS, interval=10.0, stop=stop)
    assert _query(path, "SELECT count(*) FROM dossiers")[0][0] == 400
