"""A toxiproxy-style TCP proxy for tests: latency, trickle, cut, blackhole, refuse.

It runs its own event loop in a background thread, listens on 127.0.0.1:0 and forwards to
one upstream. Faults are plain attributes read for every chunk, so a test switches them at
run time with `proxy.set(...)`. Buffers are bounded (one chunk per direction, with the
writer drained before the next read); `stop` closes every connection.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any

CHUNK = 16 * 1024
UPSTREAM = "upstream"  # client → server
DOWNSTREAM = "downstream"  # server → client


@dataclass(frozen=True, slots=True)
class Faults:
    """What the proxy does to traffic; the defaults forward everything untouched."""

    latency: float = 0.0  # seconds added before each chunk, both directions
    bandwidth: int = 0  # bytes per second, 0 for unlimited (trickle when small)
    cut_after: int = 0  # reset a connection once this many bytes went `cut_direction`
    cut_direction: str = DOWNSTREAM
    cut_times: int = -1  # connections to cut before cutting stops; -1 for every one
    blackhole: bool = False  # accept and read, never forward or answer
    refuse: bool = False  # stop listening: new connections are refused


class FaultProxy:
    """`with FaultProxy(port) as proxy:` then point the client at `proxy.url`."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = Faults()
        self.port = 0
        self.counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen(0), timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def set(self, **changes: Any) -> Faults:
        """Change some faults (unknown names raise); `set()` with `refuse` toggles listening."""
        known = {f.name for f in fields(Faults)}
        if set(changes) - known:
            raise ValueError(f"unknown fault(s) {sorted(set(changes) - known)}")
        before = self.faults
        self.faults = replace(before, **changes)
        if self.faults.refuse != before.refuse:
            self._call(self._stop_listening() if self.faults.refuse else self._listen(self.port))
        return self.faults

    def clear(self) -> None:
        """Forward everything untouched again."""
        self.set(**{f.name: getattr(Faults(), f.name) for f in fields(Faults)})

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self._call(self._close_all(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _close_all(self) -> None:
        await self._stop_listening()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        self.counts["connections"] += 1
        try:
            await self._serve(client_r, client_w)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(client_w)
            client_w.transport.abort()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.faults.blackhole:
            self.counts["blackholed"] += 1
            while await client_r.read(CHUNK):
                pass
            return
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        self._writers.add(server_w)
        link = _Link(self, client_w, server_w)
        try:
            pumps = [
                asyncio.create_task(link.pump(client_r, server_w, UPSTREAM)),
                asyncio.create_task(link.pump(server_r, client_w, DOWNSTREAM)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.wait(pumps, timeout=5)
        finally:
            self._writers.discard(server_w)
            server_w.transport.abort()

    def _take_cut(self) -> bool:
        """Whether this connection may be cut (and count it)."""
        times = self.faults.cut_times
        if times == 0:
            return False
        if times > 0:
            self.faults = replace(self.faults, cut_times=times - 1)
        self.counts["cuts"] += 1
        return True


class _Link:
    """The two directions of one proxied connection and what went through them."""

    def __init__(
        self, proxy: FaultProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        self._proxy = proxy
        self._ends = (client, server)
        self._sent: Counter[str] = Counter()

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            faults = self._proxy.faults
            if faults.blackhole:
                continue
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if faults.cut_after and faults.cut_direction == direction:
                room = faults.cut_after - self._sent[direction]
                if len(chunk) >= room and self._proxy._take_cut():
                    await self._send(writer, chunk[: max(room, 0)], faults.bandwidth)
                    self._reset()
                    return
            await self._send(writer, chunk, faults.bandwidth)
            self._sent[direction] += len(chunk)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, data: bytes, bandwidth: int) -> None:
        if not bandwidth:
            writer.write(data)
            await writer.drain()
            return
        piece = max(1, bandwidth // 10)
        for start in range(0, len(data), piece):
            part = data[start : start + piece]
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(len(part) / bandwidth)

    def _reset(self) -> None:
        """Close both ends with SO_LINGER 0, so each peer gets a RST, not a clean FIN."""
        for writer in self._ends:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
