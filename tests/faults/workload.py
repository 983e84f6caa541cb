"""The workload for the fault scenarios: a demo system, a sandbox portal, the jobs in-process.

The connector's own jobs run in the test's event loop with an injected clock (`FastClock`)
so minutes of outbox backoff pass in seconds; the sandbox runs in a background thread on an
ephemeral loopback port, optionally behind a `FaultProxy` or a `BadPortal`.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy.exc import SQLAlchemyError

from connector.app import App
from connector.sandbox.config import SandboxConfig
from connector.sandbox.server import SandboxThread
from connector.settings import Settings, load
from tests.e2e.harness import MAPPING, expected_from_demo
from tests.faults.checker import NO_REPEATS, Bounds, Report, check, read_state

CROSSWALKS = MAPPING.parent / "demo"
USERNAME, DSTCODE = "demo", "TEST-DST"


class FastClock:
    """Wall and monotonic time that run `speed` times faster than real time.

    `jump(seconds)` moves wall time alone, as an operator or a bad NTP server would.
    """

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._jumped = 0.0

    def _elapsed(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed

    def now(self) -> float:
        return self._wall0 + self._elapsed() + self._jumped

    def monotonic(self) -> float:
        return self._mono0 + self._elapsed()

    def jump(self, seconds: float) -> None:
        self._jumped += seconds


@dataclass
class Rig:
    """One temp folder: demo database, sandbox database, state store, password, settings."""

    tmp: Path
    demo_template: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    sandbox: SandboxThread | None = None

    def __post_init__(self) -> None:
        self.demo_db.write_bytes(self.demo_template.read_bytes())
        self.secret.write_text(self.password, encoding="utf-8")
        self.invalid = expected_from_demo(self.demo_db).invalid

    @property
    def demo_db(self) -> Path:
        return self.tmp / "demo.db"

    @property
    def sandbox_db(self) -> Path:
        return self.tmp / "sandbox.db"

    @property
    def state_db(self) -> Path:
        return self.tmp / "state.db"

    @property
    def secret(self) -> Path:
        return self.tmp / "portal-password"

    def sandbox_config(self, **changes: Any) -> SandboxConfig:
        base = SandboxConfig(
            db_path=str(self.sandbox_db),
            username=USERNAME,
            password=self.password,
            dstcode=DSTCODE,
            procedures_csv=str(CROSSWALKS / "procedures.csv"),
            agencies_csv=str(CROSSWALKS / "agencies.csv"),
        )
        return replace(base, **changes)

    @contextmanager
    def portal(self, **changes: Any) -> Iterator[SandboxThread]:
        """The sandbox portal in a thread, stopped on exit."""
        with SandboxThread(self.sandbox_config(**changes)) as sandbox:
            self.sandbox = sandbox
            try:
                yield sandbox
            finally:
                self.sandbox = None

    def settings(self, portal_url: str, **sections: dict[str, Any]) -> Settings:
        """Settings for the connector; `sections` override keys, e.g. delivery={...}."""
        values: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULTS.items()}
        for name, changes in sections.items():
            values.setdefault(name, {}).update(changes)
        values["portal"]["base_url"] = portal_url
        path = self.tmp / "config.toml"
        path.write_text(_toml(self, values), encoding="utf-8")
        return load(path)

    def admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to one of the sandbox's `/_sandbox` endpoints."""
        assert self.sandbox is not None
        reply = httpx.post(f"{self.sandbox.url}{path}", json=body, timeout=10, trust_env=False)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def stats(self) -> dict[str, Any]:
        assert self.sandbox is not None
        reply = httpx.get(f"{self.sandbox.url}/_sandbox/stats", timeout=10, trust_env=False)
        data: dict[str, Any] = reply.json()
        return data

    def drained(self) -> bool:
        """Nothing pending or in flight but the steps of invalid dossiers."""
        return drained(self.state_db, self.invalid)

    def check(self, bounds: Bounds = NO_REPEATS) -> Report:
        return check(self.demo_db, self.sandbox_db, self.state_db, bounds=bounds)


DEFAULTS: dict[str, dict[str, Any]] = {
    "source": {"page_size": 100},
    "portal": {
        "header_batch_size": 20,
        "step_batch_size": 80,
        "session_expired_codes": ["-1"],
        "transient_codes": ["503"],
    },
    "portal.timeouts": {"connect": 2, "read": 5, "write": 5, "pool": 5, "total": 10},
    "portal.retry": {"attempts": 2, "max_seconds": 2, "backoff_initial": 0.05, "backoff_max": 0.2},
    "delivery": {"max_attempts": 100, "backoff_initial": 0.2, "backoff_max": 2},
    "status": {"enabled": False},
}


def _toml(rig: Rig, values: dict[str, dict[str, Any]]) -> str:
    lines = [
        "[state]",
        f'url = "sqlite:///{rig.state_db}"',
        "[source]",
        'name = "fault-onestop"',
        f'url = "sqlite:///{rig.demo_db}"',
        f'mapping = "{MAPPING}"',
        "[portal]",
        f'username = "{USERNAME}"',
        f'password = {{ file = "{rig.secret}" }}',
        f'dstcode = "{DSTCODE}"',
        'madonvi = "000.00.01.H26"',
    ]
    body = "\n".join(lines) + "\n"
    seen = {"state", "source", "portal"}
    for section, keys in values.items():
        rendered = "\n".join(f"{k} = {_value(v)}" for k, v in keys.items())
        if section in seen:
            body = body.replace(f"[{section}]\n", f"[{section}]\n{rendered}\n", 1)
        else:
            body += f"[{section}]\n{rendered}\n"
    return body


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def drained(state_store: Path | str, invalid: frozenset[str]) -> bool:
    """Nothing pending or in flight but the steps of invalid dossiers, which wait for a fix."""
    try:
        with read_state(state_store) as db:
            rows = db.execute(
                "SELECT kind, dossier FROM outbox WHERE state IN ('pending', 'in_flight')"
            ).fetchall()
            (acked,) = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'acked'").fetchone()
    except (sqlite3.Error, SQLAlchemyError):
        return False
    return acked > 0 and all(kind == "step" and dossier in invalid for kind, dossier in rows)


async def drive(
    app: App,
    *,
    until: Callable[[], bool],
    timeout: float,
    tick: float = 0.05,
    pull: bool = True,
) -> int:
    """Run pull and push rounds in-process until `until()` holds; returns the rounds run."""
    pull_job = app.pull_job()
    push_job = app.push_job()
    deadline = time.monotonic() + timeout
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        if pull:
            await anyio.to_thread.run_sync(pull_job.run)
        await push_job.drain(max_seconds=5.0)
        if await anyio.to_thread.run_sync(until):
            return rounds
        await asyncio.sleep(tick)
    raise AssertionError(f"not done after {timeout} s ({rounds} rounds)")


async def close_app(app: App) -> None:
    """Close what the jobs opened (portal client, source, store)."""
    if "portal" in app.__dict__:
        await app.portal.aclose()
    app.close()
