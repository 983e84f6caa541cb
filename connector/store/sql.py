"""`SqlStore`: the `Store` port over SQLAlchemy Core, for SQLite and PostgreSQL.

Each public method is one transaction, opened by `_write` or `_read`, which are also the
only place where database errors become `StoreError`. The work itself lives in small
modules: `ingest`, `delivery`, `repairs`, `reports` and `audit`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import orjson
from sqlalchemy import Connection, Engine, delete, func, select

from connector.core.records import Cursor, Kind, Mapped, State
from connector.ports import (
    AuditEvent,
    BlockedDossier,
    Dismissed,
    IngestResult,
    OutboxItem,
    Settlement,
    WorkerLock,
)
from connector.store import audit as audit_trail
from connector.store import delivery, existing, ingest, repairs, reports, worker
from connector.store.boundary import store_errors
from connector.store.engine import READ_ONLY, make_engine, upsert
from connector.store.schema import create_schema, cursors, meta, outbox, rereads

#: Rows one transaction of the purge deletes: about a tenth of a second on SQLite.
PURGE_PART = 5000
#: The `meta` row holding the fingerprint key (hex), see `SqlStore.fingerprint_key`.
FINGERPRINT_KEY = "fingerprint_key"


class SqlStore:
    """The durable outbox, what the portal holds, the cursors and the audit trail."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str, password: str | None = None) -> SqlStore:
        """Connect to `url` and create any missing tables."""
        with store_errors("open"):
            engine = make_engine(url, password=password)
            create_schema(engine)
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with store_errors(action), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with store_errors(action), self._engine.connect() as conn:
            yield conn.execution_options(**{READ_ONLY: True})

    # -- pulling --------------------------------------------------------------------------

    def ingest(
        self,
        stream: str,
        items: Sequence[Mapped],
        cursor: Cursor | None,
        *,
        now: float,
        force: bool = False,
        retire: Sequence[int] = (),
        read_mark: int | None = None,
    ) -> IngestResult:
        """Queue a page of mapped items and move the stream's cursor, in one transaction."""
        with self._write(f"ingest of {stream}") as conn:
            if retire:
                repairs.supersede(conn, retire, now=now)
            plan = _plan(conn, items, now=now, force=force, read_mark=read_mark)
            ingest.apply(conn, plan, now=now)
            if cursor is not None:
                _save_cursor(conn, stream, cursor, now)
        return plan.result()

    def preview_ingest(
        self,
        items: Sequence[Mapped],
        *,
        now: float,
        force: bool = False,
        read_mark: int | None = None,
    ) -> IngestResult:
        with self._read("ingest preview") as conn:
            return _plan(conn, items, now=now, force=force, read_mark=read_mark).result()

    def newest_id(self) -> int:
        with self._read("newest id") as conn:
            return int(conn.scalar(select(func.max(outbox.c.id))) or 0)

    def cursor(self, stream: str) -> Cursor | None:
        with self._read("cursor read") as conn:
            value = conn.scalar(select(cursors.c.value).where(cursors.c.stream == stream))
        return None if value is None else tuple(orjson.loads(value))

    def cursors(self) -> Mapping[str, tuple[Cursor, float]]:
        with self._read("cursor read") as conn:
            rows = conn.execute(select(cursors)).all()
        return {row.stream: (tuple(orjson.loads(row.value)), row.updated_at) for row in rows}

    # -- pushing --------------------------------------------------------------------------

    def claim(
        self, kind: Kind, limit: int, *, now: float, max_wait: float | None = None
    ) -> list[OutboxItem]:
        with self._write("claim") as conn:
            return delivery.claim(conn, kind, limit, now=now, max_wait=max_wait)

    def settle(self, settlements: Sequence[Settlement], *, now: float) -> frozenset[int]:
        with self._write("settle") as conn:
            return delivery.settle(conn, settlements, now=now)

    def recover(self) -> int:
        with self._write("recover") as conn:
            return delivery.recover(conn)

    def lock_worker(
        self, *, wait: float = 0.0, on_wait: Callable[[str], None] = lambda message: None
    ) -> WorkerLock:
        """Hold the store for this process alone until `release` (see `store.worker`)."""
        with store_errors("worker lock"):
            return worker.acquire(self._engine, wait=wait, on_wait=on_wait)

    def set_known(self, dossier: str, held: bool, *, now: float) -> None:
        with self._write("known update") as conn:
            repairs.set_known(conn, dossier, held, now=now)

    def audit(self, events: Sequence[AuditEvent]) -> None:
        with self._write("audit append") as conn:
            audit_trail.append(conn, events)

    # -- operating ------------------------------------------------------------------------

    def requeue(self, item_ids: Sequence[int], *, now: float) -> int:
        with self._write("requeue") as conn:
            return repairs.requeue(conn, item_ids, now=now)

    def supersede(self, item_ids: Sequence[int], *, now: float) -> int:
        with self._write("supersede") as conn:
            return repairs.supersede(conn, item_ids, now=now)

    def dismiss(self, item_ids: Sequence[int], *, now: float) -> Dismissed:
        with self._write("dismiss") as conn:
            ids, steps = repairs.dismiss(conn, item_ids, now=now)
        return Dismissed(ids=ids, steps=steps)

    def purge(self, *, before: float, part: int = PURGE_PART) -> int:
        """In parts of `part` rows, each its own transaction, so the push and the pull are
        never held behind a purge of millions of rows; then the `waiting` rows of dossiers
        with no step left to wait are dropped."""
        removed = 0
        while True:
            with self._write("purge") as conn:
                done = repairs.purge(conn, before=before, part=part)
            removed += done
            if done < part:
                break
        with self._write("waiting clean-up") as conn:
            repairs.forget_waiting(conn)
        return removed

    def put_meta(self, key: str, value: str) -> None:
        with self._write("meta write") as conn:
            statement = upsert(conn, meta).values(key=key, value=value)
            conn.execute(
                statement.on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )

    def meta(self) -> Mapping[str, str]:
        with self._read("meta read") as conn:
            return {row.key: row.value for row in conn.execute(select(meta))}

    def fingerprint_key(self) -> bytes:
        """Read first: a store that cannot be written (a full disk) still opens for reading."""
        query = select(meta.c.value).where(meta.c.key == FINGERPRINT_KEY)
        with self._read("fingerprint key read") as conn:
            value = conn.scalar(query)
        if value is None:
            made = secrets.token_hex(32)
            with self._write("fingerprint key write") as conn:
                statement = upsert(conn, meta).values(key=FINGERPRINT_KEY, value=made)
                conn.execute(statement.on_conflict_do_nothing())  # another process's stands
                value = conn.scalar(query)
        return bytes.fromhex(str(value))

    def rereads(self) -> list[str]:
        with self._read("reread list") as conn:
            return list(conn.scalars(select(rereads.c.dossier).order_by(rereads.c.queued_at)))

    def reread(self, dossier: str) -> None:
        with self._write("reread list") as conn:
            conn.execute(delete(rereads).where(rereads.c.dossier == dossier))

    # -- reporting ------------------------------------------------------------------------

    def ping(self) -> None:
        """A trivial read, for readiness: that the store answers, without touching a table."""
        with self._read("ping") as conn:
            conn.scalar(select(1))

    def counts(self) -> Mapping[tuple[Kind, State], int]:
        with self._read("counts") as conn:
            return reports.counts(conn)

    def items(
        self,
        *,
        states: Sequence[State] = (),
        kind: Kind | None = None,
        dossier: str | None = None,
        limit: int = 50,
        code: str | None = None,
        oldest: bool = False,
    ) -> list[OutboxItem]:
        with self._read("item list") as conn:
            return reports.items(
                conn,
                states=states,
                kind=kind,
                dossier=dossier,
                limit=limit,
                code=code,
                oldest=oldest,
            )

    def get(self, item_id: int) -> OutboxItem | None:
        with self._read("item read") as conn:
            return reports.get(conn, item_id)

    def dossier_history(self, dossier: str) -> list[OutboxItem]:
        with self._read("dossier history") as conn:
            return reports.dossier_history(conn, dossier)

    def purged_steps(self, steps: Sequence[Mapped]) -> set[str]:
        with self._read("purged steps") as conn:
            return existing.purged_steps(conn, steps)

    def known_sample(self, n: int) -> list[str]:
        with self._read("known sample") as conn:
            return reports.known_sample(conn, n)

    def acked_at(self, dossier: str) -> float | None:
        with self._read("known read") as conn:
            return reports.acked_at(conn, dossier)

    def acked_since(self, since: float) -> Mapping[Kind, int]:
        with self._read("throughput") as conn:
            return reports.acked_since(conn, since)

    def blocked_steps(self) -> int:
        with self._read("blocked steps") as conn:
            return reports.blocked_steps(conn)

    def blocked_dossiers(self, limit: int = 50) -> list[BlockedDossier]:
        with self._read("blocked dossiers") as conn:
            return reports.blocked_dossiers(conn, limit)

    def oldest_pending_age(self, now: float) -> float | None:
        with self._read("pending age") as conn:
            return reports.oldest_pending_age(conn, now)

    def stats_by_code(self, limit: int = 10) -> list[tuple[str, int]]:
        with self._read("dead-letter stats") as conn:
            return reports.stats_by_code(conn, limit)

    def close(self) -> None:
        self._engine.dispose()


def _plan(
    conn: Connection,
    items: Sequence[Mapped],
    *,
    now: float,
    force: bool,
    read_mark: int | None,
) -> ingest.Plan:
    """What `items` add to the outbox and retire, decided against what it holds."""
    seen = existing.look_up(conn, items, read_mark=read_mark)
    planner = ingest.Planner(seen, now=now, force=force)
    for item in items:
        planner.add(item)
    return planner.plan


def _save_cursor(conn: Connection, stream: str, cursor: Cursor, now: float) -> None:
    """Cursor values must be JSON scalars; they come back as a tuple of the same values."""
    value = orjson.dumps(list(cursor)).decode("utf-8")
    statement = upsert(conn, cursors).values(stream=stream, value=value, updated_at=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["stream"], set_={"value": value, "updated_at": now}
        )
    )
