"""Running the sandbox portal: in the foreground for operators, in a thread for tests.

Only loopback by default; HTTPS when given a certificate and its key (for trying the
connector's TLS settings against a self-signed portal). The server deliberately breaks
replies when the "reset" fault fires; uvicorn reports each as an error, so that one
expected message is filtered out.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from connector.sandbox.app import create_app
from connector.sandbox.config import SandboxConfig

_EXPECTED = ("ASGI callable returned without completing response.",)
_GRACE_SECONDS = 2  # a stalled request must not hold a shutdown for stall_seconds


class _ExpectedBreaks(logging.Filter):
    """Drops uvicorn's report of a reply the sandbox broke on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _EXPECTED


_EXPECTED_BREAKS = _ExpectedBreaks()


@dataclass(frozen=True, slots=True, kw_only=True)
class Tls:
    """The certificate (PEM, with its chain) and private key the sandbox serves HTTPS with."""

    cert: Path
    key: Path

    def __post_init__(self) -> None:
        for name in ("cert", "key"):
            if not getattr(self, name).is_file():
                raise ValueError(f"tls {name}: no such file: {getattr(self, name)}")


class _Server(uvicorn.Server):
    """A uvicorn server that tells when it listens and on which port."""

    def __init__(self, config: uvicorn.Config, announce: bool, scheme: str = "http") -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.port = 0
        self._announce = announce
        self._scheme = scheme

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
            if self.started:
                self.port = self.servers[0].sockets[0].getsockname()[1]
        finally:
            self.ready.set()  # also when binding failed: the waiting thread must not hang
        if self.started and self._announce:
            where = f"{self._scheme}://{self.config.host}:{self.port}"
            print(f"sandbox portal listening on {where}", flush=True)


def _server(
    config: SandboxConfig, *, announce: bool, log_config: bool, tls: Tls | None = None
) -> _Server:
    uv_config = uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=_GRACE_SECONDS,
        log_config=LOGGING_CONFIG if log_config else None,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )
    logging.getLogger("uvicorn.error").addFilter(_EXPECTED_BREAKS)
    return _Server(uv_config, announce, "https" if tls else "http")


def serve(config: SandboxConfig, *, tls: Tls | None = None) -> None:
    """Run the sandbox portal until interrupted (Ctrl-C); over HTTPS with `tls`."""
    server = _server(config, announce=True, log_config=True, tls=tls)
    server.run()
    if not server.started:
        sys.exit(1)


class SandboxThread:
    """The sandbox on an ephemeral 127.0.0.1 port in a background thread.

    Used as `with SandboxThread(config) as sandbox:`, then `sandbox.url` is the base URL.
    """

    def __init__(self, config: SandboxConfig, *, start_timeout: float = 10.0) -> None:
        self.config = replace(config, host="127.0.0.1", port=0)
        self.url = ""
        self._start_timeout = start_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SandboxThread:
        server = _server(self.config, announce=False, log_config=False)
        thread = threading.Thread(target=server.run, name="sandbox-portal", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        if not server.ready.wait(self._start_timeout) or not server.started:
            self.stop()
            raise RuntimeError("sandbox portal did not start")
        self.url = f"http://127.0.0.1:{server.port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread (idempotent)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = self._thread = None
