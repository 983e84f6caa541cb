"""A portal front that breaks replies: the request reaches the real sandbox, the reply is bad.

Every push call (DongBoHoSoMC, CapNhatTienDoHoSoMC) is forwarded to the sandbox, so the
portal *applied* it, and then the reply the connector gets is replaced according to the
next mode in `plan` (one mode per push call; an empty plan forwards replies untouched).
Logins and lookups always pass through. This is the "outcome unknown" case in its forms:
an HTML page with status 200, cut JSON, invalid UTF-8, a JSON array, a reply larger than
the connector's byte cap (with and without Content-Length), per-item results naming other
dossiers, and a 503 after the portal took the batch (the items are acknowledged twice).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from types import TracebackType

import httpx
import orjson

PUSHES = frozenset({b"DongBoHoSoMC", b"CapNhatTienDoHoSoMC"})
MODES = frozenset(
    {
        "html200",
        "truncated_json",
        "invalid_utf8",
        "not_object",
        "oversized",
        "oversized_chunked",
        "dup_results",
        "ack_then_503",
    }
)
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class BadPortal:
    """`with BadPortal(sandbox_url, plan=[...]) as bad:` then point the connector at `bad.url`."""

    def __init__(self, upstream: str, *, plan: list[str], padding: int = 256 * 1024) -> None:
        unknown = set(plan) - MODES
        if unknown:
            raise ValueError(f"unknown modes {sorted(unknown)}")
        self.upstream = upstream
        self.plan: deque[str] = deque(plan)
        self.applied: Counter[str] = Counter()
        self.port = 0
        self._padding = padding
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bad-portal")
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BadPortal:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, trust_env=False, timeout=30)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._client is not None:
            await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            for _ in range(10_000):  # keep-alive, bounded
                request = await _read_request(reader)
                if request is None:
                    return
                writer.write(await self._answer(*request))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        assert self._client is not None
        forwarded = {k: v for k, v in headers.items() if k in ("dstcode", "content-type")}
        reply = await self._client.post(path, content=body, headers=forwarded)
        mode = self.plan.popleft() if self.plan and _is_push(body) else None
        if mode is None:
            extra = (
                {"Retry-After": reply.headers["Retry-After"]}
                if "Retry-After" in reply.headers
                else {}
            )
            return _response(
                reply.status_code, reply.content, reply.headers.get("content-type", ""), extra
            )
        self.applied[mode] += 1
        return self._mangle(mode, reply.content)

    def _mangle(self, mode: str, original: bytes) -> bytes:
        json_type = "application/json"
        if mode == "html200":
            page = b"<html><body><h1>He thong dang bao tri</h1></body></html>"
            return _response(200, page, "text/html")
        if mode == "truncated_json":
            return _response(200, original[: max(1, len(original) // 2)], json_type)
        if mode == "invalid_utf8":
            return _response(200, b'{"error_code": "0", "message": "\xff\xfe ok"}', json_type)
        if mode == "not_object":
            return _response(200, b'[{"error_code": "0"}]', json_type)
        if mode in ("oversized", "oversized_chunked"):
            body = orjson.loads(original)
            body["padding"] = "x" * self._padding
            data = orjson.dumps(body)
            return _response(200, data, json_type, chunked=mode == "oversized_chunked")
        if mode == "dup_results":
            body = orjson.loads(original)
            results = body.get("result") or []
            if results:
                body["result"] = [{**results[0], "error_code": "0"}] * len(results)
                body["error_code"] = "0"
            return _response(200, orjson.dumps(body), json_type)
        if mode == "ack_then_503":
            return _response(503, b"<html><body>503 Service Unavailable</body></html>", "text/html")
        raise AssertionError(mode)


def _is_push(body: bytes) -> bool:
    try:
        service = orjson.loads(body).get("service", "")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(service, str) and service.encode() in PUSHES


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    if len(head) > MAX_HEAD:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    _, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise ValueError("request body too large")
    return path, headers, await reader.readexactly(length)


def _response(
    status: int,
    body: bytes,
    content_type: str,
    extra: dict[str, str] | None = None,
    *,
    chunked: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        step = 8192
        payload = b"".join(
            f"{len(body[i : i + step]):x}\r\n".encode() + body[i : i + step] + b"\r\n"
            for i in range(0, len(body), step)
        )
        payload += b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
