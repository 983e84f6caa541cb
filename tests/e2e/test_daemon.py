"""The daemon against the real sandbox portal over loopback: delivery, stop, crash."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.e2e.harness import (
    Expected,
    Stack,
    dead_letters,
    expected_from_demo,
    held_by_sandbox,
    outbox_states,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _delivered(stack: Stack, n_dossiers: int, n_steps: int) -> bool:
    stats = stack.stats()
    return stats["dossiers"] >= n_dossiers and stats["steps"] >= n_steps


def _drained(stack: Stack, invalid: frozenset[str]) -> bool:
    """Nothing pending or in flight but the steps of invalid dossiers, which wait for a fix."""
    import sqlite3

    db = sqlite3.connect(f"file:{stack.state_db}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, dossier FROM outbox WHERE state IN ('pending','in_flight')")
        return all(kind == "step" and dossier in invalid for kind, dossier in rows)
    finally:
        db.close()


def _wait_for_everything(stack: Stack, expected: Expected, *, timeout: float, what: str) -> None:
    """Until the sandbox holds the whole demo and nothing is left to send."""
    wait_until(
        lambda: _delivered(stack, len(expected.dossiers), len(expected.steps)),
        timeout=timeout,
        what=what,
    )
    wait_until(lambda: _drained(stack, expected.invalid), timeout=30, what="the outbox to drain")


def assert_exactly_once(stack: Stack) -> None:
    """The portal holds every valid dossier and step once; every invalid one is a dead
    letter with its reason; nothing else is dead or missing."""
    expected = expected_from_demo(stack.demo_db)
    held = held_by_sandbox(stack.sandbox_db)
    assert set(held.dossiers) == expected.dossiers
    assert len(held.steps) == len(set(held.steps)), "a step is held twice"
    assert set(held.steps) == expected.steps
    for dossier, payload in held.dossiers.items():
        assert payload["TrangThaiHoSo"] == expected.status_of[dossier], dossier
    dead = dead_letters(stack.state_db)
    assert set(dead) == expected.invalid
    for dossier, reason in dead.items():
        assert "MaTTHC" in reason or "NgayHenTra" in reason, (dossier, reason)


def test_daemon_delivers_every_valid_record_once(stack: Stack) -> None:
    """From an empty state the daemon delivers the whole demo and parks only the invalid."""
    expected = expected_from_demo(stack.demo_db)
    assert expected.invalid, "the demo must contain deliberately invalid records"
    stack.start_sandbox()
    daemon = stack.start_daemon()
    _wait_for_everything(stack, expected, timeout=120, what="the sandbox to hold the demo")
    assert_exactly_once(stack)
    stats = stack.stats()
    assert stats["duplicate_steps"] == 0
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert outbox_states(stack.state_db).get("in_flight", 0) == 0


def test_the_status_after_a_stop_shows_the_jobs_as_the_daemon_left_them(stack: Stack) -> None:
    """`connector status` with no daemon running reads the jobs' last state from the store
    (saved at the stop), says so and when, instead of showing them as never run."""
    import json

    expected = expected_from_demo(stack.demo_db)
    stack.start_sandbox()
    daemon = stack.start_daemon()
    _wait_for_everything(stack, expected, timeout=120, what="the sandbox to hold the demo")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    offline = json.loads(stack.cli("status", "--json", "--config", str(stack.config)).stdout)
    assert offline["daemon"]["running"] is False
    assert offline["daemon"]["jobs_saved_at"].endswith("Z")
    assert offline["push"]["state"] == "ok" and offline["push"]["last_success_at"]
    assert offline["pull"]["state"] == "ok" and offline["pull"]["last_run_at"]
    text = stack.cli("status", "--config", str(stack.config)).stdout
    assert "jobs as the daemon left them at " in " ".join(text.split())


def test_status_endpoint_reports_the_pipeline(stack: Stack) -> None:
    """/status, /healthz, /readyz and /metrics answer with the daemon's real figures, the
    store's part of them first computed at start."""
    import httpx

    expected = expected_from_demo(stack.demo_db)
    stack.start_sandbox()
    stack.start_daemon()
    _wait_for_everything(stack, expected, timeout=120, what="delivery")

    def status_settled() -> bool:
        status = stack.status()
        return bool(status) and status["outbox"]["header"]["acked"] >= len(expected.dossiers)

    wait_until(status_settled, timeout=20, what="status to show the acknowledgements")
    status = stack.status()
    assert status is not None
    assert status["dead_letters"] == len(expected.invalid)
    assert status["outbox"]["step"]["pending"] == 0
    assert status["session"] == "active"
    assert set(status["cursors"]) == {"dossiers", "steps"}
    assert status["push"]["last_success_at"] is not None
    assert httpx.get(f"{stack.status_url}/healthz", trust_env=False).status_code == 200
    assert httpx.get(f"{stack.status_url}/readyz", trust_env=False).status_code == 200
    metrics = httpx.get(f"{stack.status_url}/metrics", trust_env=False).text
    assert "connector_outbox_items" in metrics
    assert 'connector_sent_items_total{kind="header",outcome="ok"}' in metrics
    assert "status figures computed at start" in stack.logs()


def test_sigkill_during_push_loses_nothing(stack: Stack) -> None:
    """Killing the daemon with SIGKILL mid-push, twice, still ends with every valid record
    held exactly once and at most one batch re-sent per kill."""
    stack.header_batch, stack.step_batch = 10, 40
    stack.write_config()
    expected = expected_from_demo(stack.demo_db)
    # A small delay on each call keeps pushes in flight when the kill lands.
    stack.start_sandbox("--fault-rate", "0.3", "--faults", "slow", "--slow-seconds", "0.3")
    kills = 0
    for threshold in (len(expected.dossiers) // 4, len(expected.dossiers) // 2):
        daemon = stack.start_daemon()
        wait_until(
            lambda t=threshold: stack.stats()["dossiers"] >= t,
            timeout=120,
            interval=0.05,
            what=f"{threshold} dossiers",
        )
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        kills += 1
    assert outbox_states(stack.state_db).get("pending", 0) > 0, "killed too late to matter"
    stack.start_daemon()
    _wait_for_everything(stack, expected, timeout=180, what="delivery after the kills")
    assert_exactly_once(stack)
    stats = stack.stats()
    assert stats["duplicate_steps"] <= kills * stack.step_batch
    applied = Counter(stats_row for stats_row in _applications(stack))
    repeated = sum(n - 1 for n in applied.values() if n > 1)
    assert repeated <= kills * stack.header_batch


def _applications(stack: Stack) -> list[tuple[str, str]]:
    import sqlite3

    db = sqlite3.connect(f"file:{stack.sandbox_db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute("SELECT ma_ho_so, hash FROM applications")]  # type: ignore[misc]
    finally:
        db.close()


def _queued(stack: Stack) -> int:
    import sqlite3

    try:
        return outbox_states(stack.state_db).get("pending", 0)
    except sqlite3.Error:  # the daemon has not created its store yet
        return 0


def test_portal_outage_then_recovery(stack: Stack) -> None:
    """With the portal down at start, nothing is lost: items wait and go when it returns."""
    expected = expected_from_demo(stack.demo_db)
    daemon = stack.start_daemon()
    wait_until(lambda: _queued(stack) > 0, timeout=60, what="items queued")
    time.sleep(1.0)
    assert daemon.poll() is None
    assert outbox_states(stack.state_db).get("acked", 0) == 0
    stack.start_sandbox()
    _wait_for_everything(stack, expected, timeout=120, what="delivery after the outage")
    assert_exactly_once(stack)


def test_wrong_password_keeps_items_queued(stack: Stack) -> None:
    """A refused login is reported and keeps everything queued, nothing dead-lettered."""
    stack.start_sandbox()
    stack.password = "not-the-sandbox-password"
    daemon = stack.start_daemon()

    def refused() -> bool:
        status = stack.status()
        return bool(status) and status["push"]["state"] == "refused"

    wait_until(refused, timeout=60, what="status to report the refusal")
    states = outbox_states(stack.state_db)
    assert states.get("acked", 0) == 0
    assert states.get("rejected", 0) == 0 and states.get("parked", 0) == 0
    assert stack.stats()["dossiers"] == 0
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def test_second_worker_on_the_same_store_is_refused(stack: Stack) -> None:
    """`run --once` beside a running daemon waits `worker_lock_wait_seconds`, saying why,
    then is refused, naming the daemon's pid; once the daemon has stopped, it runs."""
    stack.start_sandbox()
    daemon = stack.start_daemon()
    wait_until(lambda: stack.status() is not None, timeout=30, what="the daemon to start")
    impatient = stack.tmp / "impatient.toml"
    stack.write_config(worker_lock_wait_seconds="1").rename(impatient)
    stack.write_config()
    refused = stack.cli("run", "--once", "--config", str(impatient), check=False)
    said = refused.stderr + refused.stdout
    assert refused.returncode == 1
    assert "waiting for the state store's worker lock" in said
    assert f"pid {daemon.pid} on host" in said
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    stack.cli("run", "--once", "--config", str(stack.config))
