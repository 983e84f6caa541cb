"""Operator actions over HTTP: `POST /actions/retry` and `POST /actions/resync`.

They change what the connector sends, so they always need the status token, on loopback
too; without a configured `status.token` they answer 403. Each runs the CLI's own code
(`connector.jobs.resync`) in a worker thread, one action at a time, and answers with the
result as JSON. Request values are never echoed: an error names the key that is wrong.

    {"ids": [12, 13]} | {"all_dead": true} | {"code": "E21"}        → /actions/retry
    {"dossier" | "since" | "until" | "agency" | "procedure", "dry_run", "missing_only"}
        → /actions/resync
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.core.masking import scrub_text
from connector.errors import ConnectorError
from connector.ports import Selection

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_IDS = 100_000
_SELECTORS = (
    "dossier", "since", "until", "changed_since", "changed_until", "agency", "procedure"
)  # fmt: skip
_RESYNC_FLAGS = ("dry_run", "missing_only")
_UNCONFIGURED = "actions need status.token"


class Actions(Protocol):
    """What the actions run; blocking calls, made from a worker thread."""

    def retry(
        self, ids: Sequence[int], *, all_dead: bool, code: str | None = None
    ) -> Mapping[str, Any]: ...

    def resync(
        self, selection: Selection, *, dry_run: bool, missing_only: bool = False
    ) -> Mapping[str, Any]: ...


class BadRequest(ValueError):
    """The request body is not what the action takes; the message names the key."""


def _reply(body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code, headers, media_type="application/json")


def parse_retry(body: Mapping[str, Any]) -> tuple[list[int], bool, str | None]:
    """`{"ids": [...]}`, `{"all_dead": true}` and/or `{"code": "E21"}`: the ids, the flag
    and the code."""
    _only(body, ("ids", "all_dead", "code"))
    ids = body.get("ids", [])
    if not isinstance(ids, list) or not all(type(i) is int and i > 0 for i in ids):
        raise BadRequest("ids: expected a list of positive item ids")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"ids: at most {MAX_IDS} per request")
    all_dead = body.get("all_dead", False)
    if not isinstance(all_dead, bool):
        raise BadRequest("all_dead: expected true or false")
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or not code or len(code) > 64):
        raise BadRequest("code: expected a non-empty string of at most 64 characters")
    if not ids and not all_dead and code is None:
        raise BadRequest('give "ids", "all_dead": true or "code"')
    if all_dead and code is not None:
        raise BadRequest('give "all_dead" or "code", not both')
    return ids, all_dead, code


def parse_resync(body: Mapping[str, Any]) -> tuple[Selection, dict[str, bool]]:
    """The selection (at least one selector) and the flags (`dry_run`, `missing_only`)."""
    _only(body, (*_SELECTORS, *_RESYNC_FLAGS))
    texts: dict[str, str | None] = {}
    for key in _SELECTORS:
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
            raise BadRequest(f"{key}: expected a non-empty string")
        texts[key] = value
    flags = {name: body.get(name, False) for name in _RESYNC_FLAGS}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise BadRequest(f"{name}: expected true or false")
    if not any(texts.values()):
        raise BadRequest(f"resync needs at least one of {', '.join(_SELECTORS)}")
    selection = Selection(
        dossier=texts["dossier"],
        since=_date(texts["since"], "since"),
        until=_date(texts["until"], "until"),
        changed_since=_date(texts["changed_since"], "changed_since"),
        changed_until=_date(texts["changed_until"], "changed_until"),
        agency=texts["agency"],
        procedure=texts["procedure"],
    )
    for start, end in selection.backwards():
        raise BadRequest(f"{start} must be before {end}")
    return selection, flags


def _only(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    # The unknown key is not quoted: a body is never echoed, and a key may be anything.
    if set(body) - set(allowed):
        raise BadRequest(f"unknown key (use {', '.join(allowed)})")


def _date(value: str | None, key: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{key}: expected a date like 2026-11-01 or 2026-11-01T08:00") from None


async def _body(request: Request) -> Mapping[str, Any]:
    """The JSON object sent, read within MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


class _ActionGuard:
    """The token check for actions: always required, 403 when no token is configured."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode("utf-8") if token else None

    def refusal(self, request: Request) -> Response | None:
        if self._token is None:
            return _reply({"error": _UNCONFIGURED}, 403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        return _reply({"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"})


def action_routes(actions: Actions, *, token: str | None) -> list[Route]:
    """The two POST routes, guarded, running one action at a time in a worker thread."""
    guard = _ActionGuard(token)
    busy = threading.Lock()

    def endpoint(
        run: Callable[[Mapping[str, Any]], Callable[[], Mapping[str, Any]]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            refused = guard.refusal(request)
            if refused is not None:
                return refused
            try:
                work = run(await _body(request))
            except BadRequest as exc:
                return _reply({"error": str(exc)}, 400)
            if not busy.acquire(blocking=False):
                return _reply({"error": "another action is running; try again"}, 409)
            try:
                return _reply(await run_in_threadpool(work))
            except ConnectorError as exc:
                return _reply({"error": scrub_text(str(exc))}, 503)
            except Exception:
                log.exception("operator action failed", path=request.url.path)
                return _reply({"error": "action failed; see the daemon's log"}, 500)
            finally:
                busy.release()

        return handle

    def retry(body: Mapping[str, Any]) -> Callable[[], Mapping[str, Any]]:
        ids, all_dead, code = parse_retry(body)
        return lambda: actions.retry(ids, all_dead=all_dead, code=code)

    def resync(body: Mapping[str, Any]) -> Callable[[], Mapping[str, Any]]:
        selection, flags = parse_resync(body)
        return lambda: actions.resync(selection, **flags)

    return [
        Route("/actions/retry", endpoint(retry), methods=["POST"]),
        Route("/actions/resync", endpoint(resync), methods=["POST"]),
    ]
