"""Fixtures that start real processes on 127.0.0.1 and always stop them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack

DEMO_DOSSIERS = 600


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated demo database, copied by each test that changes it."""
    from connector.demo.generate import init_demo
    from tests.e2e.harness import MAPPING

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    init_demo(path, MAPPING.parent / "demo", dossiers=DEMO_DOSSIERS, seed=3, overwrite=True)
    return path


@pytest.fixture
def stack(tmp_path: Path, demo_template: Path) -> Iterator[Stack]:
    import shutil

    s = Stack(tmp=tmp_path)
    shutil.copy(demo_template, s.demo_db)
    s.write_config()
    try:
        yield s
    finally:
        s.stop_all()
