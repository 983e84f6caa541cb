"""Write failures of the SQLite file surface as StoreError, with no payload in the message."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from connector.core.records import Kind, Mapped
from connector.errors import StoreError
from connector.store import SqlStore


def _headers(count: int, start: int = 0) -> list[Mapped]:
    return [
        Mapped(
            kind=Kind.HEADER,
            key=f"D{n}",
            dossier=f"D{n}",
            source_ref=f"dossiers:{n}",
            payload={"MaHoSo": f"D{n}", "ChuHoSo": "Nguyễn Văn A " + "x" * 2000},
        )
        for n in range(start, start + count)
    ]


def test_full_database_raises_store_error(tmp_path: Path) -> None:
    """SQLITE_FULL becomes a StoreError saying the store is full; the cursor stays put."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'full.db'}")
    store.ingest("dossiers", _headers(1), ("c", 1), now=1.0)

    @event.listens_for(store.engine, "connect")
    def _cap(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA max_page_count=40")

    store.engine.dispose()
    with pytest.raises(StoreError, match="full") as caught:
        store.ingest("dossiers", _headers(200, start=1), ("c", 2), now=2.0)
    assert "Nguyễn" not in str(caught.value)
    assert store.cursor("dossiers") == ("c", 1)
    store.close()


def test_locked_database_raises_store_error(tmp_path: Path) -> None:
    """A writer that cannot get the lock in time gets a StoreError naming the lock."""
    path = tmp_path / "locked.db"
    store = SqlStore.open(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        error = _ingest_in_thread(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(error, StoreError)
    assert "locked" in str(error)
    store.close()


def _ingest_in_thread(store: SqlStore) -> BaseException | None:
    """Run an ingest on a fresh pooled connection with a short busy timeout."""
    caught: list[BaseException] = []

    @event.listens_for(store.engine, "connect")
    def _short(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    store.engine.dispose()

    def work() -> None:
        try:
            store.ingest("dossiers", _headers(1), ("c", 1), now=1.0)
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=20)
    return caught[0] if caught else None
