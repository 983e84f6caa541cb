"""A small generated demo database and the real demo mapping's [streams] section."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.demo.generate import init_demo
from connector.sources.sql import SqlSource

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
NOW = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def streams() -> dict[str, Any]:
    with (MAPPINGS / "demo.toml").open("rb") as handle:
        return dict(tomllib.load(handle)["streams"])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "onestop.db"
    init_demo(path, MAPPINGS / "demo", dossiers=200, seed=3, now=NOW)
    return path


@pytest.fixture
def source(db_path: Path, streams: dict[str, Any]) -> Iterator[SqlSource]:
    src = SqlSource(f"sqlite:///{db_path}", streams, timezone="Asia/Ho_Chi_Minh")
    yield src
    src.close()
