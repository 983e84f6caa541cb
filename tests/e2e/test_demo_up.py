"""`connector demo up`, the README's first command, on config.example.toml as shipped.

Only the ports and the mapping's path are changed (two runs must not share ports, and the
test runs outside the repository). The demo delivers to its sandbox; another command run
beside it logs in with the password `demo up` made up and kept for it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.harness import MAPPING, ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD_ENV = "CONNECTOR_PORTAL_PASSWORD"


def _config(tmp: Path, portal_port: int, status_port: int) -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for pattern, value in (
        (r"http://127\.0\.0\.1:8780", f"http://127.0.0.1:{portal_port}"),
        (r"(?m)^port = 8765", f"port = {status_port}"),
        (r'mapping = "mappings/demo\.toml"', f'mapping = "{MAPPING.as_posix()}"'),
    ):
        text, found = re.subn(pattern, value, text)
        assert found == 1, f"config.example.toml no longer has {pattern!r}"
    path = tmp / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _acked_dossier(state_db: Path) -> str | None:
    if not state_db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT dossier FROM outbox WHERE kind = 'header' AND state = 'acked' LIMIT 1"
            ).fetchone()
    except sqlite3.OperationalError:  # the store is being created
        return None
    return None if row is None else str(row[0])


def test_demo_up_delivers_and_keeps_its_sandbox_password_for_other_commands(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    log = tmp_path / "demo.log"
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would stall the demo
        demo = subprocess.Popen(
            [sys.executable, "-m", "connector", "demo", "up", "--config", str(config),
             "--dossiers", "200", "--duration", "90"],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        state_db = tmp_path / "var" / "connector-state.db"
        found: list[str] = []

        def delivered() -> bool:
            assert demo.poll() is None, "demo up stopped early"
            dossier = _acked_dossier(state_db)
            found[:] = [dossier] if dossier else []
            return bool(found)

        wait_until(delivered, timeout=60, what="a dossier acknowledged by the sandbox")
        password_file = tmp_path / "var" / "sandbox-password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text(encoding="utf-8").strip()
        traced = subprocess.run(
            [sys.executable, "-m", "connector", "trace", found[0], "--config", str(config),
             "--json"],
            cwd=tmp_path, env={**env, PASSWORD_ENV: password}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert traced.returncode == 0, traced.stderr
        document = json.loads(traced.stdout)
        assert document["looked_up"] is True, document["portal_said"]
        assert document["portal"]["fields"]["MaHoSo"] == found[0]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
        try:
            code = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=10)
            raise
    output = log.read_text(encoding="utf-8")
    assert code == 0, output[-2000:]
    command = f"export {PASSWORD_ENV}=$(cat {password_file})"
    assert any(line.endswith(command) for line in output.splitlines()), output[:2000]
    assert password not in output
