"""The status, health and metrics HTTP app, and the server that runs it inside the daemon.

The app only serves what the daemon hands it: a snapshot callable (small synchronous DB
reads, hence run in a worker thread), a readiness check and the metrics. It never echoes
request data. When the daemon listens anywhere but the loopback default, every route but
`/healthz` requires a bearer token, compared in constant time. The operator actions
(`connector.status_actions`) always require it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import orjson
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.errors import ConfigError
from connector.metrics import Metrics
from connector.status_actions import Actions, action_routes

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0

log = structlog.get_logger(__name__)

Snapshot = Callable[[], Mapping[str, Any]]
Ready = Callable[[], tuple[bool, str]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code, headers, media_type="application/json")


class _Guard:
    """Bearer-token check for protected routes; open when no token is required."""

    def __init__(self, *, token: str | None, required: bool) -> None:
        self._token = token.encode("utf-8") if token is not None else None
        self._required = required

    def refusal(self, request: Request) -> Response | None:
        """None when the request may proceed, else the response that refuses it."""
        if not self._required:
            return None
        if self._token is None:
            return _json({"error": "status token not configured"}, 503)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        return _json({"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"})

    def protect(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            return self.refusal(request) or await endpoint(request)

        return guarded


def create_status_app(
    *,
    snapshot: Snapshot,
    metrics: Metrics,
    ready: Ready,
    token: str | None = None,
    require_token: bool = False,
    actions: Actions | None = None,
) -> Starlette:
    """The Starlette app serving /status, /healthz, /readyz and /metrics, and with
    `actions` the token-only POST /actions/retry and /actions/resync."""

    async def status(_: Request) -> Response:
        try:
            body = await run_in_threadpool(snapshot)
        except Exception:
            log.exception("status snapshot failed")
            return _json({"error": "status snapshot unavailable"}, 503)
        return _json(body)

    async def healthz(_: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            is_ready, reason = await run_in_threadpool(ready)
        except Exception:
            log.exception("readiness check failed")
            is_ready, reason = False, "readiness check failed"
        if is_ready:
            return _json({"ready": True})
        return _json({"ready": False, "reason": reason}, 503)

    def exposition() -> bytes:
        metrics.observe(snapshot())
        return metrics.render()

    async def metrics_route(_: Request) -> Response:
        try:
            body = await run_in_threadpool(exposition)
        except Exception:
            log.exception("metrics snapshot failed")
            return _json({"error": "metrics unavailable"}, 503)
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    guard = _Guard(token=token, required=require_token)
    routes = [
        Route("/status", guard.protect(status), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", guard.protect(readyz), methods=["GET"]),
        Route("/metrics", guard.protect(metrics_route), methods=["GET"]),
    ]
    if actions is not None:
        routes += action_routes(actions, token=token)
    return Starlette(routes=routes)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the daemon that hosts it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A bound listening-ready socket, or a ConfigError that names the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError(f"status.host: cannot resolve {host!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"status.port: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class StatusServer:
    """uvicorn.Server running inside the daemon's asyncio loop."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = _QuietServer(config)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (the ephemeral one when 0 was asked)."""
        return self._port

    async def start(self) -> None:
        """Return once the server accepts connections; ConfigError if the port is taken."""
        self._socket = _bind(self._host, self._port)
        self._port = int(self._socket.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        try:
            await asyncio.wait_for(self._until_started(self._task), _START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise

    async def _until_started(self, task: asyncio.Task[None]) -> None:
        while not self._server.started:
            if task.done():
                raise ConfigError(f"status server on {self._host}:{self._port} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving; bounded, so a stuck connection cannot hold the daemon's shutdown."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            await self._finish(task)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @staticmethod
    async def _finish(task: asyncio.Task[None]) -> None:
        _, pending = await asyncio.wait({task}, timeout=_STOP_TIMEOUT_S)
        if pending:
            log.warning("status server did not stop in time; cancelling it")
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("status server failed", exc_info=task.exception())
