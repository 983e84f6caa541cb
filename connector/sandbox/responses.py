"""The HTTP replies of the sandbox, including the deliberately broken ones.

A fault must look like the real thing on the wire: a 5xx from a proxy has an HTML body, a
reset arrives after the headers promised a length the body never reaches, a slow portal
trickles its bytes. Each is an ASGI response, so the same code serves uvicorn and tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_HTML = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
_REASONS = {500: "500 Internal Server Error", 503: "503 Service Unavailable"}
_TRICKLE_CHUNKS = 10


def json_reply(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON reply (orjson: the hot path answers thousands of these per second)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def html_error(status: int) -> Response:
    """A 5xx as a web server or proxy in front of the portal sends it."""
    return Response(_HTML.format(_REASONS.get(status, str(status))), status, media_type="text/html")


def throttled(retry_after: float) -> Response:
    """HTTP 429 with the wait in seconds (an integer when it is one)."""
    return Response(
        "Too Many Requests",
        status_code=429,
        media_type="text/plain",
        headers={"Retry-After": f"{retry_after:g}"},
    )


class BrokenResponse(Response):
    """Promises the whole body, sends half of it and ends the exchange: a reset reply.

    Returning without the final body message makes the server close the connection, so the
    client sees headers and a truncated body: the call's outcome is unknown to it.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: max(1, len(self.body) // 2)]
        await send({"type": "http.response.body", "body": half, "more_body": True})


class TrickleResponse(Response):
    """Sends its body in small pieces spread over `seconds`: a slow portal or link."""

    def __init__(self, original: Response, seconds: float) -> None:
        super().__init__(
            original.body, status_code=original.status_code, media_type=original.media_type
        )
        self._pause = seconds / _TRICKLE_CHUNKS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        size = -(-len(self.body) // _TRICKLE_CHUNKS) or 1
        for start in range(0, len(self.body), size):
            await asyncio.sleep(self._pause)
            chunk = self.body[start : start + size]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
