"""Fixtures for the fault scenarios: one small generated demo system per session, a rig per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import MAPPING
from tests.faults.workload import Rig

SCENARIO_DOSSIERS = 120


@pytest.fixture(scope="session")
def fault_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo database (about five steps per dossier, some deliberately invalid)."""
    from connector.demo.generate import init_demo

    path = tmp_path_factory.mktemp("fault-demo") / "demo.db"
    init_demo(path, MAPPING.parent / "demo", dossiers=SCENARIO_DOSSIERS, seed=11, overwrite=True)
    return path


@pytest.fixture
def rig(tmp_path: Path, fault_demo: Path) -> Rig:
    return Rig(tmp=tmp_path, demo_template=fault_demo)
