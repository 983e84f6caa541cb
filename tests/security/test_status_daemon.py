"""The daemon's status server: token rules by bind address, and operator actions over HTTP."""

from __future__ import annotations

import secrets
import sqlite3

import httpx
import orjson
import pytest

from tests.e2e.harness import wait_until
from tests.security.stack import TOKEN_ENV, SecureStack, settled

pytestmark = pytest.mark.e2e


def _first_dossier(stack: SecureStack) -> str:
    conn = sqlite3.connect(f"file:{stack.demo_db}?mode=ro", uri=True)
    try:
        (number,) = conn.execute("SELECT dossier_no FROM dossiers ORDER BY id LIMIT 1").fetchone()
    finally:
        conn.close()
    return str(number)


def _healthy(stack: SecureStack) -> bool:
    try:
        return stack.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _operator_events(stack: SecureStack) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{stack.state_db}?mode=ro", uri=True)
    try:
        query = "SELECT service, detail FROM audit WHERE action = 'operator' ORDER BY seq"
        return [(r[0], r[1]) for r in conn.execute(query)]
    finally:
        conn.close()


def test_status_beyond_the_default_address_needs_the_token_and_actions_work(
    secure_stack: SecureStack,
) -> None:
    """On 127.0.0.2 only /healthz is open; with the token, status, the CLI, retry and
    resync work, run the CLI's code and are recorded in the audit trail."""
    stack = secure_stack
    token = secrets.token_urlsafe(18)
    stack.extra_env[TOKEN_ENV] = token
    stack.status_host = "127.0.0.2"
    stack.configure(status=f'host = "127.0.0.2"\ntoken = {{ env = "{TOKEN_ENV}" }}\n')
    stack.start_sandbox()
    stack.start_daemon()
    wait_until(lambda: _healthy(stack), timeout=30, what="the status server")

    for path in ("/status", "/readyz", "/metrics"):
        assert stack.get(path).status_code == 401, path
        assert stack.get(path, "wrong").status_code == 401, path
    wait_until(lambda: settled_with(stack, token), timeout=90, what="the outbox to settle")
    shown = orjson.loads(stack.cli("status", "--json").stdout)
    assert shown["daemon"]["running"] is True

    dead = stack.get("/status", token).json()["dead_letters"]
    assert dead > 0
    assert stack.post("/actions/retry", {"all_dead": True}).status_code == 401
    retried = stack.post("/actions/retry", {"all_dead": True}, token)
    assert retried.status_code == 200, retried.text
    results = retried.json()["results"]
    assert len(results) == dead
    assert {r["action"] for r in results} <= {"re-read", "requeued", "still refused"}

    dossier = _first_dossier(stack)
    preview = stack.post("/actions/resync", {"dossier": dossier, "dry_run": True}, token)
    assert preview.status_code == 200, preview.text
    assert preview.json()["read"]["dossiers"] == 1
    resynced = stack.post("/actions/resync", {"dossier": dossier}, token)
    assert resynced.status_code == 200, resynced.text
    assert resynced.json()["queued"]["dossiers"] == 1
    assert preview.json()["queued"] == resynced.json()["queued"]  # the dry run counted it
    assert _operator_events(stack) == [("retry", "http; all dead"), ("resync", "http")]


def settled_with(stack: SecureStack, token: str) -> bool:
    reply = stack.get("/status", token)
    if reply.status_code != 200:
        return False
    outbox = reply.json()["outbox"]
    busy = [
        outbox[kind][state] for kind in ("header", "step") for state in ("pending", "in_flight")
    ]
    return sum(busy) == 0 and outbox["header"]["acked"] > 0


def test_loopback_default_serves_status_but_actions_need_a_configured_token(
    plain_stack: SecureStack,
) -> None:
    """On 127.0.0.1 without status.token, /status is open and every action answers 403."""
    stack = plain_stack
    stack.start_sandbox()
    stack.start_daemon()
    wait_until(lambda: settled(stack), timeout=90, what="the outbox to settle")
    assert stack.get("/status").status_code == 200
    for path, body in (
        ("/actions/retry", {"all_dead": True}),
        ("/actions/resync", {"dossier": "X"}),
    ):
        reply = stack.post(path, body, "anything")
        assert reply.status_code == 403, path
        assert reply.json() == {"error": "actions need status.token"}
    assert _operator_events(stack) == []
