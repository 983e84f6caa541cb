"""The status figures the store reports, against every backend: exactly what their plain
definitions say, however the queries are written to let an index answer them."""

from __future__ import annotations

import random

from sqlalchemy import and_, exists, func, or_, select

from connector.core.records import Kind, State
from connector.ports import Settlement
from connector.store import SqlStore
from connector.store.schema import known, outbox
from tests.contracts.test_store_contract import acknowledge, header, step

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
