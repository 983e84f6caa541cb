"""The portal endpoints' flow: fault, dstcode, body, login or session, then the service.

The fault is drawn before anything is applied, so a 5xx, a 429 or a stall never changes
state. A reset is the exception: by default the request is applied and only the reply is
broken, which is the "outcome unknown" case the connector must survive without duplicates.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.catalogue import load_catalogues
from connector.sandbox.config import SandboxConfig
from connector.sandbox.faults import OUTAGE, FaultPlan, FaultSettings
from connector.sandbox.responses import (
    BrokenResponse,
    TrickleResponse,
    html_error,
    json_reply,
    throttled,
)
from connector.sandbox.services import BUSINESS, CATALOGUE, Reply, ServiceRules, Services
from connector.sandbox.sessions import Sessions
from connector.sandbox.state import SandboxStore

Answer = tuple[int, Reply]
_REFUSED: Answer = (403, {"error_code": "403", "message": "dstcode refused"})
_NOT_JSON: Answer = (400, {"error_code": "400", "message": "body is not a JSON object"})
_BAD_LOGIN: Answer = (401, {"error_code": "401", "message": "invalid credentials"})
_EXPIRED: Reply = {"error_code": "-1", "message": "session expired"}


class Portal:
    """The sandbox's state and the handlers of its portal paths."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.store = SandboxStore(config.db_path)
        self.sessions = Sessions(config.session_ttl, clock)
        self.plan = FaultPlan(FaultSettings.from_config(config), seed=config.seed, clock=clock)
        self.counters: Counter[str] = Counter()
        rules = ServiceRules(
            madonvi=re.compile(config.madonvi_pattern, re.ASCII),
            per_item=config.per_item,
            max_batch=config.max_batch,
        )
        catalogues = load_catalogues(config.procedures_csv, config.agencies_csv)
        self.services = Services(self.store, catalogues, rules)
        self._clock = clock
        self._started = clock()

    def uptime(self) -> float:
        """Seconds since this sandbox instance started."""
        return self._clock() - self._started

    async def login(self, request: Request) -> Response:
        """POST auth_path."""
        return await self._guarded(request, self._login)

    async def integration(self, request: Request) -> Response:
        """POST integration_path (catalogues are accepted there too)."""
        return await self._guarded(request, lambda d, b: self._service(d, b, BUSINESS | CATALOGUE))

    async def share(self, request: Request) -> Response:
        """POST share_path: the catalogues."""
        return await self._guarded(request, lambda d, b: self._service(d, b, CATALOGUE))

    async def _guarded(
        self, request: Request, handler: Callable[[str | None, bytes], Answer]
    ) -> Response:
        self.counters["requests"] += 1
        fault = self.plan.draw()
        settings = self.plan.settings
        early = _early_fault(fault, settings)
        if early is not None:
            return early
        if fault == "stall":
            await asyncio.sleep(settings.stall_seconds)
        raw = await request.body()  # read even when unused, so the close is not a RST
        if fault == "reset" and not settings.reset_after_apply:
            return _broken(json_reply({"error_code": "0", "message": "ok"}))
        status, reply = handler(request.headers.get("dstcode"), raw)
        response = json_reply(reply, status)
        if fault == "reset":
            return _broken(response)
        if fault == "slow":
            return TrickleResponse(response, settings.slow_seconds)
        return response

    def _login(self, dstcode: str | None, raw: bytes) -> Answer:
        body = self._admitted(dstcode, raw)
        if not isinstance(body, dict):
            return body
        if not (
            _same(body.get("username"), self.config.username)
            and _same(body.get("password"), self.config.password)
        ):
            self.counters["login_refused"] += 1
            return _BAD_LOGIN
        self.counters["logins"] += 1
        return 200, {"error_code": "0", "message": "ok", "session": self.sessions.open()}

    def _service(self, dstcode: str | None, raw: bytes, allowed: frozenset[str]) -> Answer:
        body = self._admitted(dstcode, raw)
        if not isinstance(body, dict):
            return body
        if not self.sessions.valid(body.get("session")):
            self.counters["session_expired"] += 1
            return (401 if self.config.session_expired_http else 200), _EXPIRED
        return 200, self.services.handle(body, allowed)

    def _admitted(self, dstcode: str | None, raw: bytes) -> dict[str, Any] | Answer:
        """The JSON body of a call with the right dstcode, else the refusal to send."""
        if dstcode is None or not hmac.compare_digest(
            dstcode.encode(), self.config.dstcode.encode()
        ):
            self.counters["dstcode_refused"] += 1
            return _REFUSED
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _NOT_JSON
        return body if isinstance(body, dict) else _NOT_JSON


def _early_fault(fault: str | None, settings: FaultSettings) -> Response | None:
    """The reply for a fault that answers without touching the request."""
    if fault in ("503", OUTAGE):
        return html_error(503)
    if fault == "500":
        return html_error(500)
    if fault == "429":
        return throttled(settings.retry_after)
    return None


def _broken(response: Response) -> Response:
    return BrokenResponse(
        response.body, status_code=response.status_code, media_type=response.media_type
    )


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
