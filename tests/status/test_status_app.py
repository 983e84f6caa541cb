"""The status app: routes, JSON, readiness, metrics exposition and bearer-token guard."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from connector.metrics import Metrics
from connector.status import create_status_app

TOKEN = "t0k3n-for-tests"


def _client(
    snapshot: Mapping[str, Any],
    *,
    ready: Callable[[], tuple[bool, str]] = lambda: (True, ""),
    token: str | None = None,
    require_token: bool = False,
    metrics: Metrics | None = None,
) -> httpx.AsyncClient:
    app = create_status_app(
        snapshot=lambda: snapshot,
        metrics=metrics or Metrics(),
        ready=ready,
        token=token,
        require_token=require_token,
    )
    return _over(app)


def _over(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status")


async def test_status_returns_the_snapshot_as_json(snapshot: dict[str, Any]) -> None:
    """GET /status serves exactly the snapshot, as application/json."""
    async with _client(snapshot) as client:
        reply = await client.get("/status")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert orjson.loads(reply.content) == snapshot


async def test_status_reports_a_failing_snapshot_without_details() -> None:
    """A snapshot that raises gives a 503 whose body does not carry the exception text."""

    def broken() -> Mapping[str, Any]:
        raise RuntimeError("db at postgresql://user:pw@host locked")

    app = create_status_app(snapshot=broken, metrics=Metrics(), ready=lambda: (True, ""))
    async with _over(app) as client:
        reply = await client.get("/status")
    assert reply.status_code == 503
    assert "pw@host" not in reply.text


async def test_healthz_is_always_ok(snapshot: dict[str, Any]) -> None:
    """GET /healthz answers 200 {"status": "ok"} even when the daemon is not ready."""
    async with _client(snapshot, ready=lambda: (False, "portal refused")) as client:
        reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


async def test_readyz_when_ready(snapshot: dict[str, Any]) -> None:
    """GET /readyz is 200 {"ready": true} when the check says so."""
    async with _client(snapshot) as client:
        reply = await client.get("/readyz")
    assert (reply.status_code, reply.json()) == (200, {"ready": True})


async def test_readyz_when_not_ready(snapshot: dict[str, Any]) -> None:
    """GET /readyz is 503 with the check's reason when the daemon is not ready."""
    async with _client(snapshot, ready=lambda: (False, "state store locked")) as client:
        reply = await client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json() == {"ready": False, "reason": "state store locked"}


async def test_metrics_expose_snapshot_gauges_and_counters(snapshot: dict[str, Any]) -> None:
    """GET /metrics observes a fresh snapshot and serves the 0.0.4 text format."""
    metrics = Metrics()
    metrics.sent.labels(kind="step", outcome="transient").inc(4)
    async with _client(snapshot, metrics=metrics) as client:
        reply = await client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = reply.text.splitlines()
    assert 'connector_outbox_items{kind="header",state="pending"} 3.0' in lines
    assert "connector_dead_letters 5.0" in lines
    assert "connector_blocked_steps 7.0" in lines
    assert 'connector_cursor_lag_seconds{stream="dossiers"} 1.2' in lines
    assert "connector_session_active 1.0" in lines
    assert "connector_oldest_pending_age_seconds 2.5" in lines
    assert 'connector_sent_items_total{kind="step",outcome="transient"} 4.0' in lines


@pytest.mark.parametrize("path", ["/status", "/readyz", "/metrics"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
async def test_protected_routes_refuse_missing_or_wrong_token(
    snapshot: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    """Without the right bearer token every route but /healthz is 401."""
    async with _client(snapshot, token=TOKEN, require_token=True) as client:
        reply = await client.get(path, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert "wrong" not in reply.text


@pytest.mark.parametrize("path", ["/status", "/readyz", "/metrics"])
async def test_protected_routes_accept_the_right_token(snapshot: dict[str, Any], path: str) -> None:
    """With `Authorization: Bearer <token>` the protected routes answer normally."""
    async with _client(snapshot, token=TOKEN, require_token=True) as client:
        reply = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200


async def test_healthz_needs_no_token(snapshot: dict[str, Any]) -> None:
    """/healthz stays open when a token is required, so probes need no secret."""
    async with _client(snapshot, token=TOKEN, require_token=True) as client:
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("path", ["/status", "/readyz", "/metrics"])
async def test_required_token_that_is_not_configured_closes_routes(
    snapshot: dict[str, Any], path: str
) -> None:
    """require_token without a token makes protected routes 503, never open."""
    async with _client(snapshot, token=None, require_token=True) as client:
        reply = await client.get(path, headers={"Authorization": "Bearer "})
        health = await client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json() == {"error": "status token not configured"}
    assert health.status_code == 200


async def test_token_is_not_checked_when_not_required(snapshot: dict[str, Any]) -> None:
    """On loopback without require_token the routes are open."""
    async with _client(snapshot, token=TOKEN) as client:
        assert (await client.get("/status")).status_code == 200
