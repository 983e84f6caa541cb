"""A writer killed at a random moment leaves whole batches, each with its cursor, or nothing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from connector.core.records import Kind, State
from connector.store import SqlStore

PER_BATCH = 30  # 10 headers and 20 steps

WRITER = """
import sys
from connector.core.records import Kind, Mapped
from connector.store import SqlStore

store = SqlStore.open(sys.argv[1])
done = (store.cursor("pages") or (0,))[0]
print("ready", flush=True)
for batch in range(done + 1, done + 5000):
    items = []
    for n in range(10):
        key = f"B{batch}-D{n}"
        items.append(Mapped(kind=Kind.HEADER, key=key, dossier=key, source_ref=key,
                            payload={"MaHoSo": key, "pad": "x" * 500}))
        for s in range(2):
            items.append(Mapped(kind=Kind.STEP, key=f"{key}|{s}", dossier=key,
                                source_ref=f"{key}|{s}", payload={"MaHoSo": key, "s": s}))
    store.ingest("pages", items, (batch,), now=float(batch))
"""


def _run_and_kill(url: str, rng: random.Random) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    time.sleep(rng.uniform(0.02, 0.4))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()


def _check(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SqlStore.open(f"sqlite:///{path}")
    try:
        cursor = store.cursor("pages")
        stored = (cursor or (0,))[0]
        counts = store.counts()
        assert counts.get((Kind.HEADER, State.PENDING), 0) == stored * 10
        assert counts.get((Kind.STEP, State.PENDING), 0) == stored * 20
        if stored:
            last = store.dossier_history(f"B{stored}-D9")
            assert len(last) == 3
        return int(stored)
    finally:
        store.close()


def test_killed_writer_leaves_whole_batches(tmp_path: Path) -> None:
    """Three SIGKILLs at random moments; after each, batches and cursor agree exactly."""
    seed = int(os.environ.get("CONNECTOR_DURABILITY_SEED", time.time_ns() % 1_000_000))
    print(f"durability seed: {seed}")
    rng = random.Random(seed)
    path = tmp_path / "killed.db"
    url = f"sqlite:///{path}"
    previous = 0
    for _ in range(3):
        _run_and_kill(url, rng)
        stored = _check(path)
        assert stored >= previous, f"seed {seed}: cursor went back"
        previous = stored
        print(f"batches stored: {stored}")
    assert previous > 0, f"seed {seed}: the writer never committed a batch"
