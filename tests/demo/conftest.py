"""Demo databases built once per module, at a fixed 'now', from the shipped crosswalks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.demo.generate import DemoSummary, init_demo

CROSSWALKS = Path(__file__).resolve().parents[2] / "mappings" / "demo"
NOW = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    path = tmp_path_factory.mktemp("demo") / "onestop.db"
    return init_demo(path, CROSSWALKS, dossiers=3000, seed=7, now=NOW)


@pytest.fixture
def db(demo: DemoSummary) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(demo.path)
    yield conn
    conn.close()
