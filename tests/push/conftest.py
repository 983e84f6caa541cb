"""A small generated demo system per session and a rig per test, as the fault scenarios use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import MAPPING
from tests.faults.workload import Rig


@pytest.fixture(scope="session")
def push_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 150 dossiers with five steps each, some deliberately invalid."""
    from connector.demo.generate import init_demo

    path = tmp_path_factory.mktemp("push-demo") / "demo.db"
    init_demo(path, MAPPING.parent / "demo", dossiers=150, seed=5, overwrite=True)
    return path


@pytest.fixture
def rig(tmp_path: Path, push_demo: Path) -> Rig:
    return Rig(tmp=tmp_path, demo_template=push_demo)
