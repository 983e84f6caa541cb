"""The e2e stack with what the security tests add: extra environment, HTTPS, a status
host and token, the echoing portal, and readers of every place a secret could leak to."""

from __future__ import annotations

import signal
import sqlite3
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import ROOT, Stack, wait_until

TOKEN_ENV = "CONNECTOR_STATUS_TOKEN"
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


@dataclass
class SecureStack(Stack):
    extra_env: dict[str, str] = field(default_factory=dict)
    drop_env: tuple[str, ...] = ()
    status_host: str = "127.0.0.1"
    scheme: str = "http"
    ca: Path | None = None  # the certificate to trust when reading an HTTPS sandbox

    @property
    def sandbox_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.sandbox_port}"

    @property
    def status_url(self) -> str:
        return f"http://{self.status_host}:{self.status_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env().items() if k not in self.drop_env}
        return {**env, "PYTHONPATH": str(ROOT), **self.extra_env}

    def configure(
        self, *, portal: str = "", status: str = "", tail: str = "", **overrides: str
    ) -> Path:
        """The e2e configuration with lines added to [portal] and [status], and `tail`."""
        self.write_config(**overrides)
        body = self.config.read_text(encoding="utf-8")
        body = body.replace("[portal]\n", f"[portal]\n{portal}", 1)
        body = body.replace("[status]\n", f"[status]\n{status}", 1)
        self.config.write_text(body + tail, encoding="utf-8")
        return self.config

    def start_echo_portal(
        self, procedures: Path, *, fault_rate: float = 0.0, faults: str = "503"
    ) -> subprocess.Popen[bytes]:
        """The sandbox that quotes personal data in its rejections (tests.security.echo_portal)."""
        crosswalks = self.mapping.parent / "demo"
        cmd = [
            sys.executable,
            "-m",
            "tests.security.echo_portal",
            "--port",
            str(self.sandbox_port),
            "--db",
            str(self.sandbox_db),
            "--procedures-csv",
            str(procedures),
            "--agencies-csv",
            str(crosswalks / "agencies.csv"),
            "--fault-rate",
            str(fault_rate),
            "--faults",
            faults,
        ]
        proc = self._spawn(cmd, "portal")
        wait_until(lambda: _answers(self.sandbox_url), timeout=20, what="the echo portal")
        return proc

    def stats(self) -> dict[str, Any]:
        verify: ssl.SSLContext | bool = True
        if self.ca is not None:
            verify = ssl.create_default_context(cafile=self.ca)
        reply = httpx.get(f"{self.sandbox_url}/_sandbox/stats", timeout=5, verify=verify)
        data: dict[str, Any] = reply.json()
        return data

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.status_url}{path}", headers=headers, timeout=10, trust_env=False)

    def post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(
            f"{self.status_url}{path}", json=body, headers=headers, timeout=60, trust_env=False
        )

    def daemon_log(self) -> str:
        path = self.tmp / "daemon.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM and a bounded wait; the daemon must stop cleanly."""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/_sandbox/stats", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


def settled(stack: Stack) -> bool:
    """The daemon's outbox holds nothing the portal could still take now."""
    status = stack.status()
    if not status:
        return False
    outbox = status["outbox"]
    busy = [
        outbox[kind][state] for kind in ("header", "step") for state in ("pending", "in_flight")
    ]
    return sum(busy) == 0 and outbox["header"]["acked"] > 0


def table_text(db: Path, table: str) -> str:
    """Every row of one state-store table as text, for searching."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return "\n".join(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
    finally:
        conn.close()
