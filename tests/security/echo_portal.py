"""The sandbox portal, changed to quote the rejected item's personal data in its message.

Real portals answer "Email … không hợp lệ" or "Chủ hồ sơ … đã tồn tại": a rejection
message can echo whatever the item carried. This wraps the sandbox app so every per-item
rejection quotes the item's name, ID number, phone, e-mail and summary, and runs it on
127.0.0.1:

    python -m tests.security.echo_portal --port P --db D --procedures-csv C --agencies-csv A
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

from connector.sandbox.app import create_app
from connector.sandbox.config import SandboxConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

ECHOED = ("ChuHoSo", "MaDoiTuong", "SoDienThoai", "Email", "TrichYeuHoSo", "NguoiXuLy")
MAX_BODY = 64 * 1024 * 1024


def _quotes(body: bytes) -> dict[str, str]:
    """MaHoSo → the personal values of that item, as a portal might quote them."""
    try:
        data = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    quotes: dict[str, str] = {}
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and isinstance(item.get("MaHoSo"), str):
            said = [f"{k}={item[k]}" for k in ECHOED if isinstance(item.get(k), str)]
            quotes[item["MaHoSo"]] = "; ".join(said)
    return quotes


def _echo(reply: bytes, quotes: dict[str, str]) -> bytes:
    try:
        body = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return reply
    results = body.get("result") if isinstance(body, dict) else None
    if not isinstance(results, list):
        return reply
    for entry in results:
        if isinstance(entry, dict) and str(entry.get("error_code")) != "0":
            quote = quotes.get(str(entry.get("MaHoSo")), "")
            entry["message"] = f"{entry.get('message', '')} ({quote})"
    return orjson.dumps(body)


class EchoPersonalData:
    """ASGI middleware: buffer the request and the reply, quote into rejections."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        request = bytearray()
        more = True
        while more and len(request) <= MAX_BODY:
            message = await receive()
            request += message.get("body", b"")
            more = bool(message.get("more_body"))
        quotes = _quotes(bytes(request))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(request), "more_body": False}

        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            reply = _echo(b"".join(chunks), quotes)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(reply)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": reply})

        await self._app(scope, replay, capture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--procedures-csv", required=True)
    parser.add_argument("--agencies-csv", required=True)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default="503")
    args = parser.parse_args()
    config = SandboxConfig(
        host="127.0.0.1",
        port=args.port,
        db_path=args.db,
        username="demo",
        password=os.environ["CONNECTOR_PORTAL_PASSWORD"],
        dstcode="TEST-DST",
        procedures_csv=args.procedures_csv,
        agencies_csv=args.agencies_csv,
        fault_rate=args.fault_rate,
        faults=tuple(args.faults.split(",")),
        retry_after=0.2,
        seed=3,
    )
    app = EchoPersonalData(create_app(config))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
