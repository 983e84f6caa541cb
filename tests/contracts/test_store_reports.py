"""The status figures the store reports, against every backend: exactly what their plain
definitions say, however the queries are written to let an index answer them."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import and_, event, exists, func, inspect, or_, select

from connector.core.records import Kind, State
from connector.ports import Settlement
from connector.store import SqlStore
from connector.store.schema import known, outbox
from tests.contracts.test_store_contract import acknowledge, broken, header, step

T0 = 1_000_000.0


def _defined_oldest(store: SqlStore, now: float) -> float | None:
    """oldest_pending_age as first defined: one MIN over every sendable pending row."""
    held = exists().where(known.c.dossier == outbox.c.dossier)
    sendable = or_(outbox.c.kind == Kind.HEADER.value, held)
    query = select(func.min(outbox.c.created_at)).where(
        outbox.c.state == State.PENDING.value, sendable
    )
    with store.engine.connect() as conn:
        oldest = conn.scalar(query)
    return None if oldest is None else max(0.0, now - oldest)


def _defined_blocked(store: SqlStore) -> int:
    held = exists().where(known.c.dossier == outbox.c.dossier)
    query = (
        select(func.count())
        .select_from(outbox)
        .where(and_(outbox.c.state == State.PENDING.value, outbox.c.kind == Kind.STEP.value))
        .where(~held)
    )
    with store.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def test_oldest_pending_age_follows_queue_time_not_id(store: SqlStore) -> None:
    """After the wall clock went back, a later row can be the older one: ids do not decide."""
    store.ingest("dossiers", [header("D1")], None, now=T0 + 50)
    store.ingest("dossiers", [header("D2")], None, now=T0 + 10)
    assert store.oldest_pending_age(T0 + 100) == 90


def test_oldest_pending_age_counts_sendable_items_only(store: SqlStore) -> None:
    """Blocked steps and settled rows do not count; a sendable step and a requeued dead
    letter do, each with the time it was first queued."""
    assert store.oldest_pending_age(T0) is None
    store.ingest("steps", [step("D9", "20260101000000")], None, now=T0)  # blocked for good
    assert store.oldest_pending_age(T0 + 100) is None
    store.ingest("dossiers", [header("D1")], None, now=T0 + 20)
    acknowledge(store, Kind.HEADER, now=T0 + 21)
    store.ingest("steps", [step("D1", "20260101000000")], None, now=T0 + 30)
    store.ingest("dossiers", [header("D2")], None, now=T0 + 40)
    assert store.oldest_pending_age(T0 + 100) == 70
    store.ingest("dossiers", [header("D3")], None, now=T0 + 5)
    (rejected,) = [i for i in store.claim(Kind.HEADER, 10, now=T0 + 50) if i.key == "D3"]
    store.settle([Settlement(item_id=rejected.id, state=State.REJECTED)], now=T0 + 50)
    assert store.oldest_pending_age(T0 + 100) == 70  # D2 and D3 in flight, D1's step waits
    assert store.requeue([rejected.id], now=T0 + 60) == 1
    assert store.oldest_pending_age(T0 + 100) == 95


def test_oldest_pending_age_is_never_negative(store: SqlStore) -> None:
    store.ingest("dossiers", [header("D1")], None, now=T0 + 10)
    assert store.oldest_pending_age(T0) == 0.0


def test_reports_equal_their_definitions_on_a_mixed_outbox(store: SqlStore) -> None:
    """Randomly queued, acknowledged, rejected and requeued headers and steps, with the
    clock going back now and then: the reports equal the single-query definitions."""
    rng = random.Random(20261127)
    now = T0
    for round_no in range(12):
        now += rng.choice([-40.0, 5.0, 17.0, 30.0])
        dossiers = [f"D{rng.randrange(30)}" for _ in range(rng.randrange(1, 6))]
        store.ingest("dossiers", [header(d, str(round_no)) for d in dossiers], None, now=now)
        steps = [step(f"D{rng.randrange(40)}", f"2026010{round_no % 9}00000{n}") for n in range(4)]
        store.ingest("steps", steps, None, now=now + 1)
        claimed = store.claim(rng.choice([Kind.HEADER, Kind.STEP]), rng.randrange(1, 8), now=now)
        outcomes = [State.ACKED, State.REJECTED, State.PENDING]
        settled = [Settlement(item_id=i.id, state=rng.choice(outcomes)) for i in claimed]
        store.settle(settled, now=now)
        dead = store.items(states=[State.REJECTED], limit=3)
        store.requeue([i.id for i in dead if rng.random() < 0.5], now=now)
        for at in (now, now + 1000):
            assert store.oldest_pending_age(at) == _defined_oldest(store, at)
        assert store.blocked_steps() == _defined_blocked(store)
    assert store.blocked_steps() > 0
    assert store.oldest_pending_age(now) is not None


def plans_of(store: SqlStore, run: Callable[[], object]) -> list[tuple[str, str]]:
    """(statement, query plan) of every SELECT and UPDATE `run` sends to the store."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    sqlite = store.engine.dialect.name == "sqlite"
    plans = []
    with store.engine.connect() as conn:
        if not sqlite:  # an empty table is cheapest to scan: ask whether the index *can* serve
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = conn.exec_driver_sql(explain + statement, parameters).all()
            plans.append((statement, " | ".join(str(value) for row in rows for value in row)))
    return plans


def test_backlog_reports_read_the_pending_rows_alone(store: SqlStore) -> None:
    """blocked_steps and oldest_pending_age are answered from `ix_outbox_pending`, which
    holds pending rows only, so their cost follows the backlog, not the store's history."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    store.ingest(
        "steps", [step("D1", "20260101000000"), step("D2", "20260101000000")], None, now=T0
    )
    plans = plans_of(store, store.blocked_steps) + plans_of(
        store, lambda: store.oldest_pending_age(T0)
    )
    assert len(plans) == 3
    for _, plan in plans:
        assert "ix_outbox_pending" in plan, plan


def reopened_without(tmp_path: Path, drop: str) -> SqlStore:
    """A store holding one blocked step, made as an earlier version would have (`drop`
    undoes what this version adds), then opened again."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore.open(url)
    store.ingest("steps", [step("D1", "20260101000000")], None, now=T0)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(drop)
    store.close()
    return SqlStore.open(url)


def test_store_made_before_the_pending_index_gets_it(tmp_path: Path) -> None:
    """Opening a store made without an index of this version builds it, once."""
    store = reopened_without(tmp_path, "DROP INDEX ix_outbox_pending")
    with store.engine.connect() as conn:
        names = {ix["name"] for ix in inspect(conn).get_indexes("outbox")}
    assert "ix_outbox_pending" in names
    assert store.blocked_steps() == 1
    store.close()


def test_store_made_before_waiting_gets_it(tmp_path: Path) -> None:
    """Opening a store made without the `waiting` table adds it, and claims can set aside."""
    store = reopened_without(tmp_path, "DROP TABLE waiting")
    assert store.claim(Kind.STEP, 10, now=T0) == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT dossier FROM waiting").scalars().all() == ["D1"]
    store.close()


def test_blocked_dossiers_say_why_their_steps_wait(store: SqlStore) -> None:
    """Each dossier with blocked steps comes once, longest waiting first, with its newest
    header (or none): what an operator needs to unblock it. Held dossiers never appear."""
    store.ingest("steps", [step("D4", "20260101000000")], None, now=T0)  # no header at all
    store.ingest("dossiers", [header("D1"), header("D3"), header("D5")], None, now=T0 + 1)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)  # newer version of D1
    store.ingest("dossiers", [broken(header("D2"), "NgayHenTra: required")], None, now=T0 + 1)
    claimed = {i.key: i.id for i in store.claim(Kind.HEADER, 10, now=T0 + 1)}
    store.settle(
        [
            Settlement(item_id=claimed["D3"], state=State.ACKED),
            Settlement(item_id=claimed["D5"], state=State.REJECTED, code="E12", message="bad"),
        ],
        now=T0 + 1,
    )
    steps = [step(d, f"2026010100000{n}") for d in ("D1", "D2", "D3", "D5") for n in (1, 2)]
    store.ingest("steps", steps[:2], None, now=T0 + 2)  # D1's first
    store.ingest("steps", steps[2:], None, now=T0 + 3)

    blocked = store.blocked_dossiers()
    assert [(b.dossier, b.steps, b.first_queued_at) for b in blocked] == [
        ("D4", 1, T0),
        ("D1", 2, T0 + 2),
        ("D2", 2, T0 + 3),
        ("D5", 2, T0 + 3),
    ]
    assert sum(b.steps for b in blocked) == store.blocked_steps()
    why = {b.dossier: b.header for b in blocked}
    assert why["D4"] is None
    d1, d2, d5 = why["D1"], why["D2"], why["D5"]
    assert d1 is not None and d1.state is State.PENDING and b'"2"' in d1.body
    assert d2 is not None and d2.state is State.INVALID and "NgayHenTra" in d2.last_message
    assert d5 is not None and (d5.state, d5.last_code) == (State.REJECTED, "E12")
    assert [b.dossier for b in store.blocked_dossiers(limit=2)] == ["D4", "D1"]
