"""Real processes on 127.0.0.1 for end-to-end tests: sandbox portal, daemon, demo system.

Every wait is bounded; every process started here is stopped by the fixture that made it.
"""

from __future__ import annotations

import csv
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "mappings" / "demo.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Stack:
    """One demo system, one sandbox portal and one daemon configuration in a temp folder."""

    tmp: Path
    mapping: Path = MAPPING
    header_batch: int = 50
    step_batch: int = 200
    sandbox_args: list[str] = field(default_factory=list)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    sandbox_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Another state store than the SQLite file `state_db` (a PostgreSQL URL).
    state_url: str | None = None

    @property
    def demo_db(self) -> Path:
        return self.tmp / "demo.db"

    @property
    def state_db(self) -> Path:
        return self.tmp / "state.db"

    @property
    def state_store(self) -> Path | str:
        """What the checker reads the state store from: the SQLite file, or the URL."""
        return self.state_url or self.state_db

    @property
    def sandbox_db(self) -> Path:
        return self.tmp / "sandbox.db"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    @property
    def config(self) -> Path:
        return self.tmp / "config.toml"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONNECTOR_PORTAL_PASSWORD": self.password}

    def write_config(self, **overrides: str) -> Path:
        body = CONFIG_TEMPLATE.format(
            state=self.state_url or f"sqlite:///{self.state_db}",
            demo=self.demo_db,
            mapping=self.mapping,
            sandbox=self.sandbox_url,
            status_port=self.status_port,
            header_batch=self.header_batch,
            step_batch=self.step_batch,
        )
        for key, value in overrides.items():
            body = body.replace(f"{key} = ", f"{key} = {value}  # ", 1)
        self.config.write_text(body, encoding="utf-8")
        return self.config

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "connector", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            cwd=self.tmp,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"connector {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def start_sandbox(self, *extra: str, catalogue: bool = True) -> subprocess.Popen[bytes]:
        """The sandbox portal, with the demo's catalogue unless `catalogue` is False."""
        crosswalks = self.mapping.parent / "demo"
        cmd = [
            sys.executable,
            "-m",
            "connector",
            "sandbox",
            "--port",
            str(self.sandbox_port),
            "--db",
            str(self.sandbox_db),
            "--username",
            "demo",
            "--dstcode",
            "TEST-DST",
            *self.sandbox_args,
            *extra,
        ]
        if catalogue:
            cmd += [
                "--procedures-csv",
                str(crosswalks / "procedures.csv"),
                "--agencies-csv",
                str(crosswalks / "agencies.csv"),
            ]
        proc = self._spawn(cmd, "sandbox")
        wait_until(lambda: _listening(self.sandbox_port), timeout=20, what="sandbox to listen")
        return proc

    def start_daemon(self) -> subprocess.Popen[bytes]:
        return self._spawn(
            [sys.executable, "-m", "connector", "run", "--config", str(self.config)], "daemon"
        )

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.tmp
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(
            f"{self.sandbox_url}/_sandbox/stats", timeout=5, trust_env=False
        ).json()
        return data

    def status(self) -> dict[str, Any] | None:
        try:
            reply = httpx.get(f"{self.status_url}/status", timeout=5, trust_env=False)
        except httpx.HTTPError:
            return None
        data: dict[str, Any] = reply.json()
        return data


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


CONFIG_TEMPLATE = """
[state]
url = "{state}"
worker_lock_wait_seconds = 30

[source]
name = "test-onestop"
url = "sqlite:///{demo}"
mapping = "{mapping}"
page_size = 200

[portal]
base_url = "{sandbox}"
username = "demo"
password = {{ env = "CONNECTOR_PORTAL_PASSWORD" }}
dstcode = "TEST-DST"
madonvi = "000.00.01.H26"
header_batch_size = {header_batch}
step_batch_size = {step_batch}
session_expired_codes = ["-1"]
transient_codes = ["503"]

[portal.retry]
attempts = 3
max_seconds = 5
backoff_initial = 0.05
backoff_max = 0.5

[delivery]
max_attempts = 50
backoff_initial = 0.2
backoff_max = 2

[schedule]
pull_seconds = 0.5
push_seconds = 0.5
reconcile_seconds = 5
reconcile_sample = 5

[status]
port = {status_port}

[logging]
format = "json"
level = "INFO"
"""


# --- what the source says must arrive, computed from the local data, not from the connector


@dataclass(frozen=True)
class Expected:
    dossiers: frozenset[str]
    invalid: frozenset[str]
    steps: frozenset[tuple[str, str, str]]
    status_of: dict[str, str]


def expected_from_demo(demo_db: Path, mapping: Path = MAPPING) -> Expected:
    """Valid dossiers, their steps and the deliberately invalid ones, read straight from the
    demo database: a valid one has a crosswalked procedure and a due date."""
    doc = tomllib.loads(mapping.read_text(encoding="utf-8"))
    codes = doc["codes"]["status"]
    with (mapping.parent / "demo" / "procedures.csv").open(encoding="utf-8") as f:
        crosswalk = {row["local_code"] for row in csv.DictReader(f)}
    db = sqlite3.connect(demo_db)
    try:
        rows = db.execute(
            "SELECT id, dossier_no, procedure_code, due_at, received_at, status FROM dossiers"
        ).fetchall()
        valid_ids = {r[0]: r[1] for r in rows if r[2] in crosswalk and r[3] and r[4]}
        invalid = frozenset(r[1] for r in rows if r[0] not in valid_ids)
        steps = frozenset(
            (valid_ids[d], _vn14(at), codes[status])
            for d, at, status in db.execute("SELECT dossier_id, action_at, status FROM steps")
            if d in valid_ids
        )
        status_of = {r[1]: codes[r[5]] for r in rows if r[0] in valid_ids}
    finally:
        db.close()
    return Expected(
        dossiers=frozenset(valid_ids.values()), invalid=invalid, steps=steps, status_of=status_of
    )


def _vn14(value: str) -> str:
    return value.replace("-", "").replace(" ", "").replace(":", "").replace("T", "")[:14]


@dataclass(frozen=True)
class Held:
    dossiers: dict[str, dict[str, Any]]
    steps: list[tuple[str, str, str]]


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), over `target`."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def held_by_sandbox(sandbox_db: Path) -> Held:
    import orjson

    db = sqlite3.connect(f"file:{sandbox_db}?mode=ro", uri=True)
    try:
        dossiers = {
            m: orjson.loads(p) for m, p in db.execute("SELECT ma_ho_so, payload FROM dossiers")
        }
        steps = [tuple(r) for r in db.execute("SELECT ma_ho_so, thoi_diem, trang_thai FROM steps")]
    finally:
        db.close()
    return Held(dossiers=dossiers, steps=steps)  # type: ignore[arg-type]


def dead_letters(state_db: Path) -> dict[str, str]:
    """Dead letters in the state store: key → reason."""
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        return dict(
            db.execute(
                "SELECT dossier, last_message FROM outbox"
                " WHERE state IN ('invalid', 'rejected', 'parked')"
            ).fetchall()
        )
    finally:
        db.close()


def outbox_states(state_db: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    finally:
        db.close()
