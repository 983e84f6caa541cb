"""SIGKILL the daemon at seeded random moments during a faulty backfill, then check everything.

CI runs a small loop; `make soak` (CONNECTOR_SOAK=1) runs a long one. The seed is printed;
`CONNECTOR_CRASH_SEED=<seed>` replays the same kill moments and sandbox faults.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.harness import MAPPING, Stack, wait_until
from tests.faults.checker import Bounds, assert_clean, check
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
    from connector.demo.generate import init_demo

    seed = _seed()
    print(f"crash loop: seed={seed} kills={KILLS} dossiers={DOSSIERS}", flush=True)
    rng = random.Random(seed)
    stack = Stack(tmp=tmp_path, header_batch=HEADER_BATCH, step_batch=STEP_BATCH)
    init_demo(stack.demo_db, MAPPING.parent / "demo", dossiers=DOSSIERS, seed=seed % 997)
    stack.write_config()
    from tests.e2e.harness import expected_from_demo

    invalid = expected_from_demo(stack.demo_db).invalid
    try:
        stack.start_sandbox(
            "--fault-rate", "0.15",
            "--faults", "503,reset,429,slow",
            "--slow-seconds", "0.3",
            "--retry-after", "0.2",
            "--seed", str(seed),
        )  # fmt: skip
        for kill in range(KILLS):
            before = _progress(stack)
            daemon = stack.start_daemon()
            # Kill at a random moment once this run has delivered something: mid-backfill.
            wait_until(
                lambda b=before: _progress(stack) > b or drained(stack.state_db, invalid),
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
        wait_until(
            lambda: drained(stack.state_db, invalid),
            timeout=3600 if SOAK else 120,
            interval=0.5,
            what=f"the outbox to drain (seed {seed})",
        )
        faults = stack.stats()["faults"]
    finally:
        stack.stop_all()
    resets = faults.get("reset", 0)
    bounds = Bounds(
        noop_applications=(KILLS + resets) * HEADER_BATCH,
        duplicate_steps=(KILLS + resets) * STEP_BATCH,
    )
    report = check(stack.demo_db, stack.sandbox_db, stack.state_db, bounds=bounds)
    print(f"crash loop: seed={seed} faults={faults} figures={report.figures}", flush=True)
    assert report.figures["dossiers"] > 0
    if not report.ok:
        raise AssertionError(f"seed {seed}: replay with CONNECTOR_CRASH_SEED={seed}\n{report}")
    assert_clean(report)
