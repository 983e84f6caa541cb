"""A small run of the backfill benchmark, so CI proves the script works end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"^dossiers_per_s=\d+ steps_per_s=\d+ peak_rss_mb=\d+\.\d ratio_vs_per_dossier=\d+\.\d$"
)


def test_backfill_benchmark_runs_every_phase_and_prints_its_figures(tmp_path: Path) -> None:
    """300 dossiers through every phase: the run ends well and its last line has the
    figures, with nothing repeated at the portal."""
    args = [
        "--dossiers", "300", "--template-dossiers", "200", "--baseline-dossiers", "20",
        "--steady-seconds", "3", "--steady-rate", "4", "--outage-seconds", "1",
        "--drain-dossiers", "100", "--drain-rate", "500", "--timeout", "240",
        "--workdir", str(tmp_path / "bench"),
    ]  # fmt: skip
    code, out, err = _run_with_servers("backfill.py", args, tmp_path, timeout=420)
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert "{'duplicate_steps': 0, 'headers_applied_twice': 0}" in out
    assert any(line.startswith("steady state:") and "p95" in line for line in lines)
    assert any(line.startswith("outage of 1 s") for line in lines)
    assert any("the sandbox portal used" in line for line in lines)
    _check_storage(tmp_path / "bench" / "state.db")


def _run_with_servers(
    script: str, args: list[str], cwd: Path, *, timeout: float
) -> tuple[int, str, str]:
    """Run a benchmark script that starts the sandbox (and maybe a daemon): in a session of
    its own, so that on a timeout it is killed with every process it started."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode, out, err


def _check_storage(state: Path) -> None:
    """`bench/storage.py` on the store the run left: it sizes what is kept for good."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "storage.py"), str(state)],
        capture_output=True, text=True, timeout=120, cwd=state.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    found = re.match(r"^kept_bytes_per_dossier=(\d+) audit_bytes_per_dossier=(\d+)$", last)
    assert found and int(found[1]) > 0 and int(found[2]) > 0, proc.stdout


def test_audit_trail_benchmark_runs(tmp_path: Path) -> None:
    """A small run of `bench/audit_trail.py`: every step ends with an intact chain."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit_trail.py"), "--records", "3000",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "archive: 1500 records" in proc.stdout
    assert "verify through the archive: 3000 records, ok=True" in proc.stdout


def test_store_floor_benchmark_runs(tmp_path: Path) -> None:
    """A small run of `bench/floor.py`: both layouts are written, claimed and settled."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "floor.py"), "--dossiers", "300", "--page", "100"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert re.match(r"^floor_per_item_ms=\d+\.\d+ floor_per_dossier_ms=\d+\.\d+ ratio=", last)


def test_stages_benchmark_runs(tmp_path: Path) -> None:
    """A small run of `bench/stages.py`: every valid item pulled, pushed to the sandbox and
    acknowledged (the script checks), and each stage's CPU time on the last line."""
    args = ["--dossiers", "300", "--template-dossiers", "200", "--workdir", str(tmp_path / "s")]
    code, out, err = _run_with_servers("stages.py", args, tmp_path, timeout=180)
    assert code == 0, err
    lines = out.strip().splitlines()
    _check_stage_figures(
        lines[-1], ["source", "mapping", "plan", "write", "claim", "settle", "audit", "rest", "job"]
    )
    assert re.match(r"^\d+ valid dossiers of 300, \d+ items sent$", lines[-4]), lines


def test_lean_benchmark_runs(tmp_path: Path) -> None:
    """A small run of `bench/lean.py`, the one-row-per-dossier prototype: every valid item
    held by the sandbox once (the script checks), and each stage's CPU time on the last line."""
    args = ["--dossiers", "300", "--template-dossiers", "200", "--workdir", str(tmp_path / "l")]
    code, out, err = _run_with_servers("lean.py", args, tmp_path, timeout=180)
    assert code == 0, err
    lines = out.strip().splitlines()
    _check_stage_figures(
        lines[-1], ["source", "mapping", "store_pull", "claim", "settle", "rest", "job"]
    )
    summary = r"^\d+ valid dossiers of 300, \d+ invalid items, \d+ items sent$"
    assert re.match(summary, lines[-9]), lines


def _check_stage_figures(last: str, stages: list[str]) -> None:
    """The last line names each stage's CPU ms per dossier, then the total, all above 0."""
    names = [*stages, "total"]
    found = re.match(" ".join(rf"{name}_ms=(\d+\.\d+)" for name in names) + "$", last)
    assert found, last
    assert all(float(value) > 0 for value in found.groups()), last
