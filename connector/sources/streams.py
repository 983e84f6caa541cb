"""The `[streams]` section of a mapping file, checked and compiled once at start.

A stream says how to read one kind of record from a local database: the incremental `pull`
query and its cursor columns, the `select` query for operator resyncs (and optionally
`select_dossier`, the same for one dossier by an index), and child queries whose rows are
attached to each parent record. Nothing here knows a table or column name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import TextClause, bindparam, text

from connector.errors import MappingError

DEFAULT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: What a `select` query may bind for an operator's selection (NULL when not asked). A
#: resync that asks for one the query does not bind is refused: the database would ignore
#: it and select the whole table.
SELECTION_PARAMS = (
    "dossier", "since", "until", "changed_since", "changed_until", "agency", "procedure"
)  # fmt: skip
#: What every `select` query must bind: its keyset pagination. Without `:after` a resync
#: would read its first page for ever; without `:limit`, the whole selection at once.
PAGING_PARAMS = ("after", "limit")
#: What a `select_dossier` query binds: the one dossier's number and the paging.
DOSSIER_PARAMS = ("dossier", *PAGING_PARAMS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """Rows attached under `name` to each parent record whose key equals their `parent`."""

    name: str
    parent: str
    query: TextClause  # binds :ids, a list of parent keys


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSpec:
    """One compiled stream."""

    name: str
    key: str
    cursor: tuple[str, ...]
    start: tuple[Any, ...]
    time_format: str
    pull: TextClause
    select: TextClause | None
    children: tuple[ChildSpec, ...]
    select_params: frozenset[str] = frozenset()  # the parameters `select` binds
    #: One dossier's records (`:dossier`): what a resync, retry, trace or re-read of one
    #: dossier runs instead of `select`, whose `:dossier IS NULL OR …` no index can serve.
    select_dossier: TextClause | None = None
    # How :changed_since / :changed_until are written: a change stamp is often kept in
    # another form and zone (UTC, say) than the business dates :since / :until compare to.
    changed_time_format: str = DEFAULT_TIME_FORMAT
    changed_timezone: ZoneInfo | None = None  # None: the source's own `timezone`

    def stamp_zone(self, default: ZoneInfo | None) -> ZoneInfo | None:
        """The zone of this stream's change stamps when they carry none: its own
        `changed_timezone`, else `default` (the mapping's `timezone`)."""
        return self.changed_timezone or default

    def unbound(self, asked: set[str]) -> list[str]:
        """The selection parameters in `asked` that `select` does not bind."""
        return sorted(asked - self.select_params)


def compile_streams(streams: Mapping[str, Mapping[str, Any]]) -> dict[str, StreamSpec]:
    """Check every stream and compile its queries; MappingError names the stream and key."""
    if not streams:
        raise MappingError("streams: no stream is defined")
    return {name: _stream(name, raw) for name, raw in streams.items()}


def _required(where: str, raw: Mapping[str, Any], key: str, kind: type) -> Any:
    value = raw.get(key)
    if value is None:
        raise MappingError(f"{where}: '{key}' is missing")
    if not isinstance(value, kind) or not value:
        raise MappingError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def _stream(name: str, raw: Mapping[str, Any]) -> StreamSpec:
    where = f"streams.{name}"
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: must be a table")
    pull = _required(where, raw, "pull", str)
    key = _required(where, raw, "key", str)
    cursor = tuple(_required(where, raw, "cursor", list))
    if not all(isinstance(c, str) for c in cursor):
        raise MappingError(f"{where}: 'cursor' must list column names")
    start = tuple(_required(where, raw, "start", list))
    if len(start) != len(cursor):
        raise MappingError(f"{where}: 'start' must have one value per 'cursor' column")
    select = _paged(where, "select", raw.get("select"))
    select_dossier = _paged(where, "select_dossier", raw.get("select_dossier"))
    time_format = str(raw.get("time_format", DEFAULT_TIME_FORMAT))
    return StreamSpec(
        name=name,
        key=key,
        cursor=cursor,
        start=start,
        time_format=time_format,
        pull=text(pull),
        select=select,
        children=_children(where, raw.get("children", {})),
        select_params=frozenset() if select is None else frozenset(select.compile().params),
        select_dossier=select_dossier,
        changed_time_format=str(raw.get("changed_time_format", time_format)),
        changed_timezone=_zone(where, raw.get("changed_timezone")),
    )


def _zone(where: str, raw: Any) -> ZoneInfo | None:
    if raw is None:
        return None
    try:
        return ZoneInfo(str(raw))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f"{where}: 'changed_timezone' {raw!r} is not a time zone (e.g. UTC)"
        ) from None


#: What each selecting query must bind, and how it reads when it does.
_PAGED = {
    "select": (
        PAGING_PARAMS,
        "page with :after and :limit (`WHERE <key> > :after ... ORDER BY <key> LIMIT :limit`)",
    ),
    "select_dossier": (
        DOSSIER_PARAMS,
        "select by :dossier and page with :after and :limit (`WHERE d.dossier_no = :dossier "
        "AND <key> > :after ... ORDER BY <key> LIMIT :limit`)",
    ),
}


def _paged(where: str, name: str, raw: Any) -> TextClause | None:
    """The `select` or `select_dossier` query, refused when it does not bind what it must:
    without paging a resync would read its first page for ever, and a `select_dossier`
    without :dossier would read every dossier as the one asked for."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise MappingError(f"{where}: '{name}' must be a string")
    query = text(raw)
    needed, form = _PAGED[name]
    missing = [f":{param}" for param in needed if param not in query.compile().params]
    if missing:
        raise MappingError(f"{where}.{name}: must {form}; {' and '.join(missing)} not used")
    return query


def _children(where: str, raw: Any) -> tuple[ChildSpec, ...]:
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}.children: must be a table of child streams")
    children = []
    for name, child in raw.items():
        place = f"{where}.children.{name}"
        if not isinstance(child, Mapping):
            raise MappingError(f"{place}: must be a table")
        parent = _required(place, child, "parent", str)
        query = text(_required(place, child, "query", str))
        query = query.bindparams(bindparam("ids", expanding=True))
        children.append(ChildSpec(name=name, parent=parent, query=query))
    return tuple(children)
