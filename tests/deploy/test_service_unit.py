"""The systemd unit in deploy/ agrees with the daemon it starts."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connector.daemon import STOP_GRACE_SECONDS

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "connector.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


def test_the_unit_runs_the_daemon_and_does_not_restart_a_configuration_error(
    tmp_path: Path,
) -> None:
    """ExecStart's arguments, given to the real CLI with a configuration that is not there,
    exit with the status the unit refuses to restart on."""
    command = shlex.split(_service()["ExecStart"])
    assert Path(command[0]).name == "connector"
    assert command[1:3] == ["run", "--config"] and len(command) == 4
    missing = tmp_path / "nowhere.toml"
    done = subprocess.run(
        [sys.executable, "-m", "connector", *command[1:3], str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert str(done.returncode) == _service()["RestartPreventExitStatus"]
    assert "error:" in done.stderr
    assert _service()["Restart"] == "on-failure"


def test_systemd_waits_longer_than_the_daemon_takes_to_stop() -> None:
    """SIGTERM lets the running round settle within STOP_GRACE_SECONDS; systemd must not
    kill the daemon before that."""
    service = _service()
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > STOP_GRACE_SECONDS


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_reads_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong but the binary not being installed here."""
    copy = tmp_path / "connector.service"
    copy.write_text(UNIT.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "/opt/connector/bin/connector" not in line
    ]
    assert complaints == []
