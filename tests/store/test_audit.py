"""The audit trail's hash chain: it verifies when intact and names the first broken row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from connector.errors import ConfigError, StoreError
from connector.ports import AuditEvent
from connector.store import SqlStore, verify_audit
from connector.store.audit import (
    GENESIS,
    _write_archive,
    archive_audit,
    dossier_keys,
    read_audit,
)
from connector.store.schema import audit, meta


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


# --- archiving ---------------------------------------------------------------------------------


def _trail(path: Path, times: list[float]) -> SqlStore:
    store = SqlStore.open(f"sqlite:///{path}")
    store.audit([_event_at(t) for t in times])
    return store


def _event_at(at: float) -> AuditEvent:
    return AuditEvent(at=at, action="send", service="DongBoHoSoMC", keys=[f"D{int(at)}"])


def test_archiving_moves_old_records_and_the_chain_still_verifies(tmp_path: Path) -> None:
    """Records before the cut go to the file and leave the store; the store verifies from
    its base, the archive and the store verify as one chain, and new records follow on."""
    store = _trail(tmp_path / "state.db", [100.0, 200.0, 300.0, 400.0, 500.0])
    first = archive_audit(store, before=350.0, target=tmp_path / "a1.jsonl", chunk=2)
    assert (first.records, first.first_seq, first.last_seq) == (3, 1, 3)
    assert [r.seq for r in read_audit(store)] == [4, 5]
    assert verify_audit(store).ok and verify_audit(store).checked == 2
    assert verify_audit(store).trusted_up_to == 3, "the base is taken on trust, and said so"
    whole = verify_audit(store, archives=[tmp_path / "a1.jsonl"])
    assert whole.ok and whole.checked == 5 and whole.trusted_up_to == 0

    store.audit([_event_at(600.0)])
    second = archive_audit(store, before=10_000.0, target=tmp_path / "a2.jsonl")
    assert (second.records, second.first_seq, second.last_seq) == (3, 4, 6)
    assert read_audit(store) == []
    store.audit([_event_at(700.0)])  # the chain goes on from the base, not from genesis
    assert [r.seq for r in read_audit(store)] == [7]
    archives = [tmp_path / "a1.jsonl", tmp_path / "a2.jsonl"]
    assert verify_audit(store).ok
    assert verify_audit(store, archives=archives).checked == 7
    store.close()


def test_a_clock_set_back_does_not_split_the_chain(tmp_path: Path) -> None:
    """Only the run of records from the oldest on that are all before the cut goes."""
    store = _trail(tmp_path / "state.db", [100.0, 900.0, 200.0, 300.0])
    done = archive_audit(store, before=500.0, target=tmp_path / "a.jsonl")
    assert (done.records, done.last_seq) == (1, 1)
    assert verify_audit(store, archives=[tmp_path / "a.jsonl"]).ok
    store.close()


def test_archives_and_store_must_meet(tmp_path: Path) -> None:
    """Without its first archive, or with an archived record edited, or with rows deleted
    and the base moved over them, the whole chain does not verify."""
    store = _trail(tmp_path / "state.db", [100.0, 200.0, 300.0, 400.0, 500.0])
    archive_audit(store, before=250.0, target=tmp_path / "a1.jsonl")
    archive_audit(store, before=450.0, target=tmp_path / "a2.jsonl")
    a1, a2 = tmp_path / "a1.jsonl", tmp_path / "a2.jsonl"
    assert verify_audit(store, archives=[a1, a2]).ok
    missing = verify_audit(store, archives=[a2])
    assert not missing.ok and missing.first_bad_seq == 1

    lines = a1.read_bytes().splitlines()
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"\n".join([lines[0].replace(b'"send"', b'"reply"'), lines[1]]) + b"\n")
    assert "edited" in verify_audit(store, archives=[edited, a2]).reason

    with store.engine.begin() as conn:  # row 5 deleted and the base moved over it
        digest = conn.execute(select(audit.c.hash).where(audit.c.seq == 5)).scalar_one()
        conn.execute(delete(audit).where(audit.c.seq == 5))
        conn.execute(update(meta).where(meta.c.key == "audit_base").values(value=f"5:{digest}"))
    assert verify_audit(store).ok  # the base is taken on trust without the archives
    moved = verify_audit(store, archives=[a1, a2])
    assert not moved.ok and "base was moved" in moved.reason
    store.close()


def test_only_an_intact_trail_is_archived_and_never_over_a_file(tmp_path: Path) -> None:
    store = _trail(tmp_path / "state.db", [100.0, 200.0])
    target = tmp_path / "a.jsonl"
    target.write_bytes(b"kept")
    with pytest.raises(ConfigError, match="exists"):
        archive_audit(store, before=1000.0, target=target)
    with store.engine.begin() as conn:
        conn.execute(update(audit).where(audit.c.seq == 1).values(outcome="ok"))
    with pytest.raises(StoreError, match="broken at record 1"):
        archive_audit(store, before=1000.0, target=tmp_path / "b.jsonl")
    assert not (tmp_path / "b.jsonl").exists() and target.read_bytes() == b"kept"
    assert len(read_audit(store)) == 2
    store.close()


def test_an_archive_cut_short_is_finished_by_the_next(tmp_path: Path) -> None:
    """The file is written and the store says so, then the run is killed before the
    records are deleted. The next archive deletes them first, then goes on: the files and
    the store still form one chain, with no record in two places."""
    store = _trail(tmp_path / "state.db", [100.0, 200.0, 300.0, 400.0, 500.0])
    first = tmp_path / "a1.jsonl"
    with store.engine.connect() as conn:
        _write_archive(conn, first, after=0, last=3)
    with store.engine.begin() as conn:  # as archive_audit leaves it when killed here
        conn.execute(meta.insert().values(key="audit_archiving", value=f"3:{first}"))
    assert [r.seq for r in read_audit(store)] == [1, 2, 3, 4, 5]

    done = archive_audit(store, before=450.0, target=tmp_path / "a2.jsonl")
    assert (done.first_seq, done.last_seq) == (4, 4)
    assert [r.seq for r in read_audit(store)] == [5]
    whole = verify_audit(store, archives=[first, tmp_path / "a2.jsonl"])
    assert whole.ok and whole.checked == 5
    assert "audit_archiving" not in store.meta()
    store.close()


def test_archived_records_are_read_when_the_store_has_too_few(tmp_path: Path) -> None:
    """`audit show --archive`: the files give the older records that match, the store the
    newer, in one list; a limit the store fills does not open the files."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.audit(
        [
            _call(100.0, "send", ["A-1", "B-1"]),
            _call(101.0, "reply", ["A-1", "B-1"], "ack=2"),
            _call(200.0, "send", ["A-1|20260101080000|1"]),
            _call(300.0, "send", ["B-1|20260101090000|1"]),
        ]
    )
    archive = tmp_path / "a.jsonl"
    archive_audit(store, before=250.0, target=archive)
    store.audit([_call(400.0, "send", ["A-1|20260102080000|2"])])
    assert [r.seq for r in read_audit(store, dossier="A-1")] == [5]
    both = read_audit(store, dossier="A-1", archives=[archive])
    assert [r.seq for r in both] == [1, 2, 3, 5]
    assert [r.seq for r in read_audit(store, dossier="A-1", limit=2, archives=[archive])] == [3, 5]
    replies = read_audit(store, action="reply", archives=[archive])
    assert [(r.seq, r.outcome, r.keys) for r in replies] == [(2, "ack=2", ("A-1", "B-1"))]
    assert [r.seq for r in read_audit(store, since=150.0, until=350.0, archives=[archive])] == [
        3,
        4,
    ]
    archive.unlink()  # the store alone fills the limit: the file is not opened
    assert [r.seq for r in read_audit(store, limit=1, archives=[archive])] == [5]
    store.close()
