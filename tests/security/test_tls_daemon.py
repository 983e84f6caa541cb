"""The daemon's TLS and proxy behaviour against a real sandbox portal on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import expected_from_demo, free_port, outbox_states, wait_until
from tests.security.stack import NO_PROXY_VARS, PROXY_VARS, SecureStack

pytestmark = pytest.mark.e2e


def _push_state(stack: SecureStack, state: str) -> bool:
    status = stack.status()
    return bool(status) and status["push"]["state"] == state


def _delivered(stack: SecureStack) -> bool:
    expected = expected_from_demo(stack.demo_db)
    stats = stack.stats()
    return stats["dossiers"] >= len(expected.dossiers) and stats["steps"] >= len(expected.steps)


def test_self_signed_portal_is_refused_then_trusted_with_its_ca_bundle(
    plain_stack: SecureStack, certificate: tuple[Path, Path]
) -> None:
    """Against a self-signed HTTPS portal the daemon refuses, says the certificate is not
    trusted and why, sends and dead-letters nothing; with portal.tls.ca_bundle it delivers."""
    stack = plain_stack
    cert, key = certificate
    stack.scheme, stack.ca = "https", cert
    stack.configure()
    stack.start_sandbox("--tls-cert", str(cert), "--tls-key", str(key))

    daemon = stack.start_daemon()
    wait_until(lambda: _push_state(stack, "refused"), timeout=60, what="the TLS refusal")
    status = stack.status()
    assert status is not None
    message = status["push"]["last_error"]["message"]
    assert "certificate" in message and "not trusted" in message, message
    assert "self" in message and "signed" in message, message  # why: it is self-signed
    assert "portal.tls.ca_bundle" in message
    assert stack.stats()["dossiers"] == 0
    states = outbox_states(stack.state_db)
    assert states.get("acked", 0) == 0
    assert states.get("rejected", 0) == states.get("parked", 0) == 0
    stack.stop(daemon)

    stack.configure(tail=f'\n[portal.tls]\nca_bundle = "{cert}"\n')
    stack.start_daemon()
    wait_until(lambda: _delivered(stack), timeout=90, what="delivery over verified TLS")
    assert stack.stats()["duplicate_steps"] == 0


def test_proxy_variables_are_ignored_unless_trust_env(plain_stack: SecureStack) -> None:
    """With HTTP(S)_PROXY/ALL_PROXY pointing at a dead proxy, the daemon still reaches the
    portal directly; only portal.trust_env = true makes it use (and fail through) the proxy."""
    stack = plain_stack
    dead = f"http://127.0.0.1:{free_port()}"
    stack.extra_env.update(dict.fromkeys(PROXY_VARS, dead))
    stack.drop_env = NO_PROXY_VARS
    stack.start_sandbox()

    stack.configure(portal="trust_env = true\n")
    daemon = stack.start_daemon()
    wait_until(lambda: _push_state(stack, "retrying"), timeout=60, what="the proxy failure")
    assert stack.stats()["dossiers"] == 0, "the proxy variables were not used at all"
    stack.stop(daemon)

    stack.configure()  # trust_env is false by default
    stack.start_daemon()
    wait_until(lambda: _delivered(stack), timeout=90, what="direct delivery")
