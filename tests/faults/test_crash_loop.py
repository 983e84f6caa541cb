"""SIGKILL the daemon at seeded random moments during a faulty backfill, then check everything.

CI runs a small loop; `make soak` (CONNECTOR_SOAK=1) runs a long one. The seed is printed;
`CONNECTOR_CRASH_SEED=<seed>` replays the same kill moments and sandbox faults.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from sqlalchemy.exc import SQLAlchemyError

from tests.e2e.harness import MAPPING, Stack, wait_until
from tests.faults.checker import Bounds, assert_clean, check, read_state
from tests.faults.workload import drained

pytestmark = pytest.mark.e2e

SOAK = os.environ.get("CONNECTOR_SOAK") == "1"
KILLS, DOSSIERS = (50, 20_000) if SOAK else (5, 1_000)
HEADER_BATCH, STEP_BATCH = 20, 80


def _seed() -> int:
    given = os.environ.get("CONNECTOR_CRASH_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 31)


def _progress(stack: Stack) -> int:
    stats = stack.stats()
    return int(stats["dossiers"]) + int(stats["steps"])


def test_crash_loop_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Killed N times with SIGKILL during a backfill with portal faults on, the daemon still
    delivers every valid record once, in order, and dead-letters exactly the invalid ones."""
    _crash_loop(tmp_path)


def test_crash_loop_while_the_local_system_changes(tmp_path: Path) -> None:
    """The same while the local system keeps changing under the kills: new dossiers arrive
    and open ones move on (new steps, new header versions), as in a working day. A smaller
    backfill is delivered within the first kills, so the later ones strike while dossiers
    the portal holds are being updated (the loop waits for five such updates before the
    changes stop). The portal ends holding the latest version of every valid dossier and
    all its steps."""
    _crash_loop(tmp_path, dossiers=DOSSIERS // 4, changing=True)


def test_crash_loop_on_a_postgresql_state_store(tmp_path: Path) -> None:
    """The same with the state store on PostgreSQL, a configuration change: killed daemons
    leave their advisory worker lock behind them, and nothing is lost or sent twice."""
    url = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CONNECTOR_TEST_POSTGRES_URL is not set")
    from connector.store import SqlStore
    from connector.store.schema import metadata

    emptied = SqlStore.open(url)
    metadata.drop_all(emptied.engine)
    emptied.close()
    _crash_loop(tmp_path, dossiers=DOSSIERS // 2, state_url=url)


def _crash_loop(
    tmp_path: Path,
    *,
    dossiers: int = DOSSIERS,
    changing: bool = False,
    state_url: str | None = None,
) -> None:
    """Kill the daemon KILLS times mid-delivery, restart it, let it drain, then check."""
    from connector.demo.generate import init_demo
    from connector.demo.live import run_activity
    from tests.e2e.harness import expected_from_demo

    seed = _seed()
    print(f"crash loop: seed={seed} kills={KILLS} dossiers={dossiers} changing={changing}")
    rng = random.Random(seed)
    stack = Stack(
        tmp=tmp_path, header_batch=HEADER_BATCH, step_batch=STEP_BATCH, state_url=state_url
    )
    init_demo(stack.demo_db, MAPPING.parent / "demo", dossiers=dossiers, seed=seed % 997)
    stack.write_config()
    invalid = expected_from_demo(stack.demo_db).invalid
    stop = threading.Event()
    writer = threading.Thread(
        target=run_activity,
        args=(stack.demo_db, MAPPING.parent / "demo"),
        kwargs={"interval": 0.1, "stop": stop, "seed": seed},
        daemon=True,
    )
    try:
        stack.start_sandbox(
            "--fault-rate", "0.15",
            "--faults", "503,reset,429,slow",
            "--slow-seconds", "0.3",
            "--retry-after", "0.2",
            "--seed", str(seed),
        )  # fmt: skip
        if changing:
            writer.start()
        for kill in range(KILLS):
            before = _progress(stack)
            daemon = stack.start_daemon()
            # Kill at a random moment once this run has delivered something: mid-backfill.
            wait_until(
                lambda b=before: _progress(stack) > b or drained(stack.state_store, invalid),
                timeout=120,
                interval=0.05,
                what=f"delivery before kill {kill + 1} (seed {seed})",
            )
            time.sleep(rng.uniform(0.0, 1.5))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=10)
            held = stack.stats()
            print(
                f"kill {kill + 1}/{KILLS}: portal holds {held['dossiers']} dossiers, "
                f"{held['steps']} steps",
                flush=True,
            )
        stack.start_daemon()
        if changing:  # the last daemon starts under the changes too, then they stop
            wait_until(
                lambda: _updates(stack) >= 5,
                timeout=120,
                interval=0.2,
                what=f"updates of dossiers the portal holds (seed {seed})",
            )
            stop.set()
            writer.join(timeout=30)
        invalid = expected_from_demo(stack.demo_db).invalid  # the writer adds some too
        wait_until(
            lambda: _caught_up(stack) and drained(stack.state_store, invalid),
            timeout=3600 if SOAK else 120,
            interval=0.5,
            what=f"the outbox to drain (seed {seed})",
        )
        faults = stack.stats()["faults"]
    finally:
        stop.set()
        stack.stop_all()
    resets = faults.get("reset", 0)
    bounds = Bounds(
        noop_applications=(KILLS + resets) * HEADER_BATCH,
        duplicate_steps=(KILLS + resets) * STEP_BATCH,
    )
    report = check(stack.demo_db, stack.sandbox_db, stack.state_store, bounds=bounds)
    print(f"crash loop: seed={seed} faults={faults} figures={report.figures}", flush=True)
    assert report.figures["dossiers"] > 0
    if not report.ok:
        raise AssertionError(f"seed {seed}: replay with CONNECTOR_CRASH_SEED={seed}\n{report}")
    assert_clean(report)


def _updates(stack: Stack) -> int:
    """Header versions the portal applied to dossiers it already held (re-sends excluded)."""
    try:
        with closing(sqlite3.connect(f"file:{stack.sandbox_db}?mode=ro", uri=True)) as portal:
            (updates,) = portal.execute(
                "SELECT count(*) FROM applications WHERE is_updating = 1 AND noop = 0"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(updates)


def _caught_up(stack: Stack) -> bool:
    """Every stream's cursor is at the local system's newest change."""
    with closing(sqlite3.connect(stack.demo_db, timeout=30)) as demo:
        newest = {
            table: list(
                demo.execute(
                    f"SELECT modified_at, id FROM {table} ORDER BY modified_at DESC, id DESC"
                ).fetchone()
            )
            for table in ("dossiers", "steps")
        }
    try:
        with read_state(stack.state_store) as state:
            cursors = dict(state.execute("SELECT stream, value FROM cursors").fetchall())
    except (sqlite3.Error, SQLAlchemyError):
        return False
    return all(
        stream in cursors and orjson.loads(cursors[stream]) == newest[stream] for stream in newest
    )
