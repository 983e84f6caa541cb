"""`connector demo init`: create the demo one-stop database with ~60 days of history.

Rows are streamed to SQLite in chunks, so a million dossiers need no more memory than a
thousand.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from connector.demo.catalogue import UNLISTED, Catalogue, load_catalogue
from connector.demo.dossier import DossierFactory, Ids, Rows, invalid_kind, new_rows
from connector.demo.schema import DDL, connect, insert_sql, stamp, vn_now

HISTORY_DAYS = 60
CHUNK = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSummary:
    """What a demo database holds, computed from the database itself."""

    path: str
    dossiers: int
    steps: int
    invalid: int
    on_time_ratio: float  # among finished dossiers with a due date
    by_status: Mapping[str, int] = field(default_factory=dict)


def init_demo(
    db_path: Path,
    crosswalk_dir: Path,
    *,
    dossiers: int = 3000,
    seed: int = 7,
    now: datetime | None = None,
    overwrite: bool = False,
) -> DemoSummary:
    """Create the demo database; raises FileExistsError unless `overwrite`.

    `now` (timezone-aware, default the system clock) is the end of the history: every
    business time is at or before it. The same seed and `now` give the same database.
    """
    _clear(db_path, overwrite=overwrite)
    catalogue = load_catalogue(crosswalk_dir)
    conn = connect(db_path)
    try:
        conn.executescript(DDL)
        _write_catalogue(conn, catalogue)
        _write_history(conn, catalogue, dossiers, random.Random(seed), vn_now(now))
        return summarise(conn, db_path)
    finally:
        conn.close()


def _clear(db_path: Path, *, overwrite: bool) -> None:
    if db_path.exists() and not overwrite:
        raise FileExistsError(f"{db_path} exists; pass overwrite to replace it")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.parent.mkdir(parents=True, exist_ok=True)


def _write_catalogue(conn: sqlite3.Connection, catalogue: Catalogue) -> None:
    conn.executemany(
        "INSERT INTO agencies (local_code, name, level) VALUES (?, ?, ?)",
        [(a.local_code, a.name, a.level) for a in catalogue.agencies],
    )
    conn.executemany(
        "INSERT INTO procedures (local_code, name, level, domain_code, domain_name,"
        " duration_days) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (p.local_code, p.name, p.level, p.domain_code, p.domain_name, p.duration_days)
            for p in (*catalogue.procedures, UNLISTED)
        ],
    )


def _write_history(
    conn: sqlite3.Connection,
    catalogue: Catalogue,
    count: int,
    rng: random.Random,
    now: datetime,
) -> None:
    sequences: dict[tuple[str, str], int] = {}

    def sequence(agency: str, day: str) -> int:
        sequences[agency, day] = sequences.get((agency, day), 0) + 1
        return sequences[agency, day]

    def stamper(at: datetime) -> str:
        return stamp(at.replace(microsecond=rng.randrange(1_000_000)))

    factory = DossierFactory(catalogue, ids=Ids(), sequence=sequence)
    rows = new_rows()
    for ordinal, received in enumerate(_arrivals(rng, count, now)):
        factory.make(rows, rng, received=received, now=now, invalid=invalid_kind(ordinal),
                     stamper=stamper)  # fmt: skip
        if len(rows["dossiers"]) >= CHUNK:
            write_rows(conn, rows)
            rows = new_rows()
    write_rows(conn, rows)


def _arrivals(rng: random.Random, count: int, now: datetime) -> Iterator[datetime]:
    """Reception times spread evenly over the history, within office hours, never after now."""
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=0, minute=0, second=0)
    for ordinal in range(count):
        day = start + timedelta(days=int(HISTORY_DAYS * (ordinal + rng.random()) / count))
        received = day + timedelta(hours=rng.uniform(7.5, 17.0))
        yield received if received <= now else now - timedelta(minutes=rng.uniform(1, 90))


def write_rows(conn: sqlite3.Connection, rows: Rows) -> None:
    """Insert a batch of rows of every table in one short transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, batch in rows.items():
            if batch:
                conn.executemany(insert_sql(table), batch)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def summarise(conn: sqlite3.Connection, db_path: Path) -> DemoSummary:
    """Counts, invalid records and the on-time ratio, read back from the database."""
    (dossiers,) = conn.execute("SELECT count(*) FROM dossiers").fetchone()
    (steps,) = conn.execute("SELECT count(*) FROM steps").fetchone()
    (invalid,) = conn.execute(
        "SELECT count(*) FROM dossiers WHERE procedure_code = ? OR due_at IS NULL",
        (UNLISTED.local_code,),
    ).fetchone()
    (ratio,) = conn.execute(
        "SELECT avg(finished_at <= due_at) FROM dossiers"
        " WHERE finished_at IS NOT NULL AND due_at IS NOT NULL"
    ).fetchone()
    by_status = dict(conn.execute("SELECT status, count(*) FROM dossiers GROUP BY status"))
    return DemoSummary(
        path=str(db_path),
        dossiers=dossiers,
        steps=steps,
        invalid=invalid,
        on_time_ratio=float(ratio or 0.0),
        by_status=by_status,
    )
