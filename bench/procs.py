"""The benchmark's processes: the sandbox portal and the daemon, each a real subprocess.

Every wait is bounded; `Processes.stop_all` stops whatever was started (SIGTERM, then
SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.synth import CROSSWALKS, MAPPING

DSTCODE = "BENCH-DST"
USERNAME = "bench"

CONFIG = """
[state]
url = "sqlite:///{state}"

[source]
name = "bench-onestop"
url = "sqlite:///{source}"
mapping = "{mapping}"
page_size = {page_size}

[portal]
base_url = "http://127.0.0.1:{sandbox_port}"
username = "{username}"
password = {{ env = "CONNECTOR_PORTAL_PASSWORD" }}
dstcode = "{dstcode}"
madonvi = "000.00.01.H26"
header_batch_size = {header_batch}
step_batch_size = {step_batch}
max_items_per_second = {rate}
session_expired_codes = ["-1"]
transient_codes = ["503"]

[schedule]
pull_seconds = {pull_seconds}
push_seconds = 1

[status]
port = {status_port}

[logging]
format = "json"
level = "INFO"
"""


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """What the benchmark sets beyond the defaults (an operator's tuning, reported)."""

    page_size: int = 2000
    header_batch: int = 500
    step_batch: int = 1000
    pull_seconds: float = 1.0
    rate: float = 0.0

    def describe(self) -> str:
        return (
            f"source.page_size={self.page_size} portal.header_batch_size={self.header_batch} "
            f"portal.step_batch_size={self.step_batch} "
            f"portal.max_items_per_second={self.rate:g} schedule.pull_seconds="
            f"{self.pull_seconds:g}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass
class Processes:
    """The sandbox and daemon of one benchmark run, in `workdir`."""

    workdir: Path
    password: str
    sandbox_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def sandbox_db(self) -> Path:
        return self.workdir / "sandbox.db"

    @property
    def state_db(self) -> Path:
        return self.workdir / "state.db"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONNECTOR_PORTAL_PASSWORD": self.password}

    def start_sandbox(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "connector", "sandbox",
            "--port", str(self.sandbox_port), "--db", str(self.sandbox_db),
            "--username", USERNAME, "--dstcode", DSTCODE,
            "--procedures-csv", str(CROSSWALKS / "procedures.csv"),
            "--agencies-csv", str(CROSSWALKS / "agencies.csv"),
        ]  # fmt: skip
        proc = self._spawn(cmd, "sandbox")
        wait_until(lambda: listening(self.sandbox_port), timeout=30, what="the sandbox to listen")
        return proc

    def write_config(self, source: Path, tuning: Tuning, name: str = "config.toml") -> Path:
        body = CONFIG.format(
            state=self.state_db,
            source=source,
            mapping=MAPPING,
            sandbox_port=self.sandbox_port,
            status_port=self.status_port,
            username=USERNAME,
            dstcode=DSTCODE,
            page_size=tuning.page_size,
            header_batch=tuning.header_batch,
            step_batch=tuning.step_batch,
            rate=tuning.rate,
            pull_seconds=tuning.pull_seconds,
        )
        path = self.workdir / name
        path.write_text(body, encoding="utf-8")
        return path

    def start_daemon(self, config: Path) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "connector", "run", "--config", str(config)]
        return self._spawn(cmd, "daemon")

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.workdir
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 60.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, key: str) -> int:
    """A `Vm…` line of /proc/<pid>/status in kB (VmHWM is the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0
