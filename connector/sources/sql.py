"""A `Source` over any database SQLAlchemy can reach, driven entirely by the mapping's SQL.

Database errors are translated here, in one place, into `SourceError` naming the stream;
the statement, its parameters and the URL (with its password) never reach the message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, TextClause, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from connector.core.masking import scrub_text
from connector.core.records import Cursor, SourceRecord
from connector.errors import ConfigError, MappingError, SourceError
from connector.ports import Page, Selection
from connector.sources.streams import ChildSpec, StreamSpec, compile_streams

BUSY_TIMEOUT_MS = 10_000
#: Parent keys bound per child query, below every database's limit on bound parameters.
IDS_PER_QUERY = 500
#: Where `select` starts its keyset pagination: keys must be integers above 0 (or, in
#: SQLite, any text, which sorts after every integer).
SELECT_START = 0

Record = dict[str, Any]


class SqlSource:
    """Reads the streams of a mapping file from one database.

    `timezone`, when given, is the zone the database's business times are in: an aware
    `Selection.since`/`until` is converted to it before being formatted. Naive datetimes
    are formatted as they are. `changed_since`/`changed_until` follow each stream's
    `changed_time_format` and `changed_timezone` (`_changed_time`).
    """

    def __init__(
        self,
        url: str,
        streams: Mapping[str, Mapping[str, Any]],
        *,
        password: str | None = None,
        timezone: str | None = None,
    ) -> None:
        self._specs = compile_streams(streams)
        self._zone = ZoneInfo(timezone) if timezone else None
        self._engine = _engine(url, password)
        self._where = _where(self._engine)

    def streams(self) -> Sequence[str]:
        return list(self._specs)

    def pull(self, stream: str, after: Cursor | None, limit: int) -> Page:
        """The next `limit` records after `after` (or after the stream's `start`)."""
        spec = self._spec(stream)
        cursor = spec.start if after is None else tuple(after)
        params: dict[str, Any] = {f"c{i}": value for i, value in enumerate(cursor)}
        params["limit"] = limit
        with self._reading(spec) as conn:
            records = _fetch(conn, spec, "pull", spec.pull, params)
            _attach(conn, spec, records)
        if not records:
            return Page(records=[], cursor=None)
        return Page(records=list[SourceRecord](records), cursor=_cursor_of(spec, records[-1]))

    def select(self, stream: str, selection: Selection, batch: int) -> Iterator[list[SourceRecord]]:
        """Every matching record in key order, `batch` at a time (keyset pagination).

        The query is checked when this is called, before anything is read: a resync opens
        every stream's selection first, so a stream that cannot be narrowed as asked stops
        it before any record is queued. One dossier alone is read by `select_dossier` when
        the stream has one: a retry or a re-read then costs an index search, not a scan.
        """
        spec = self._spec(stream)
        if spec.select_dossier is not None and _one_dossier(selection):
            one = {"dossier": selection.dossier, "limit": batch}
            return self._pages(spec, "select_dossier", spec.select_dossier, one, batch)
        if spec.select is None:
            raise MappingError(f"streams.{stream}: 'select' is missing")
        params = self._selection_params(spec, selection)
        unbound = spec.unbound({name for name, value in params.items() if value is not None})
        if unbound:
            names = ", ".join(f":{name}" for name in unbound)
            raise MappingError(
                f"streams.{stream}.select does not use {names}, so this resync cannot narrow "
                f"the stream by it and would read all of it; add a condition such as "
                f"`AND (:{unbound[0]} IS NULL OR ...)` (see mappings/README.md)"
            )
        return self._pages(spec, "select", spec.select, params | {"limit": batch}, batch)

    def _pages(
        self, spec: StreamSpec, name: str, query: TextClause, params: dict[str, Any], batch: int
    ) -> Iterator[list[SourceRecord]]:
        after: Any = SELECT_START
        while True:
            with self._reading(spec) as conn:
                records = _fetch(conn, spec, name, query, params | {"after": after})
                _attach(conn, spec, records)
            if records:
                yield list[SourceRecord](records)
            if len(records) < batch:
                return
            after = _value(spec, records[-1], spec.key)

    def close(self) -> None:
        self._engine.dispose()

    def _spec(self, stream: str) -> StreamSpec:
        spec = self._specs.get(stream)
        if spec is None:
            raise MappingError(f"streams.{stream}: no such stream")
        return spec

    def _selection_params(self, spec: StreamSpec, selection: Selection) -> dict[str, Any]:
        return {
            "dossier": selection.dossier,
            "since": self._time(spec, selection.since),
            "until": self._time(spec, selection.until),
            "changed_since": self._changed_time(spec, selection.changed_since),
            "changed_until": self._changed_time(spec, selection.changed_until),
            "agency": selection.agency,
            "procedure": selection.procedure,
        }

    def _time(self, spec: StreamSpec, moment: datetime | None) -> str | None:
        if moment is None:
            return None
        if moment.tzinfo is not None and self._zone is not None:
            moment = moment.astimezone(self._zone)
        return moment.strftime(spec.time_format)

    def _changed_time(self, spec: StreamSpec, moment: datetime | None) -> str | None:
        """A change-stamp bound as the stream's `changed_time_format` writes it. A naive
        time is the operator's wall clock, taken in the source's `timezone`; it is then
        converted to the stream's `changed_timezone` when one is set."""
        if moment is None:
            return None
        if moment.tzinfo is None and self._zone is not None:
            moment = moment.replace(tzinfo=self._zone)
        target = spec.stamp_zone(self._zone)
        if moment.tzinfo is not None and target is not None:
            moment = moment.astimezone(target)
        return moment.strftime(spec.changed_time_format)

    @contextmanager
    def _reading(self, spec: StreamSpec) -> Iterator[Connection]:
        """A connection for one read; database errors become SourceError naming the stream
        (a query's own failure names the query too, see `_fetch`)."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:  # the connection's: a query's is a SourceError already
            raise SourceError(f"stream {spec.name}: {_describe(exc)} ({self._where})") from exc


def _where(engine: Engine) -> str:
    """The local system as an operator would look for it: the SQLite file, or the URL
    without its password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"file {url.database}"
    return url.render_as_string(hide_password=True)


def _engine(url: str, password: str | None) -> Engine:
    """An engine for the URL; a bad URL or a missing driver is a configuration error."""
    try:
        target = make_url(url)
        if target.get_backend_name() == "sqlite":
            return _sqlite_engine(target)
        if password is not None:
            target = target.set(password=password)
        return create_engine(target, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise ConfigError(f"source url: {_describe(exc)}") from None


def _sqlite_engine(url: URL) -> Engine:
    """SQLite has no password: one set for the source is ignored.

    Parameters go to SQLite by name (`:c0`), not as `?` in order (the driver's default):
    a cursor condition names `:c0` twice (`modified_at > :c0 OR (modified_at = :c0 AND
    id > :c1)`), and only when both are the same parameter does SQLite read the index from
    the cursor on. With two `?` it walks the index from its start on every pull: a second
    per pull on a table of five million rows, and a backfill that slows as it goes.
    """
    engine = create_engine(url, paramstyle="named")
    event.listen(engine, "connect", _sqlite_busy_timeout)
    return engine


def _sqlite_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    """Wait for a writer (the local system) instead of failing with 'database is locked'."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.close()


def _describe(exc: Exception) -> str:
    """The driver's own message without the statement or parameters, scrubbed of anything
    that looks like personal data."""
    origin = getattr(exc, "orig", None)
    detail = str(origin) if origin is not None else type(exc).__name__
    return f"{type(exc).__name__}: {scrub_text(detail.splitlines()[0] if detail else '')}"


def _fetch(
    conn: Connection, spec: StreamSpec, name: str, query: TextClause, params: Mapping[str, Any]
) -> list[Record]:
    """The rows as dicts; one `fetchall` and plain tuples are far cheaper than row objects.

    A failure names the query's key in the mapping file (`streams.steps.select_dossier`):
    a stream has up to a handful of queries, and the driver's message ("no such column:
    x") does not say which one to fix.
    """
    try:
        result = conn.execute(query, params)
        keys = tuple(result.keys())
        rows = result.fetchall()
    except SQLAlchemyError as exc:
        where = f"streams.{spec.name}.{name}"
        raise SourceError(f"stream {spec.name}: {_describe(exc)} (in {where})") from exc
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _attach(conn: Connection, spec: StreamSpec, records: list[Record]) -> None:
    """Run each child query once per page and attach its rows (or []) to every record."""
    if not records or not spec.children:
        return
    keys = [_value(spec, record, spec.key) for record in records]
    for child in spec.children:
        grouped = _child_rows(conn, spec, child, keys)
        for record, key in zip(records, keys, strict=True):
            record[child.name] = grouped.get(key, [])


def _child_rows(
    conn: Connection, spec: StreamSpec, child: ChildSpec, keys: list[Any]
) -> dict[Any, list[Record]]:
    grouped: dict[Any, list[Record]] = defaultdict(list)
    for start in range(0, len(keys), IDS_PER_QUERY):
        ids = {"ids": keys[start : start + IDS_PER_QUERY]}
        for row in _fetch(conn, spec, f"children.{child.name}.query", child.query, ids):
            if child.parent not in row:
                raise MappingError(
                    f"streams.{spec.name}.children.{child.name}: query has no column "
                    f"'{child.parent}'"
                )
            grouped[row[child.parent]].append(row)
    return grouped


def _value(spec: StreamSpec, record: Record, column: str) -> Any:
    if column not in record:
        raise MappingError(f"streams.{spec.name}: query has no column '{column}'")
    return record[column]


def _cursor_of(spec: StreamSpec, record: Record) -> Cursor:
    return tuple(_value(spec, record, column) for column in spec.cursor)


def _one_dossier(selection: Selection) -> bool:
    """Whether `selection` asks for one dossier and nothing else."""
    return selection.dossier is not None and selection == Selection(dossier=selection.dossier)
