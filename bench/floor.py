"""The store's floor: what the outbox's writes and reads cost in raw sqlite3, per dossier.

`backfill.py` measures the connector; this measures the least any code could spend on the
same store work, so the two can be compared. No mapping, no HTTP, no SQLAlchemy, no
Python objects per row: each page of dossiers is one `executemany`, each claim one
`SELECT` by the due index, each settle one `UPDATE ... WHERE id IN (...)`.

Two layouts are measured on the same dossiers (payload sizes as the benchmark's, about
5.5 steps a dossier):

- `per item`: the connector's outbox as it is, created from `connector.store.schema` (one
  row per header version or step, with all its indexes); headers are claimed and settled,
  their dossiers made known, then the steps;
- `per dossier`: one row holding a dossier's header and steps, with three indexes (due,
  dossier, source record): the smallest layout that still claims by due time and finds
  a dossier's messages.

    python bench/floor.py --dossiers 20000

Prints CPU ms per dossier for each stage and layout; the last line compares the totals.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from connector.store.schema import metadata

HEADER_BYTES, STEP_BYTES = 1618, 319  # mean payloads of the benchmark's outbox

PER_DOSSIER_DDL = """
create table outbox(
  id integer primary key autoincrement, dossier text not null, source_ref text not null,
  payload blob not null, content_hash text not null, state text not null,
  attempts integer not null, next_attempt_at real not null, last_code text not null,
  last_message text not null, created_at real not null, updated_at real not null);
create index ix_due on outbox(state, next_attempt_at);
create index ix_dossier on outbox(dossier);
create index ix_ref on outbox(source_ref);
"""

ITEM_INSERT = (
    "insert into outbox(kind, key, dossier, source_ref, payload, content_hash, state,"
    " attempts, next_attempt_at, event_time, last_code, last_message, created_at, updated_at)"
    " values (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, '', '', ?, ?)"
)
DOSSIER_INSERT = (
    "insert into outbox(dossier, source_ref, payload, content_hash, state, attempts,"
    " next_attempt_at, last_code, last_message, created_at, updated_at)"
    " values (?, ?, ?, ?, 'pending', 0, ?, '', '', ?, ?)"
)


def steps_of(number: int) -> int:
    return 6 if number % 2 else 5


def item_rows(dossiers: int, now: float) -> list[tuple[Any, ...]]:
    header, step = os.urandom(HEADER_BYTES), os.urandom(STEP_BYTES)
    rows: list[tuple[Any, ...]] = []
    for d in range(dossiers):
        code = f"000.00.01.H26-220713-{d:06d}"
        rows.append(("header", code, code, f"dossiers:{d}", header, "h" * 32, now, "", now, now))
        for s in range(steps_of(d)):
            at = f"2022071{s}080000"
            key = f"{code}|{at}|{s}"
            rows.append(("step", key, code, f"steps:{d}:{s}", step, "h" * 32, now, at, now, now))
    return rows


def dossier_rows(dossiers: int, now: float) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for d in range(dossiers):
        payload = os.urandom(HEADER_BYTES + steps_of(d) * STEP_BYTES)
        code = f"000.00.01.H26-220713-{d:06d}"
        rows.append((code, f"dossiers:{d}", payload, "h" * 32, now, now, now))
    return rows


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=normal")
    return conn


def insert(conn: sqlite3.Connection, sql: str, rows: Sequence[Any], per_page: int) -> None:
    for start in range(0, len(rows), per_page):
        conn.execute("begin immediate")
        conn.executemany(sql, rows[start : start + per_page])
        conn.execute("commit")


def drain(
    conn: sqlite3.Connection, claim: str, limit: int, after: Callable[[list[Any]], None]
) -> None:
    """Claim the oldest due rows, then settle them as acknowledged, until none is due."""
    while True:
        now = time.time() + 1
        rows = conn.execute(claim, (now, limit)).fetchall()
        if not rows:
            return
        ids = [row[0] for row in rows]
        conn.execute("begin immediate")
        conn.execute(
            "update outbox set state = 'acked', last_code = '0', updated_at = ?"
            f" where id in ({','.join('?' * len(ids))})",
            (now, *ids),
        )
        after(rows)
        conn.execute("commit")


def settled(conn: sqlite3.Connection, expected: int) -> None:
    """Every row written was claimed and acknowledged, or the figures measure nothing."""
    acked = conn.execute("select count(*) from outbox where state = 'acked'").fetchone()[0]
    if acked != expected:
        raise RuntimeError(f"{acked} of {expected} rows acknowledged")


def timed(stages: dict[str, float], name: str, work: Callable[[], None]) -> None:
    start = time.process_time()
    work()
    stages[name] = time.process_time() - start


def per_item(path: Path, dossiers: int, page: int) -> dict[str, float]:
    engine = create_engine(f"sqlite:///{path}")  # the connector's own tables and indexes
    metadata.create_all(engine)
    engine.dispose()
    conn = connect(path)
    rows = item_rows(dossiers, time.time())
    claim = (
        "select * from outbox where state = 'pending' and kind = '{kind}'"
        " and next_attempt_at <= ? order by next_attempt_at, id limit ?"
    )

    def known(rows: list[Any]) -> None:
        conn.executemany(
            "insert into known values (?, ?, ?) on conflict(dossier) do update"
            " set acked_hash = excluded.acked_hash, acked_at = excluded.acked_at",
            [(row[3], row[6], time.time()) for row in rows],  # dossier, content_hash
        )

    stages: dict[str, float] = {}
    per_page = round(page * len(rows) / dossiers)
    timed(stages, "insert", lambda: insert(conn, ITEM_INSERT, rows, per_page))
    timed(stages, "headers", lambda: drain(conn, claim.format(kind="header"), 500, known))
    timed(stages, "steps", lambda: drain(conn, claim.format(kind="step"), 1000, lambda _: None))
    settled(conn, len(rows))
    conn.close()
    return stages


def per_dossier(path: Path, dossiers: int, page: int) -> dict[str, float]:
    conn = connect(path)
    conn.executescript(PER_DOSSIER_DDL)
    rows = dossier_rows(dossiers, time.time())
    claim = (
        "select * from outbox where state = 'pending' and next_attempt_at <= ?"
        " order by next_attempt_at, id limit ?"
    )
    stages: dict[str, float] = {}
    timed(stages, "insert", lambda: insert(conn, DOSSIER_INSERT, rows, page))
    timed(stages, "dossiers", lambda: drain(conn, claim, 500, lambda _: None))
    settled(conn, len(rows))
    conn.close()
    return stages


def report(name: str, stages: dict[str, float], dossiers: int) -> float:
    total = sum(stages.values())
    parts = ", ".join(f"{stage} {1000 * s / dossiers:.3f}" for stage, s in stages.items())
    print(f"{name}: {parts}; total {1000 * total / dossiers:.3f} CPU ms per dossier")
    return 1000 * total / dossiers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=20_000)
    p.add_argument("--page", type=int, default=2000, help="dossiers per insert transaction")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="connector-floor-") as tmp:
        item = report(
            "per item", per_item(Path(tmp, "item.db"), args.dossiers, args.page), args.dossiers
        )
        whole = report(
            "per dossier",
            per_dossier(Path(tmp, "dossier.db"), args.dossiers, args.page),
            args.dossiers,
        )
    print(f"floor_per_item_ms={item:.3f} floor_per_dossier_ms={whole:.3f} ratio={item / whole:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
