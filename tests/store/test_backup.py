"""State backups: a whole, checked copy, or a clear refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from connector.errors import ConfigError
from connector.ports import AuditEvent
from connector.store import SqlStore
from connector.store.backup import back_up
from connector.store.schema import audit


def _store(path: Path, events: int = 3) -> SqlStore:
    store = SqlStore.open(f"sqlite:///{path}")
    store.audit(
        [
            AuditEvent(at=1000.0 + n, action="send", service="DongBoHoSoMC", keys=[f"D{n}"])
            for n in range(events)
        ]
    )
    return store


def test_the_copy_is_checked_and_says_what_it_holds(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    done = back_up(store.engine, tmp_path / "copy.db")
    store.close()
    assert done.ok and done.integrity == "ok"
    assert done.audit.checked == 3
    assert done.size == (tmp_path / "copy.db").stat().st_size > 0
    assert not (tmp_path / "copy.db.part").exists()


def test_the_store_and_its_copies_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """They hold payloads with personal data in clear: a new store, its WAL and a backup
    are made 0600 whatever the umask; a store that already exists keeps its mode."""
    umask = os.umask(0)  # the most permissive: nothing here relies on it
    try:
        store = _store(tmp_path / "state.db")
        back_up(store.engine, tmp_path / "copy.db")
    finally:
        os.umask(umask)
    made = ["state.db", "state.db-wal", "copy.db"]
    assert {name: (tmp_path / name).stat().st_mode & 0o777 for name in made} == dict.fromkeys(
        made, 0o600
    )
    store.close()
    shared = tmp_path / "shared.db"
    shared.touch(mode=0o640)
    shared.chmod(0o640)
    SqlStore.open(f"sqlite:///{shared}").close()
    assert shared.stat().st_mode & 0o777 == 0o640


def test_a_copy_of_an_edited_trail_is_reported_unsound(tmp_path: Path) -> None:
    """The copy is checked from its own file: an audit trail edited before the backup
    shows up in the backup's verdict, so a backup never vouches for a broken trail."""
    store = _store(tmp_path / "state.db")
    with store.engine.begin() as conn:
        conn.execute(update(audit).where(audit.c.seq == 2).values(outcome="ok"))
    done = back_up(store.engine, tmp_path / "copy.db")
    store.close()
    assert not done.ok
    assert done.audit.first_bad_seq == 2


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    target = tmp_path / "copy.db"
    target.write_bytes(b"an older backup")
    with pytest.raises(ConfigError, match="exists"):
        back_up(store.engine, target)
    store.close()
    assert target.read_bytes() == b"an older backup"


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://u@127.0.0.1:1/x"])
def test_stores_without_a_file_are_refused_with_advice(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="pg_dump"):
        back_up(create_engine(url), tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_a_copy_that_cannot_be_read_is_reported_with_the_reason(tmp_path: Path) -> None:
    """What the check says of a file that is not a database: not sound, and why."""
    from connector.store.backup import _check

    garbage = tmp_path / "copy.db"
    garbage.write_bytes(b"not a database" * 100)
    integrity, audit = _check(garbage)
    assert integrity.startswith("the copy cannot be read: ") and "not a database" in integrity
    assert not audit.ok and audit.reason == integrity
