"""A change that commits after a later-stamped one: missed by a plain cursor, caught by the
hold-back clause mappings/README.md recommends ("Changes that commit late").

The local system's clock cannot be moved, so "a minute later" is played by moving every
stamp a minute back, which is the same to a query comparing them with `now`.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.core.records import Cursor
from connector.sources.sql import SqlSource

#: The clause of mappings/README.md for SQLite with the demo's stamps (UTC, ISO, 'Z').
HOLD_BACK = "AND d.modified_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 seconds')\n"


def _sql(path: Path, sql: str, *params: Any) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def _ago(seconds: float) -> str:
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=seconds)
    return moment.isoformat(timespec="microseconds") + "Z"


def _stamp(path: Path, dossier_id: int, seconds_ago: float) -> None:
    """A change to one dossier, stamped `seconds_ago` (when its transaction began)."""
    _sql(path, "UPDATE dossiers SET modified_at = ? WHERE id = ?", _ago(seconds_ago), dossier_id)


def _a_minute_later(path: Path) -> None:
    _sql(
        path,
        "UPDATE dossiers SET modified_at = strftime('%Y-%m-%dT%H:%M:%fZ', modified_at, "
        "'-60 seconds') WHERE modified_at > ?",
        _ago(120),
    )


def _drain(source: SqlSource, cursor: Cursor | None) -> tuple[list[int], Cursor | None]:
    """Ids pulled from `cursor` on, and the cursor after them (as the pull job keeps it)."""
    ids: list[int] = []
    for _ in range(100):
        page = source.pull("dossiers", cursor, 50)
        if not page.records:
            return ids, cursor
        ids += [int(record["id"]) for record in page.records]
        cursor = page.cursor
    raise AssertionError("the stream never ended")


@pytest.fixture(params=[False, True], ids=["plain", "hold-back"])
def hold_back(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def source(hold_back: bool, db_path: Path, streams: dict[str, Any]) -> Iterator[SqlSource]:
    streams = copy.deepcopy(streams)
    if hold_back:
        pull = streams["dossiers"]["pull"]
        streams["dossiers"]["pull"] = pull.replace("ORDER BY", HOLD_BACK + "ORDER BY", 1)
    made = SqlSource(f"sqlite:///{db_path}", streams, timezone="Asia/Ho_Chi_Minh")
    yield made
    made.close()


def test_a_late_commit_is_missed_without_the_hold_back_and_caught_with_it(
    source: SqlSource, db_path: Path, hold_back: bool
) -> None:
    """Dossier 7's change began 20 s ago and commits last; dossier 8's began 5 s ago and
    committed first. A cursor past 8 never sees 7 again, unless the pull left the last
    30 s alone: then both come, in stamp order, once they are 30 s old."""
    ids, cursor = _drain(source, None)
    assert sorted(ids) == list(range(1, 201))  # the backfill: all old enough

    _stamp(db_path, 8, seconds_ago=5)
    first, cursor = _drain(source, cursor)
    _stamp(db_path, 7, seconds_ago=20)  # the late commit, stamped before 8
    second, cursor = _drain(source, cursor)
    _a_minute_later(db_path)
    third, cursor = _drain(source, cursor)

    if hold_back:
        assert (first, second, third) == ([], [], [7, 8])
    else:
        assert (first, second, third) == ([8], [], [])  # 7's change is lost for good
