"""The audit trail's hash chain: it verifies when intact and names the first broken row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select, update

from connector.ports import AuditEvent
from connector.store import SqlStore, verify_audit
from connector.store.audit import GENESIS, dossier_keys, read_audit
from connector.store.schema import audit


@pytest.fixture
def store() -> Iterator[SqlStore]:
    opened = SqlStore.open("sqlite://")
    opened.audit([_event(n) for n in range(1, 4)])
    opened.audit([_event(n) for n in range(4, 6)])
    yield opened
    opened.close()


def _event(n: int) -> AuditEvent:
    return AuditEvent(
        at=1000.0 + n,
        action="send",
        service="DongBoHoSoMC",
        keys=[f"D{n}"],
        payload_hash=f"{n:032x}",
        outcome="ok",
    )


def _swap_contents(store: SqlStore, first: int, second: int) -> None:
    with store.engine.begin() as conn:
        rows = {r.seq: r._asdict() for r in conn.execute(select(audit)).all()}
        for target, source in ((first, second), (second, first)):
            values = {k: v for k, v in rows[source].items() if k != "seq"}
            conn.execute(update(audit).where(audit.c.seq == target).values(**values))


def test_intact_chain_verifies(store: SqlStore) -> None:
    """Appends across several calls form one chain that verifies."""
    check = verify_audit(store)
    assert (check.ok, check.checked, check.first_bad_seq) == (True, 5, None)
    with store.engine.connect() as conn:
        first = conn.execute(select(audit).where(audit.c.seq == 1)).one()
    assert first.prev_hash == GENESIS


def test_empty_trail_verifies() -> None:
    """A store with no audit rows has a valid (empty) chain."""
    store = SqlStore.open("sqlite://")
    assert verify_audit(store.engine).ok
    store.close()


def test_edited_row_is_found(store: SqlStore) -> None:
    """Changing a row's outcome breaks that row's hash."""
    with store.engine.begin() as conn:
        conn.execute(update(audit).where(audit.c.seq == 3).values(outcome="rejected:E1"))
    check = verify_audit(store)
    assert (check.ok, check.first_bad_seq, check.checked) == (False, 3, 2)
    assert "edited" in check.reason


def test_deleted_row_is_found(store: SqlStore) -> None:
    """Removing a row from the middle leaves a gap at its sequence number."""
    with store.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.seq == 2))
    check = verify_audit(store)
    assert (check.ok, check.first_bad_seq) == (False, 2)
    assert "deleted" in check.reason


def test_deleted_last_row_is_found(store: SqlStore) -> None:
    """Cutting the newest row off is caught by the recorded head."""
    with store.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.seq == 5))
    check = verify_audit(store)
    assert (check.ok, check.first_bad_seq) == (False, 5)


def test_swapped_rows_are_found(store: SqlStore) -> None:
    """Exchanging two rows' contents breaks the chain at the first of them."""
    _swap_contents(store, 2, 4)
    check = verify_audit(store)
    assert (check.ok, check.first_bad_seq) == (False, 2)


def _call(at: float, action: str, keys: list[str], outcome: str = "") -> AuditEvent:
    return AuditEvent(
        at=at, action=action, service="CapNhatTienDoHoSoMC", keys=keys, outcome=outcome
    )


@pytest.fixture
def trail() -> Iterator[SqlStore]:
    """Calls carrying three dossiers whose numbers share prefixes, and one with LIKE's
    wildcards in it."""
    opened = SqlStore.open("sqlite://")
    opened.audit(
        [
            _call(100.0, "send", ["A-0001", "A-00012"]),
            _call(101.0, "reply", ["A-0001", "A-00012"], "ack=2"),
            _call(200.0, "send", ["A-00012|20260101080000|1", "A-0001|20260101090000|2"]),
            _call(201.0, "reply", ["A-00012|20260101080000|1", "A-0001|20260101090000|2"]),
            _call(300.0, "send", ["B_1%"]),
            _call(301.0, "operator", [], "steps=3"),
        ]
    )
    yield opened
    opened.close()


def test_read_audit_finds_a_dossiers_header_and_steps_and_nothing_else(trail: SqlStore) -> None:
    """A dossier's records are those carrying its header or one of its steps; a dossier
    whose number starts the same is not it, and LIKE's wildcards are taken literally."""
    assert [r.seq for r in read_audit(trail, dossier="A-0001")] == [1, 2, 3, 4]
    assert [r.seq for r in read_audit(trail, dossier="A-000")] == []
    assert [r.seq for r in read_audit(trail, dossier="B_1%")] == [5]
    assert [r.seq for r in read_audit(trail, dossier="B%")] == []
    step_call = read_audit(trail, dossier="A-0001", action="send")[1]
    assert dossier_keys(step_call, "A-0001") == ["A-0001|20260101090000|2"]


def test_read_audit_filters_and_keeps_the_newest_in_order(trail: SqlStore) -> None:
    """The newest `limit` records, oldest first; time bounds are [since, until)."""
    assert [r.seq for r in read_audit(trail, limit=2)] == [5, 6]
    assert [r.seq for r in read_audit(trail, action="reply")] == [2, 4]
    assert [r.seq for r in read_audit(trail, since=200.0, until=300.0)] == [3, 4]
    operator = read_audit(trail, action="operator")[0]
    assert (operator.keys, operator.outcome) == ((), "steps=3")
