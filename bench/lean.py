"""A measuring instrument, not product code: CPU per dossier with ONE outbox row PER DOSSIER.

The connector's outbox holds one row per message (a header version or a step). This script
measures, without estimating, what the connector's CPU per dossier would be if the outbox
held one row per dossier instead, header and steps together, while keeping the connector's
own parts around it: the source reader (`Source.pull`), mapping and validation
(`map_records`) and the REST portal client (`RestPortal`, fed stored canonical JSON as
`Encoded` items). Only the store and the push loop are replaced, by the least code that
still does the layout's job durably: SQLAlchemy Core on the product's SQLite engine
(`make_engine`: WAL, `BEGIN IMMEDIATE`), one transaction per page or per call.

It is a LOWER BOUND for that layout. It leaves out, on purpose, product features that cost
CPU and that a real per-dossier outbox would still need:

- the identity checks between local records and dossier numbers (a number claimed by two
  records, a step's dossier record changing, refused steps read again);
- retries and backoff (nothing is ever due later; a failed item is only parked), and
  per-item retry on unknown outcomes (a whole row's steps are settled together);
- dead-letter handling beyond counting (anything not acknowledged is counted, parked and
  makes the run fail), batch splitting to find a bad item, header versions superseded
  while in flight;
- the audit trail, rate limiting, metrics, health, the status figures, the scheduler and
  the worker thread (everything here runs on one thread, stage after stage).

Table `lean_outbox`, one row per dossier number:

- `header`: the header's canonical JSON (NULL until a valid header arrives), `header_hash`
  its digest, `header_state` 'pending' | 'acked' | 'none' (no header yet) | 'failed';
- `steps`: the steps not yet sent, a JSON array of canonical payloads written with ",\\n"
  between elements (compact JSON never holds a raw newline, so the array splits into the
  stored bytes without decoding); `step_keys`: a JSON array of every step key ever queued
  (de-duplication); `pending_steps`: how many `steps` holds;
- `held`: 1 once the portal acknowledged the header (steps go only then);
- indexes: unique on `dossier` (the look-ups), and two partial indexes on
  `next_attempt_at`, one per claim: headers pending, and held rows with pending steps.

Claims: up to 500 rows with a pending header in one query; then held rows with pending
steps, whole dossiers, up to about 1000 steps a call (ids and counts from the covering
partial index, then the chosen rows' steps by id). Steps are sent in each dossier's time
order (sorted by `ThoiDiemXuLy` at send time). Settles: one transaction per call, one
`UPDATE ... WHERE id IN` per outcome group.

The stages run one after the other in this process, as in `stages.py`; each figure is CPU
ms per valid dossier. The check at the end reads the sandbox's own database: it must hold
every valid dossier and step, each once. Steps of the generated invalid dossiers stay
pending here, their header never held.

    python bench/lean.py --dossiers 20000

Prints CPU ms per dossier for each stage; the last line has them all.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)

from bench.inprocess import Bench, options, set_up
from bench.measure import duplicates, held
from bench.procs import Processes
from bench.synth import Generated
from connector.app import App
from connector.core.hashing import canonical_json, digest
from connector.core.records import BatchReply, Encoded, Mapped, OutcomeStatus
from connector.jobs.pull import map_records
from connector.ports import Portal
from connector.store.engine import among, insert_many, make_engine, upsert
from connector.store.rows import chunks

STAGES = ("source", "mapping", "store_pull", "claim", "settle", "rest", "job")
PAGE_SIZE = 2000
HEADER_BATCH = 500
STEP_BATCH = 1000
CHUNK = 500
#: Where a failed row's due time goes: out of every claim, counted, and the run fails.
PARKED = 1e12
EMPTY = b"[]"
SEPARATOR = b",\n"
WHEN = b'"ThoiDiemXuLy":"'

metadata = MetaData()
#: Literal conditions: a partial index serves only a query that repeats its condition.
HEADER_DUE = text("header_state = 'pending'")
STEPS_DUE = text("held = 1 AND pending_steps > 0")

lean_outbox = Table(
    "lean_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dossier", Text, nullable=False),
    Column("source_ref", Text),
    Column("header", LargeBinary),
    Column("header_hash", Text),
    Column("header_state", Text, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("step_keys", Text, nullable=False),
    Column("pending_steps", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ux_lean_dossier", "dossier", unique=True),
    Index("ix_lean_header_due", "next_attempt_at", sqlite_where=HEADER_DUE),
    # pending_steps listed so the step claim reads the index alone.
    Index("ix_lean_steps_due", "next_attempt_at", "pending_steps", sqlite_where=STEPS_DUE),
)

#: The source cursors, moved in the same transaction as the page they end, as the product does.
lean_cursor = Table(
    "lean_cursor",
    metadata,
    Column("stream", Text, primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass
class Tally:
    """CPU seconds per stage, and every item the portal did not acknowledge."""

    spent: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    failed: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    sent: int = 0


# -- pull ----------------------------------------------------------------------------------


def pull(app: App, engine: Engine, tally: Tally) -> None:
    """The dossier stream then the step stream, page by page, each call timed as its stage."""
    mapping = app.mapping
    for stream in (mapping.dossier_stream, mapping.step_stream):
        cursor = None
        while True:
            start = time.process_time()
            page = app.source.pull(stream, cursor, PAGE_SIZE)
            tally.spent["source"] += time.process_time() - start
            if not page.records:
                break
            start = time.process_time()
            mapped = map_records(mapping, stream, page.records)
            tally.spent["mapping"] += time.process_time() - start
            start = time.process_time()
            store = store_headers if stream == mapping.dossier_stream else store_steps
            tally.invalid += store(engine, stream, mapped, page.cursor)
            tally.spent["store_pull"] += time.process_time() - start
            cursor = page.cursor
            if len(page.records) < PAGE_SIZE:
                break


def rows_of(conn: Connection, numbers: Iterable[str], *columns: Any) -> dict[str, Any]:
    """The rows of these dossier numbers, by number: one IN query per chunk."""
    t = lean_outbox
    found: dict[str, Any] = {}
    for part in chunks(sorted(numbers), CHUNK):
        query = select(t.c.dossier, *columns).where(among(conn, t.c.dossier, part))
        found.update((row.dossier, row) for row in conn.execute(query))
    return found


def save_cursor(conn: Connection, stream: str, cursor: Sequence[Any] | None) -> None:
    if cursor is None:
        return
    value = orjson.dumps(list(cursor)).decode("utf-8")
    statement = upsert(conn, lean_cursor).values(stream=stream, value=value)
    conn.execute(statement.on_conflict_do_update(index_elements=["stream"], set_={"value": value}))


def store_headers(
    engine: Engine, stream: str, mapped: list[Mapped], cursor: Sequence[Any] | None
) -> int:
    """New dossiers inserted, changed headers updated (by hash); returns the invalid count.

    A header that changes after being held goes again with `isUpdating=True` (`held` stays).
    """
    latest = {m.dossier: m for m in mapped if m.ok}  # a later version in the page wins
    encoded = {number: canonical_json(m.payload) for number, m in latest.items()}
    now = time.time()
    t = lean_outbox
    with engine.begin() as conn:
        found = rows_of(conn, latest, t.c.id, t.c.header_hash)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for number, m in latest.items():
            data = encoded[number]
            hashed = digest(data)
            row = found.get(number)
            if row is None:
                inserts.append(new_row(number, m.source_ref, data, hashed, now))
            elif row.header_hash != hashed:
                updates.append(
                    {
                        "b_id": row.id,
                        "b_ref": m.source_ref,
                        "b_header": data,
                        "b_hash": hashed,
                        "b_now": now,
                    }
                )
        write_rows(
            conn,
            inserts,
            updates,
            source_ref=bindparam("b_ref"),
            header=bindparam("b_header"),
            header_hash=bindparam("b_hash"),
            header_state="pending",
            next_attempt_at=bindparam("b_now"),
            updated_at=bindparam("b_now"),
        )
        save_cursor(conn, stream, cursor)
    return len(mapped) - sum(1 for m in mapped if m.ok)


def write_rows(
    conn: Connection, inserts: list[dict[str, Any]], updates: list[dict[str, Any]], **values: Any
) -> None:
    """One `executemany` for the new rows and one for the changed ones (`values` bound by
    name from each update's parameters, the row's id as "b_id")."""
    if inserts:
        insert_many(conn, lean_outbox, inserts)
    if updates:
        t = lean_outbox
        conn.execute(update(t).where(t.c.id == bindparam("b_id")).values(**values), updates)


def new_row(
    number: str, ref: str | None, header: bytes | None, hashed: str | None, now: float
) -> dict[str, Any]:
    """A dossier's row; without a header it only keeps steps that came first."""
    return {
        "dossier": number,
        "source_ref": ref,
        "header": header,
        "header_hash": hashed,
        "header_state": "none" if header is None else "pending",
        "steps": EMPTY,
        "step_keys": "[]",
        "pending_steps": 0,
        "held": 0,
        "next_attempt_at": now,
        "updated_at": now,
    }


def appended(steps: bytes, new: list[bytes]) -> bytes:
    """`steps` with `new` added at the end, by bytes: nothing stored is decoded."""
    tail = SEPARATOR.join(new)
    if steps == EMPTY:
        return b"[" + tail + b"]"
    return steps[:-1] + SEPARATOR + tail + b"]"


def store_steps(
    engine: Engine, stream: str, mapped: list[Mapped], cursor: Sequence[Any] | None
) -> int:
    """Each new step appended to its dossier's row (a row without header if none yet)."""
    grouped: defaultdict[str, list[Mapped]] = defaultdict(list)
    for m in mapped:
        if m.ok:
            grouped[m.dossier].append(m)
    now = time.time()
    t = lean_outbox
    with engine.begin() as conn:
        found = rows_of(conn, grouped, t.c.id, t.c.steps, t.c.step_keys, t.c.pending_steps)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for number, items in grouped.items():
            row = found.get(number)
            keys: list[str] = [] if row is None else orjson.loads(row.step_keys)
            seen = set(keys)
            new: list[bytes] = []
            for m in items:
                if m.key not in seen:
                    seen.add(m.key)
                    keys.append(m.key)
                    new.append(canonical_json(m.payload))
            if not new:
                continue
            if row is None:
                fresh = new_row(number, None, None, None, now)
                fresh.update(
                    steps=appended(EMPTY, new),
                    step_keys=orjson.dumps(keys).decode(),
                    pending_steps=len(new),
                )
                inserts.append(fresh)
            else:
                updates.append(
                    {
                        "b_id": row.id,
                        "b_steps": appended(row.steps, new),
                        "b_keys": orjson.dumps(keys).decode(),
                        "b_count": row.pending_steps + len(new),
                        "b_now": now,
                    }
                )
        write_rows(
            conn,
            inserts,
            updates,
            steps=bindparam("b_steps"),
            step_keys=bindparam("b_keys"),
            pending_steps=bindparam("b_count"),
            updated_at=bindparam("b_now"),
        )
        save_cursor(conn, stream, cursor)
    return len(mapped) - sum(1 for m in mapped if m.ok)


# -- push ----------------------------------------------------------------------------------


class Pusher:
    """Rounds of one header call then one step call until nothing is due, as `PushJob`."""

    def __init__(self, engine: Engine, portal: Portal, tally: Tally) -> None:
        self._engine, self._portal, self._tally = engine, portal, tally

    def _timed(self, stage: str, start: float) -> None:
        self._tally.spent[stage] += time.process_time() - start

    async def run(self) -> None:
        start = time.process_time()
        try:
            while True:
                done = await self._headers() + await self._steps()
                if not done:
                    break
        finally:
            await self._portal.aclose()
        total = time.process_time() - start
        spent = self._tally.spent
        spent["job"] = total - spent["claim"] - spent["rest"] - spent["settle"]

    async def _headers(self) -> int:
        start = time.process_time()
        rows = claim_headers(self._engine, HEADER_BATCH)
        self._timed("claim", start)
        for updating in (False, True):
            group = [row for row in rows if bool(row.held) is updating]
            if group:
                items = [Encoded(row.header, row.dossier) for row in group]
                reply = await self._rest(self._portal.push_headers(items, updating=updating))
                start = time.process_time()
                settle_headers(self._engine, [row.id for row in group], reply, self._tally)
                self._timed("settle", start)
        return len(rows)

    async def _steps(self) -> int:
        start = time.process_time()
        rows = claim_steps(self._engine, STEP_BATCH)
        self._timed("claim", start)
        if not rows:
            return 0
        items: list[Encoded] = []
        spans: list[tuple[int, int, int]] = []  # (row id, first item, end)
        for row in rows:
            first = len(items)
            items.extend(Encoded(step, row.dossier) for step in in_time_order(row.steps))
            spans.append((row.id, first, len(items)))
        reply = await self._rest(self._portal.push_steps(items))
        start = time.process_time()
        settle_steps(self._engine, spans, reply, self._tally)
        self._timed("settle", start)
        return len(items)

    async def _rest(self, call: Any) -> BatchReply:
        start = time.process_time()
        try:
            reply: BatchReply = await call
        finally:
            self._timed("rest", start)
        return reply


def in_time_order(steps: bytes) -> list[bytes]:
    """The stored steps split by bytes, sorted by `ThoiDiemXuLy` (stable for equal times)."""
    parts = steps[1:-1].split(SEPARATOR)
    return sorted(parts, key=event_time)


def event_time(step: bytes) -> bytes:
    """`ThoiDiemXuLy` read from canonical JSON without decoding it.

    The pattern cannot match inside a string (its quotes would be escaped); decoding is the
    fallback should the key be missing, e.g. under another mapping.
    """
    at = step.find(WHEN)
    if at < 0:
        return str(orjson.loads(step).get("ThoiDiemXuLy", "")).encode()
    start = at + len(WHEN)
    return step[start : step.index(b'"', start)]


def claim_headers(engine: Engine, limit: int) -> list[Any]:
    """Due rows with a pending header, oldest due first (the header partial index)."""
    t = lean_outbox
    query = (
        select(t.c.id, t.c.dossier, t.c.header, t.c.held)
        .where(HEADER_DUE, t.c.next_attempt_at <= time.time())
        .order_by(t.c.next_attempt_at)
        .limit(limit)
    )
    with engine.begin() as conn:
        return list(conn.execute(query))


def claim_steps(engine: Engine, most: int) -> list[Any]:
    """Held rows with pending steps, whole dossiers, up to about `most` steps (at least one
    row): ids and counts from the covering partial index, then the chosen rows' steps."""
    t = lean_outbox
    due = (
        select(t.c.id, t.c.pending_steps)
        .where(STEPS_DUE, t.c.next_attempt_at <= time.time())
        .order_by(t.c.next_attempt_at)
        .limit(most)
    )
    with engine.begin() as conn:
        chosen: list[int] = []
        total = 0
        for row in conn.execute(due):
            if chosen and total + row.pending_steps > most:
                break
            chosen.append(row.id)
            total += row.pending_steps
        if not chosen:
            return []
        query = select(t.c.id, t.c.dossier, t.c.steps).where(among(conn, t.c.id, chosen))
        found = {row.id: row for row in conn.execute(query)}
    return [found[i] for i in chosen]


def outcome_groups(reply: BatchReply, count: int, tally: Tally) -> list[bool]:
    """Whether each item sent was acknowledged; every other outcome is counted by status."""
    if len(reply.outcomes) != count:
        tally.failed["misaligned reply"] += count
        return [False] * count
    oks = [o.status is OutcomeStatus.OK for o in reply.outcomes]
    for outcome, ok in zip(reply.outcomes, oks, strict=True):
        if not ok:
            tally.failed[outcome.status.value] += 1
    return oks


def set_rows(conn: Connection, ids: list[int], **values: Any) -> None:
    """One `UPDATE ... WHERE id IN (...)` setting `values` on the rows of an outcome."""
    if ids:
        t = lean_outbox
        conn.execute(update(t).where(among(conn, t.c.id, ids)).values(**values))


def settle_headers(engine: Engine, ids: list[int], reply: BatchReply, tally: Tally) -> None:
    """Acknowledged headers held; the others failed (counted, never claimed again)."""
    oks = outcome_groups(reply, len(ids), tally)
    acked = [i for i, ok in zip(ids, oks, strict=True) if ok]
    failed = [i for i, ok in zip(ids, oks, strict=True) if not ok]
    now = time.time()
    with engine.begin() as conn:
        set_rows(conn, acked, header_state="acked", held=1, updated_at=now)
        set_rows(conn, failed, header_state="failed", next_attempt_at=PARKED, updated_at=now)
    tally.sent += len(ids)


def settle_steps(
    engine: Engine, spans: list[tuple[int, int, int]], reply: BatchReply, tally: Tally
) -> None:
    """Rows whose steps were all acknowledged emptied; any other row parked whole."""
    oks = outcome_groups(reply, spans[-1][2], tally)
    done = [row for row, first, end in spans if all(oks[first:end])]
    parked = [row for row, first, end in spans if not all(oks[first:end])]
    now = time.time()
    with engine.begin() as conn:
        set_rows(conn, done, steps=EMPTY, pending_steps=0, updated_at=now)
        set_rows(conn, parked, next_attempt_at=PARKED, updated_at=now)
    tally.sent += spans[-1][2]


# -- check and report ----------------------------------------------------------------------


def check(procs: Processes, engine: Engine, generated: Generated, tally: Tally) -> None:
    """The sandbox holds every valid dossier and step, once each, and nothing else went
    wrong; the steps left pending here are exactly those of the invalid dossiers."""
    problems: list[str] = []
    if tally.failed:
        problems.append(f"not acknowledged: {dict(tally.failed)}")
    holds = held(procs.sandbox_db)
    if holds != (generated.valid_dossiers, generated.valid_steps):
        problems.append(
            f"the sandbox holds {holds[0]} dossiers and {holds[1]} steps of "
            f"{generated.valid_dossiers} and {generated.valid_steps}"
        )
    twice = duplicates(procs.sandbox_db)
    if any(twice.values()):
        problems.append(f"duplicates at the portal: {twice}")
    t = lean_outbox
    with engine.connect() as conn:
        acked = conn.scalar(select(func.count()).where(t.c.held == 1))
        waiting = conn.scalar(select(func.coalesce(func.sum(t.c.pending_steps), 0)))
    blocked = generated.steps - generated.valid_steps
    if (acked, waiting) != (generated.valid_dossiers, blocked):
        problems.append(f"outbox: {acked} headers held, {waiting} steps pending ({blocked})")
    if problems:
        raise RuntimeError("; ".join(problems))


def report(spent: dict[str, float], dossiers: int) -> None:
    def ms(seconds: float) -> float:
        return 1000 * seconds / dossiers

    for stage in STAGES:
        print(f"{stage}: {ms(spent[stage]):.3f} CPU ms per dossier")
    fields = " ".join(f"{stage}_ms={ms(spent[stage]):.3f}" for stage in STAGES)
    print(f"{fields} total_ms={ms(sum(spent[stage] for stage in STAGES)):.3f}")


def run(bench: Bench) -> None:
    engine = make_engine(f"sqlite:///{bench.workdir / 'lean.db'}")
    metadata.create_all(engine)
    tally = Tally()
    generated = bench.generated
    try:
        pull(bench.app, engine, tally)
        asyncio.run(Pusher(engine, bench.app.portal, tally).run())
        check(bench.procs, engine, generated, tally)
    finally:
        engine.dispose()
    print(
        f"{generated.valid_dossiers} valid dossiers of {generated.dossiers}, "
        f"{tally.invalid} invalid items, {tally.sent} items sent"
    )
    report(tally.spent, generated.valid_dossiers)


def main(argv: list[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0]).parse_args(argv)
    try:
        with set_up(args, "lean-") as bench:
            run(bench)
    except RuntimeError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
