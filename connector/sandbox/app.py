"""The sandbox portal's ASGI app: the portal paths and the operator's `/_sandbox` endpoints.

The `/_sandbox` endpoints belong to whoever runs the sandbox, not to the portal contract:
they need no dstcode or session and are never subject to injected faults.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.config import SandboxConfig
from connector.sandbox.portal import Portal
from connector.sandbox.responses import json_reply


def create_app(config: SandboxConfig, *, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The sandbox portal for `config`; its state is `app.state.portal` (close it when done)."""
    portal = Portal(config, clock)
    admin = _Admin(portal)
    routes = [
        Route(config.auth_path, portal.login, methods=["POST"]),
        Route(config.integration_path, portal.integration, methods=["POST"]),
        Route("/_sandbox/stats", admin.stats, methods=["GET"]),
        Route("/_sandbox/faults", admin.faults, methods=["POST"]),
        Route("/_sandbox/outage", admin.outage, methods=["POST"]),
        Route("/_sandbox/dossiers/{mahoso}", admin.dossier, methods=["GET"]),
    ]
    if config.share_path != config.integration_path:
        routes.insert(2, Route(config.share_path, portal.share, methods=["POST"]))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        portal.store.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.portal = portal
    return app


class _Admin:
    """The operator endpoints: statistics, a dossier's content, fault control."""

    def __init__(self, portal: Portal) -> None:
        self._portal = portal

    async def stats(self, _: Request) -> Response:
        """GET /_sandbox/stats: what was held, refused and injected."""
        portal = self._portal
        counters = portal.counters
        return json_reply(
            {
                **portal.store.counts(),
                "requests": counters["requests"],
                "logins": counters["logins"],
                "login_refused": counters["login_refused"],
                "dstcode_refused": counters["dstcode_refused"],
                "session_expired": counters["session_expired"],
                "faults": dict(portal.plan.injected),
                "uptime_s": round(portal.uptime(), 3),
            }
        )

    async def dossier(self, request: Request) -> Response:
        """GET /_sandbox/dossiers/{mahoso}: the held header and its steps."""
        view = self._portal.store.dossier_view(request.path_params["mahoso"])
        if view is None:
            return json_reply({"error": "dossier not held"}, 404)
        return json_reply(view)

    async def faults(self, request: Request) -> Response:
        """POST /_sandbox/faults: change fault settings (any subset of them) at run time."""
        body = await _json_object(request)
        if body is None:
            return json_reply({"error": "body must be a JSON object"}, 400)
        plan = self._portal.plan
        try:
            plan.settings = plan.settings.changed(body)
        except ValueError as error:
            return json_reply({"error": str(error)}, 400)
        return json_reply(plan.settings.as_dict())

    async def outage(self, request: Request) -> Response:
        """POST /_sandbox/outage {"seconds": N}: answer 503 to every portal call for N s."""
        seconds = (await _json_object(request) or {}).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return json_reply({"error": "seconds must be a number"}, 400)
        if not math.isfinite(seconds) or seconds < 0:
            return json_reply({"error": "seconds must be a finite number >= 0"}, 400)
        self._portal.plan.start_outage(float(seconds))
        return json_reply({"outage_seconds": seconds})


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
