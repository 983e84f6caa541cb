"""The state store under test, one per backend: SQLite file, SQLite memory, PostgreSQL
(when `CONNECTOR_TEST_POSTGRES_URL` names a database the tests may empty)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector.store import SqlStore
from connector.store.schema import metadata

PG_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")


def _sqlite_file(tmp_path: Path) -> SqlStore:
    return SqlStore.open(f"sqlite:///{tmp_path / 'state' / 'store.db'}")


def _sqlite_memory(tmp_path: Path) -> SqlStore:
    return SqlStore.open("sqlite://")


def _postgres(tmp_path: Path) -> SqlStore:
    if not PG_URL:
        pytest.skip("CONNECTOR_TEST_POSTGRES_URL is not set")
    store = SqlStore.open(PG_URL)
    metadata.drop_all(store.engine)
    store.close()
    return SqlStore.open(PG_URL)


@pytest.fixture(params=[_sqlite_file, _sqlite_memory, _postgres], ids=["file", "memory", "pg"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    factory: Callable[[Path], SqlStore] = request.param
    opened = factory(tmp_path)
    yield opened
    opened.close()
