"""Pointing the connector at a local system it has never seen: configuration and a new
mapping file only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Stack, dead_letters, held_by_sandbox
from tests.fixtures.othersystem.build import build

pytestmark = pytest.mark.e2e
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "othersystem"


def test_new_local_system_by_mapping_only(tmp_path: Path) -> None:
    """A legacy schema with UTC times and Vietnamese column names is delivered by `run
    --once` with nothing but its own mapping file and configuration."""
    for name in ("mapping.toml", "coquan.csv"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    stack = Stack(tmp=tmp_path, mapping=tmp_path / "mapping.toml")
    numbers = build(stack.demo_db)
    stack.write_config()
    try:
        stack.start_sandbox(catalogue=False)  # this system's codes are not the demo's
        result = stack.cli("run", "--once", "--config", str(stack.config))
        report = json.loads(result.stdout[result.stdout.index("{") :])
        assert report["invalid"] == 1
        held = held_by_sandbox(stack.sandbox_db)
        assert set(held.dossiers) == set(numbers["valid"])
        first = held.dossiers[numbers["valid"][0]]
        # 2026-11-20 17:30 UTC is 2026-11-21 00:30 in Vietnam: the day boundary moved.
        assert first["NgayTiepNhan"] == "20261121003000"
        assert first["DonViXuLy"] == "Sở Tài nguyên và Môi trường"
        assert len(held.steps) == 2 * len(numbers["valid"])
        dead = dead_letters(stack.state_db)
        assert set(dead) == set(numbers["invalid"])
        assert "Email" in dead[numbers["invalid"][0]]
    finally:
        stack.stop_all()
