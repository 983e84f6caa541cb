"""Seeded personal data and secrets never reach a log line, /status, /metrics or the CLI."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.harness import wait_until
from tests.security.seeded import Seeded, portal_catalogue
from tests.security.stack import TOKEN_ENV, SecureStack, settled, table_text

pytestmark = pytest.mark.e2e

#: Every logging path that carries record or portal text, and must fire in this run.
EVENTS = (
    "record refused",
    "item dead-lettered",
    "portal call failed, will retry",
    "isUpdating repaired",
)


def _outputs(stack: SecureStack, token: str) -> dict[str, str]:
    """What an operator or a scraper can read from the running daemon."""
    return {
        "/status": stack.get("/status", token).text,
        "/metrics": stack.get("/metrics", token).text,
        "/readyz": stack.get("/readyz", token).text,
        "status --json": stack.cli("status", "--json", "-c", str(stack.config)).stdout,
    }


def _run_until_settled(stack: SecureStack) -> None:
    daemon = stack.start_daemon()
    wait_until(lambda: settled(stack), timeout=120, what="the outbox to settle")
    stack.stop(daemon)


def test_no_personal_data_or_secret_in_logs_status_metrics_or_audit(
    secure_stack: SecureStack, seeded: Seeded
) -> None:
    """With DEBUG logs, invalid records, echoing rejections, faults and repairs, no seeded
    personal value, password or token appears anywhere but the outbox (kept for operators,
    where `connector outbox show` still finds the portal's whole message)."""
    stack = secure_stack
    token = secrets.token_urlsafe(18)
    stack.extra_env[TOKEN_ENV] = token
    stack.configure(
        status=f'token = {{ env = "{TOKEN_ENV}" }}\n',
        level='"DEBUG"',
        attempts="1",  # every injected fault reaches the push job's own retry path
    )
    stack.start_echo_portal(portal_catalogue(stack.tmp), fault_rate=0.4, faults="503,429")

    daemon = stack.start_daemon()
    wait_until(lambda: settled(stack), timeout=120, what="the outbox to settle")
    outputs = _outputs(stack, token)
    stack.stop(daemon)
    first_state = stack.tmp / "state-first.db"
    stack.state_db.rename(first_state)
    for suffix in ("-wal", "-shm"):
        leftover = stack.state_db.with_name(stack.state_db.name + suffix)
        if leftover.exists():
            leftover.rename(first_state.with_name(first_state.name + suffix))
    # A fresh state store against the same portal: every header needs an isUpdating repair.
    _run_until_settled(stack)
    outputs["status --json (stopped)"] = stack.cli("status", "--json").stdout
    outputs["daemon log"] = log = stack.daemon_log()
    for db in (first_state, stack.state_db):
        outputs[f"audit of {db.name}"] = table_text(db, "audit")
    rejected, number = _a_rejected_item(stack)
    lists = {
        " ".join(args): stack.cli(*args).stdout
        for args in (
            ("outbox", "list"),
            ("outbox", "list", "--json"),
            ("outbox", "blocked"),
            ("outbox", "blocked", "--json"),
            ("trace", number, "--no-portal"),
            ("trace", number, "--no-portal", "--json"),
        )
    }
    # The lists carry the portal's message, which quotes the record back: masked there.
    # (The tables wrap it over lines, so the whole sentence is looked for in JSON only.)
    for where, text in lists.items():
        if "--json" in where:
            assert "not in the procedure catalogue" in text, f"no portal message in {where}"
    outputs.update(lists)

    for event in EVENTS:
        assert f'"event":"{event}"' in log, f"the {event!r} path did not run"
    # Fingerprints are keyed with each store's own key: a guessed value hashed alone
    # matches none of them.
    keys = [_fingerprint_key(db) for db in (first_state, stack.state_db)]
    assert keys[0] != keys[1], "each store makes its own key"
    plain = [v for v in seeded.values() if _fingerprint(b"", v, keyed=False) in log]
    keyed = [v for v in seeded.values() for k in keys if _fingerprint(k, v) in log]
    assert plain == [] and keyed, (plain, keyed)
    assert stack.stats()["rejections"].get("400", 0) > 0, "the portal rejected nothing"
    for where, text in outputs.items():
        assert text, f"nothing read from {where}"
        assert seeded.found_in(text) == [], f"personal data in {where}"
        assert stack.password not in text, f"the portal password in {where}"
        assert token not in text, f"the status token in {where}"
    # The search is not vacuous: the outbox keeps the portal's message whole, for operators.
    shown = stack.cli("outbox", "show", str(rejected)).stdout
    assert "not in the procedure catalogue" in shown
    assert seeded.found_in(shown), "the portal's message should be kept whole in the outbox"


def _a_rejected_item(stack: SecureStack) -> tuple[int, str]:
    """The id and dossier number of a header the portal rejected."""
    conn = sqlite3.connect(f"file:{stack.state_db}?mode=ro", uri=True)
    try:
        item, number = conn.execute(
            "SELECT id, dossier FROM outbox WHERE state = 'rejected' AND kind = 'header' LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return int(item), str(number)


def _fingerprint_key(db: Path) -> bytes:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'fingerprint_key'").fetchone()
    finally:
        conn.close()
    return bytes.fromhex(value)


def _fingerprint(key: bytes, value: str, *, keyed: bool = True) -> str:
    """The mask of `value` as the daemon writes it with `key`, or a plain hash of it."""
    data = value.encode("utf-8")
    if keyed:
        digest = hmac.new(key, data, hashlib.sha256).hexdigest()
    else:
        digest = hashlib.sha256(data).hexdigest()
    return f"«masked:{digest[:6]}»"
