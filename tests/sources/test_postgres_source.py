"""SqlSource against PostgreSQL, with the stream SQL mappings/README.md advises for it:
the row-value cursor, the hold-back clause, and selection parameters cast to the type of
the column they are compared with. Runs when `CONNECTOR_TEST_POSTGRES_URL` names a
database the tests may write to (CI starts one); the tables live in a schema of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, text

from connector.core.records import Cursor
from connector.errors import SourceError
from connector.ports import Selection
from connector.sources.sql import SqlSource

PG_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="CONNECTOR_TEST_POSTGRES_URL is not set")

NOW = datetime.now(UTC).replace(microsecond=0)
HOLD_BACK = "AND d.modified_at <= now() - interval '30 seconds'"
#: A dossiers stream as mappings/README.md advises for PostgreSQL: received_at is Vietnam
#: wall time without a zone, modified_at a timestamptz.
STREAM: dict[str, Any] = {
    "key": "id",
    "cursor": ["modified_at", "id"],
    "start": ["1970-01-01T00:00:00+00:00", 0],
    "time_format": "%Y-%m-%d %H:%M:%S",
    "changed_time_format": "%Y-%m-%d %H:%M:%S.%f+00",
    "changed_timezone": "UTC",
    "pull": f"""
SELECT d.id, d.dossier_no, d.agency_code, d.received_at, d.modified_at
FROM onestop.dossiers d
WHERE (d.modified_at, d.id) > (:c0, :c1) {HOLD_BACK}
ORDER BY d.modified_at, d.id
LIMIT :limit
""",
    "select": """
SELECT d.id, d.dossier_no FROM onestop.dossiers d
WHERE d.id > :after
  AND (CAST(:dossier AS TEXT) IS NULL OR d.dossier_no = :dossier)
  AND (CAST(:since AS TIMESTAMP) IS NULL OR d.received_at >= :since)
  AND (CAST(:until AS TIMESTAMP) IS NULL OR d.received_at < :until)
  AND (CAST(:changed_since AS TIMESTAMPTZ) IS NULL OR d.modified_at >= :changed_since)
  AND (CAST(:changed_until AS TIMESTAMPTZ) IS NULL OR d.modified_at < :changed_until)
  AND (CAST(:agency AS TEXT) IS NULL OR d.agency_code = :agency)
  AND (CAST(:procedure AS TEXT) IS NULL OR d.procedure_code = :procedure)
ORDER BY d.id
LIMIT :limit
""",
    "select_dossier": """
SELECT d.id, d.dossier_no FROM onestop.dossiers d
WHERE d.dossier_no = :dossier AND d.id > :after
ORDER BY d.id
LIMIT :limit
""",
}


@pytest.fixture
def db() -> Iterator[Engine]:
    """60 dossiers: received on 60 successive days, changed 2 hours ago in 7 clusters."""
    assert PG_URL is not None
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS onestop CASCADE"))
        conn.execute(text("CREATE SCHEMA onestop"))
        conn.execute(
            text(
                "CREATE TABLE onestop.dossiers (id integer PRIMARY KEY, dossier_no text NOT NULL,"
                " agency_code text NOT NULL, procedure_code text NOT NULL,"
                " received_at timestamp NOT NULL, modified_at timestamptz NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX ON onestop.dossiers (modified_at, id)"))
        conn.execute(
            text("INSERT INTO onestop.dossiers VALUES (:id, :no, :agency, :proc, :rec, :mod)"),
            [
                {
                    "id": i,
                    "no": f"000.00.01.H26-260101-{i:04d}",
                    "agency": "HN-A" if i % 2 else "HN-B",
                    "proc": "HN-HT-01" if i % 3 else "HN-HT-02",
                    "rec": datetime(2026, 1, 1, 8, 0) + timedelta(days=i),
                    "mod": NOW - timedelta(hours=2) + timedelta(minutes=i % 7),
                }
                for i in range(1, 61)
            ],
        )
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA onestop CASCADE"))
    engine.dispose()


@pytest.fixture
def source(db: Engine) -> Iterator[SqlSource]:
    assert PG_URL is not None
    opened = SqlSource(PG_URL, {"dossiers": STREAM}, timezone="Asia/Ho_Chi_Minh")
    yield opened
    opened.close()


def _drain(source: SqlSource, cursor: Cursor | None) -> tuple[list[int], Cursor | None]:
    """Pages of 7 until the end; the cursor goes through JSON, as the state store keeps it."""
    ids: list[int] = []
    for _ in range(100):
        page = source.pull("dossiers", cursor, 7)
        if not page.records:
            return ids, cursor
        ids += [r["id"] for r in page.records]
        assert page.cursor is not None
        cursor = tuple(orjson.loads(orjson.dumps(list(page.cursor))))
    raise AssertionError("the pull never ended")


def _selected(source: SqlSource, selection: Selection) -> list[int]:
    return [r["id"] for page in source.select("dossiers", selection, 10) for r in page]


def test_the_pull_reads_every_row_once_with_the_cursor_kept_as_json(source: SqlSource) -> None:
    ids, cursor = _drain(source, None)
    assert sorted(ids) == list(range(1, 61)) and len(ids) == 60
    assert _drain(source, cursor) == ([], cursor)


def test_the_hold_back_clause_leaves_a_late_commit_for_a_later_pull(
    source: SqlSource, db: Engine
) -> None:
    """A change stamped 10 s ago commits after one stamped 5 s ago: with the clause the
    pull reads neither yet; once both are older than 30 s it reads both, in stamp order."""
    _, cursor = _drain(source, None)
    with db.begin() as conn:
        for dossier, seconds in ((8, 5), (7, 10)):
            conn.execute(
                text("UPDATE onestop.dossiers SET modified_at = now() - :ago WHERE id = :id"),
                {"ago": timedelta(seconds=seconds), "id": dossier},
            )
    assert _drain(source, cursor)[0] == []
    with db.begin() as conn:  # a minute later, as far as the query can tell
        conn.execute(
            text(
                "UPDATE onestop.dossiers SET modified_at = modified_at - interval '60 s'"
                " WHERE id IN (7, 8)"
            )
        )
    assert _drain(source, cursor)[0] == [7, 8]


def test_every_selection_narrows_with_parameters_cast_to_their_columns(
    source: SqlSource,
) -> None:
    """Dates without a zone are Vietnam wall time (received_at); aware times are converted;
    change times are written in UTC for the timestamptz column."""
    assert _selected(source, Selection(dossier="000.00.01.H26-260101-0042")) == [42]
    one = Selection(dossier="000.00.01.H26-260101-0042", agency="elsewhere")  # by `select`
    assert _selected(source, one) == []
    both = Selection(agency="HN-B", procedure="HN-HT-02")
    assert _selected(source, both) == list(range(6, 61, 6))
    received = Selection(since=datetime(2026, 1, 11), until=datetime(2026, 1, 14, 8, 0))
    assert _selected(source, received) == [10, 11, 12]
    aware = Selection(since=datetime(2026, 1, 11, 1, 0, tzinfo=UTC))  # 08:00 in Hà Nội
    assert _selected(source, aware)[:2] == [10, 11]
    cluster = NOW - timedelta(hours=2) + timedelta(minutes=3)
    changed = Selection(changed_since=cluster, changed_until=cluster + timedelta(minutes=1))
    assert _selected(source, changed) == [i for i in range(1, 61) if i % 7 == 3]


def test_a_parameter_compared_only_with_null_must_be_cast(db: Engine) -> None:
    """What the casts are for: without one PostgreSQL cannot type the parameter, and the
    resync fails with the driver's reason (cast to TEXT where the column is a timestamp,
    it fails too: `timestamp >= text`)."""
    assert PG_URL is not None
    for condition in (
        "(:since IS NULL OR d.received_at >= :since)",
        "(CAST(:since AS TEXT) IS NULL OR d.received_at >= :since)",
    ):
        stream = {**STREAM, "select": STREAM["select"].replace(
            "(CAST(:since AS TIMESTAMP) IS NULL OR d.received_at >= :since)", condition
        )}  # fmt: skip
        source = SqlSource(PG_URL, {"dossiers": stream}, timezone="Asia/Ho_Chi_Minh")
        try:
            with pytest.raises(SourceError, match="stream dossiers: ProgrammingError"):
                _selected(source, Selection(since=datetime(2026, 1, 11)))
        finally:
            source.close()
