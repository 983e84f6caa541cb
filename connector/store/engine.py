"""Engines for the state store: SQLite (WAL) by default, PostgreSQL by URL.

Every dialect-specific detail lives here, so the store's queries stay portable Core.
SQLite write transactions take the write lock up front (`BEGIN IMMEDIATE`): the pull thread
and the push coroutine both write, and two deferred transactions that each read then try to
write would fail with "database is locked" instead of waiting for each other.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.compiler import SQLCompiler

from connector.errors import StoreError

#: Execution option marking a connection whose transaction only reads (plain `BEGIN`).
READ_ONLY = "connector_read_only"

_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def make_engine(url: str, *, password: str | None = None) -> Engine:
    """An engine for `url`; `password` (from a secret) is set on the URL, never logged."""
    parsed = make_url(url)
    if password is not None:
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, hide_parameters=True, pool_pre_ping=True)
    return _sqlite_engine(parsed)


def is_memory(url: URL) -> bool:
    """True for `sqlite://` and `sqlite:///:memory:`: one connection, nothing on disk."""
    return url.database in (None, "", ":memory:")


def _sqlite_engine(url: URL) -> Engine:
    memory = is_memory(url)
    if memory:
        engine = create_engine(
            url,
            hide_parameters=True,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        path = Path(str(url.database)).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
        create_private(path)
        engine = create_engine(
            url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": 30}
        )
    event.listen(engine, "connect", _sqlite_session if memory else _sqlite_file_session)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def create_private(path: Path) -> None:
    """Create `path`, empty, readable by its owner only, unless it exists.

    The state store holds payloads with personal data in clear: a new store (and each
    backup) is not left readable by every account on the machine. SQLite gives its WAL and
    shared-memory files the database file's permissions. An existing file keeps its own,
    which an operator may have set on purpose.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from None


def _sqlite_session(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """Hand BEGIN to `_sqlite_begin` (the driver's own would be deferred) and set pragmas."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_file_session(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """WAL lets readers (the status page) run beside the one writer."""
    _sqlite_session(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


#: Keys of the transaction-scoped advisory locks `serialized` takes on PostgreSQL; fixed, so
#: every connector process agrees on them (the worker lock has one of its own).
SCHEMA_LOCK = 0x736368656D61  # "schema"
AUDIT_LOCK = 0x617564697400  # "audit"


def serialized(conn: Connection, key: int) -> None:
    """Make the rest of this write transaction run alone among those asking for `key`.

    SQLite write transactions already do (`BEGIN IMMEDIATE`). PostgreSQL's read committed
    lets two run at once: two processes appending to the audit trail would both read the
    same head and chain onto it, and two opening a new store would both create its tables.
    The lock goes with the transaction; statements after it see what the other committed.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT for `table` offering `on_conflict_do_nothing` / `on_conflict_do_update`.

    Both SQLite and PostgreSQL spell the clause the same way, through their own `insert`.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"state store: no upsert for the {dialect} dialect")


def among(conn: Connection, column: ColumnElement[Any], values: Sequence[str | int]) -> Any:
    """`column IN values` bound as ONE parameter, so long lists cost no per-value compiling.

    SQLite reads the list from a JSON array (`json_each`), PostgreSQL from an array
    (`= ANY`); both still search the column's index value by value.
    """
    if conn.dialect.name == "sqlite":
        data = orjson.dumps(list(values)).decode("utf-8")
        each = func.json_each(bindparam(None, data, type_=String)).table_valued("value")
        return column.in_(select(each.c.value))
    if conn.dialect.name == "postgresql":
        array = postgresql.ARRAY(column.type)
        return column == any_(bindparam(None, list(values), type_=array))
    return column.in_(values)


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """A multi-row INSERT sent straight to the driver's executemany.

    The statement is still compiled from Core for the connection's dialect; only the
    per-row parameter processing, the costliest part on the ingest path, is skipped.
    Values must already be what the driver takes (str, int, float, bytes).
    """
    compiled = _compiled_insert(conn.dialect, table, tuple(rows[0]))
    order = compiled.positiontup
    if order is None:
        conn.exec_driver_sql(str(compiled), [dict(row) for row in rows])
    else:
        # itemgetter of several names returns a tuple; of one name, the bare value.
        pick = operator.itemgetter(*order)
        values = [pick(row) for row in rows] if len(order) > 1 else [(pick(row),) for row in rows]
        conn.exec_driver_sql(str(compiled), values)


@functools.lru_cache(maxsize=32)
def _compiled_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> SQLCompiler:
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    assert isinstance(compiled, SQLCompiler)
    return compiled
