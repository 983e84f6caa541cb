"""The connector's own side failing: the local system unreadable, the state store full."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from connector.app import App
from connector.store.sql import SqlStore
from tests.faults.checker import assert_clean
from tests.faults.workload import Rig, close_app, drive

pytestmark = pytest.mark.e2e

SQLITE_HEADER = 100  # the file header, with the change counter SQLite checks


async def test_source_unavailable_pauses_pull_only(rig: Rig) -> None:
    """While the local database cannot be read, pushing goes on, the cursors stay put and the
    status says pull is paused; when it is back, pulling resumes."""
    with rig.portal() as sandbox:
        settings = rig.settings(sandbox.url)
        first = App(settings)
        try:
            await asyncio.to_thread(first.pull_job().run)
        finally:
            await close_app(first)
        original = rig.demo_db.read_bytes()[:SQLITE_HEADER]
        with rig.demo_db.open("r+b") as f:
            f.write(b"\xff" * SQLITE_HEADER)
        app = App(settings)
        try:
            cursors = dict(app.store.cursors())
            pull = app.pull_job()
            await drive(app, until=rig.drained, timeout=60)
            status = app.snapshot()
            assert status["pull"]["state"] == "paused"
            assert "local system" in status["pull"]["last_error"]["message"]
            assert app.ready() == (False, status["pull"]["last_error"]["message"])
            assert dict(app.store.cursors()) == cursors
            with rig.demo_db.open("r+b") as f:
                f.write(original)
            await asyncio.to_thread(pull.run)
            assert app.snapshot()["pull"]["state"] == "ok"
        finally:
            await close_app(app)
    assert_clean(rig.check())


def _cap_pages(store: SqlStore, cap: list[int]) -> None:
    """A test hook: every state-store connection gets `PRAGMA max_page_count = cap[0]`."""

    def limit(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {cap[0]}")
        cursor.close()

    event.listen(store.engine, "connect", limit)
    store.engine.dispose()


def _pages(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())


async def test_state_store_full_pauses_and_resumes(rig: Rig) -> None:
    """With the state store out of space, pulling stops with a clear status and the status
    still answers; nothing is skipped and everything goes once space returns."""
    with rig.portal() as sandbox:
        app = App(rig.settings(sandbox.url, source={"page_size": 20}))
        try:
            store = app.store
            assert isinstance(store, SqlStore)
            cap = [_pages(store) + 40]
            _cap_pages(store, cap)
            pull = app.pull_job()
            await asyncio.to_thread(pull.run)
            status = app.snapshot()
            assert status["pull"]["state"] == "paused"
            assert "full" in status["pull"]["last_error"]["message"]
            assert status["state_store"] == "ok"  # reads still work
            await app.push_job().drain(max_seconds=5)
            pushed = app.snapshot(fresh=True)  # the figures after the push, not shared ones
            assert pushed["outbox"]["header"]["acked"] > 0 or pushed["push"]["state"] == "paused"
            cap[0] = 1 << 30
            store.engine.dispose()
            await drive(app, until=rig.drained, timeout=60)
            assert app.snapshot()["pull"]["state"] == "ok"
        finally:
            await close_app(app)
    assert_clean(rig.check())
