"""Read-only looks at the sandbox's and the state store's SQLite files while they run.

The polls are cheap on purpose (`max(rowid)`, index-backed look-ups): the benchmark shares
the machine with what it measures.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    finally:
        db.close()


def held(sandbox_db: Path) -> tuple[int, int]:
    """(dossiers, steps) the sandbox holds; rows are never deleted, so max(rowid) counts."""
    if not sandbox_db.exists():
        return 0, 0
    try:
        with reading(sandbox_db) as db:
            dossiers = db.execute("SELECT max(rowid) FROM dossiers").fetchone()[0] or 0
            steps = db.execute("SELECT max(rowid) FROM steps").fetchone()[0] or 0
    except sqlite3.OperationalError:
        return 0, 0
    return int(dossiers), int(steps)


def duplicates(sandbox_db: Path) -> dict[str, int]:
    """Repeated steps and header versions applied twice in effect (both must be 0)."""
    with reading(sandbox_db) as db:
        steps = db.execute("SELECT COALESCE(SUM(received_count - 1), 0) FROM steps").fetchone()
        twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT ma_ho_so, hash FROM applications WHERE noop = 0"
            " GROUP BY ma_ho_so, hash HAVING COUNT(*) > 1)"
        ).fetchone()
    return {"duplicate_steps": int(steps[0]), "headers_applied_twice": int(twice[0])}


def span(state_db: Path) -> tuple[float, float, int]:
    """(first ingest, last acknowledgement, acknowledged items) from the outbox."""
    with reading(state_db) as db:
        first = db.execute("SELECT min(created_at) FROM outbox").fetchone()[0]
        last, count = db.execute(
            "SELECT max(updated_at), count(*) FROM outbox WHERE state = 'acked'"
        ).fetchone()
    return float(first or 0.0), float(last or 0.0), int(count)


def acked_between(state_db: Path, start: float, end: float) -> list[float]:
    """Acknowledgement times of items acknowledged in [start, end], sorted."""
    with reading(state_db) as db:
        rows = db.execute(
            "SELECT updated_at FROM outbox WHERE state = 'acked'"
            " AND updated_at >= ? AND updated_at <= ? ORDER BY updated_at",
            (start, end),
        ).fetchall()
    return [r[0] for r in rows]


def ack_times(state_db: Path, dossiers: Sequence[str], since: float) -> dict[str, float]:
    """For each dossier: when its last item queued after `since` was acknowledged.

    A dossier with an item queued after `since` that is not acknowledged yet is left out.
    """
    out: dict[str, float] = {}
    with reading(state_db) as db:
        for start in range(0, len(dossiers), 500):
            part = list(dossiers[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = db.execute(
                "SELECT dossier, max(updated_at), sum(state != 'acked') FROM outbox"
                f" WHERE dossier IN ({marks}) AND created_at >= ? AND state != 'superseded'"
                " GROUP BY dossier",
                [*part, since],
            ).fetchall()
            out.update({d: at for d, at, open_ in rows if not open_})
    return out


def pending(state_db: Path) -> int:
    """Items still pending or in flight."""
    with reading(state_db) as db:
        row = db.execute(
            "SELECT count(*) FROM outbox WHERE state IN ('pending', 'in_flight')"
        ).fetchone()
    return int(row[0])
