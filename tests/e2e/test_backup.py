"""Operations on a live state store: `connector state backup` while the daemon runs, a
restore of an older copy, `connector audit archive` while the daemon appends."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from connector.demo.live import DemoActivity, run_activity
from connector.store.audit import verify_audit
from tests.e2e.harness import MAPPING, Stack, wait_until
from tests.faults.checker import Bounds, assert_clean, check

pytestmark = pytest.mark.e2e

CROSSWALKS = MAPPING.parent / "demo"


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (n,) = conn.execute(sql).fetchone()
        return int(n)
    finally:
        conn.close()


@contextmanager
def _running(stack: Stack) -> Iterator[None]:
    """The sandbox and the daemon, pushing, while the demo's live writer changes the local
    system every 0.05 s; the writer stops when the block ends."""
    stack.start_sandbox()
    stack.start_daemon()
    wait_until(lambda: stack.stats()["steps"] > 0, timeout=60, what="the first steps")
    stop = threading.Event()
    writer = threading.Thread(
        target=run_activity,
        args=(stack.demo_db, CROSSWALKS),
        kwargs={"interval": 0.05, "stop": stop},
        daemon=True,
    )
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=10)


def test_a_backup_taken_while_everything_runs_is_whole_and_checked(stack: Stack) -> None:
    """The daemon pushes and the local system changes while the copy is taken: the copy is
    one instant's store (its audit chain verifies up to its own head), checked, and a
    second backup refuses to overwrite it."""
    copy = stack.tmp / "copy.db"
    with _running(stack):
        result = stack.cli("state", "backup", str(copy), "--config", str(stack.config))
    assert "copy checked: integrity ok, audit trail intact" in result.stdout
    assert not copy.with_name("copy.db.part").exists()
    engine = create_engine(f"sqlite:///{copy}")
    try:
        audit = verify_audit(engine)
    finally:
        engine.dispose()
    assert audit.ok and audit.checked > 0
    assert _count(copy, "SELECT count(*) FROM outbox") > 0

    again = stack.cli("state", "backup", str(copy), "--config", str(stack.config), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_restoring_an_older_backup_sends_again_only_what_came_after(stack: Stack) -> None:
    """A copy taken after a first delivery is put back after a second one. The cursors go
    back with it, so what the second delivery sent is read and sent again: new dossiers
    the portal already holds (the connector finds them with TraCuuHoSo and sends them as
    updates), their steps again. The checker finds every dossier and step held once in
    effect, and the repeats within what the second delivery sent."""
    config = str(stack.config)
    stack.start_sandbox()
    stack.cli("run", "--once", "--config", config)
    copy = stack.tmp / "copy.db"
    stack.cli("state", "backup", str(copy), "--config", config)

    activity = DemoActivity(stack.demo_db, CROSSWALKS, seed=7)
    try:
        for _ in range(3):
            activity.tick(new_dossiers=4, advances=6)
    finally:
        activity.close()
    before = stack.stats()
    stack.cli("run", "--once", "--config", config)
    middle = stack.stats()
    assert middle["dossiers"] > before["dossiers"]

    for leftover in ("-wal", "-shm"):
        Path(f"{stack.state_db}{leftover}").unlink(missing_ok=True)
    copy.replace(stack.state_db)
    stack.cli("run", "--once", "--config", config)
    after = stack.stats()
    assert (after["dossiers"], after["steps"]) == (middle["dossiers"], middle["steps"])
    assert after["duplicate_steps"] > middle["duplicate_steps"]  # it did send them again

    headers_applied = (
        middle["dossiers"]
        - before["dossiers"]
        + (middle["header_updates"] - before["header_updates"])
    )
    # Each dossier new since the copy was sent as new, refused as already held, looked up
    # and sent as an update: a no-op, like every header the second delivery had sent.
    assert sum(after["rejections"].values()) == middle["dossiers"] - before["dossiers"]
    assert after["noop_updates"] - middle["noop_updates"] == headers_applied
    bounds = Bounds(
        noop_applications=headers_applied, duplicate_steps=middle["steps"] - before["steps"]
    )
    assert_clean(check(stack.demo_db, stack.sandbox_db, stack.state_db, bounds=bounds))
    assert "audit trail intact" in stack.cli("audit", "verify", "--config", config).stdout


def test_an_audit_archive_while_the_daemon_appends_keeps_one_chain(stack: Stack) -> None:
    """The daemon pushes a changing local system while the trail so far is archived: the
    daemon goes on appending, and the file and the store verify as one chain."""
    config = str(stack.config)
    archive = stack.tmp / "audit-1.jsonl"
    with _running(stack):
        wait_until(
            lambda: _count(stack.state_db, "SELECT count(*) FROM audit") > 20,
            timeout=60,
            what="twenty audit records",
        )
        done = stack.cli(
            "audit", "archive", str(archive), "--before", "2999-01-01", "--config", config
        )
        assert "archived" in done.stdout
        before = stack.stats()["steps"]
        wait_until(lambda: stack.stats()["steps"] > before, timeout=60, what="more steps")
    stack.stop_all()
    whole = stack.cli("audit", "verify", "--archive", str(archive), "--config", config)
    assert "audit trail intact" in whole.stdout
    assert _count(stack.state_db, "SELECT count(*) FROM audit") > 0  # written after the cut
