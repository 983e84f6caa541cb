"""SqlSource against a generated demo database, driven by the real demo mapping."""

from __future__ import annotations

import copy
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from connector.core.records import SourceRecord
from connector.errors import ConfigError, MappingError, SourceError
from connector.ports import Page, Selection
from connector.sources.sql import SqlSource


def _sql(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _pull_all(source: SqlSource, stream: str, limit: int) -> tuple[list[SourceRecord], int]:
    """Every record of a stream, page by page; also how many non-empty pages it took."""
    records: list[SourceRecord] = []
    cursor = None
    pages = 0
    while True:
        page = source.pull(stream, cursor, limit)
        if not page.records:
            assert page.cursor is None
            return records, pages
        assert len(page.records) <= limit
        records.extend(page.records)
        cursor = page.cursor
        pages += 1


def test_streams_in_file_order(source: SqlSource) -> None:
    """Stream names come back in the order the mapping file lists them."""
    assert list(source.streams()) == ["dossiers", "steps"]


def test_pull_pages_through_every_dossier_once(source: SqlSource) -> None:
    """Paging by (modified_at, id) returns each dossier exactly once, in cursor order."""
    records, pages = _pull_all(source, "dossiers", 7)
    ids = [r["id"] for r in records]
    assert sorted(ids) == list(range(1, 201))
    assert pages == 29
    keys = [(r["modified_at"], r["id"]) for r in records]
    assert keys == sorted(keys)


def test_pull_survives_many_rows_sharing_a_modified_at(source: SqlSource, db_path: Path) -> None:
    """Ties on modified_at span several pages without losing or repeating a row."""
    _sql(
        db_path, "UPDATE dossiers SET modified_at = '2026-01-15T00:00:00.000000Z' WHERE id % 3 = 0"
    )
    records, _ = _pull_all(source, "dossiers", 5)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 200
    tied = [r["id"] for r in records if r["modified_at"] == "2026-01-15T00:00:00.000000Z"]
    assert tied == sorted(tied) and len(tied) == 66


def test_pull_cursor_is_the_last_record(source: SqlSource) -> None:
    """The page cursor holds the cursor columns of its last record, and resumes after it."""
    first = source.pull("dossiers", None, 10)
    last = first.records[-1]
    assert first.cursor == (last["modified_at"], last["id"])
    second = source.pull("dossiers", first.cursor, 10)
    assert second.records[0]["id"] not in {r["id"] for r in first.records}
    assert second.records[0]["modified_at"] >= last["modified_at"]


def test_pull_after_the_end_is_empty(source: SqlSource) -> None:
    """Past the newest change a pull returns no records and no cursor."""
    assert source.pull("dossiers", ("9999", 0), 10) == Page(records=[], cursor=None)


def test_children_are_attached(source: SqlSource, db_path: Path) -> None:
    """Each dossier carries its files, fees, supplements and results, [] when it has none."""
    records, _ = _pull_all(source, "dossiers", 50)
    counts = dict(_sql(db_path, "SELECT dossier_id, count(*) FROM dossier_files GROUP BY 1"))
    fees = dict(_sql(db_path, "SELECT dossier_id, count(*) FROM fees GROUP BY 1"))
    for record in records:
        assert len(record["files"]) == counts[record["id"]]
        assert len(record["fees"]) == fees.get(record["id"], 0)
        assert all(f["dossier_id"] == record["id"] for f in record["files"])
        assert isinstance(record["supplements"], list) and isinstance(record["results"], list)
    assert any(r["results"] for r in records) and any(not r["fees"] for r in records)


def test_pull_steps_stream(source: SqlSource, db_path: Path) -> None:
    """The steps stream pages through every step, joined to its dossier number."""
    records, _ = _pull_all(source, "steps", 97)
    assert len(records) == _sql(db_path, "SELECT count(*) FROM steps")[0][0]
    assert all(r["dossier_no"] for r in records)


def _select(source: SqlSource, selection: Selection, batch: int = 1000) -> list[SourceRecord]:
    return [r for chunk in source.select("dossiers", selection, batch) for r in chunk]


def test_select_one_dossier(source: SqlSource, db_path: Path) -> None:
    """Selecting by dossier number returns that dossier with its children."""
    (number,) = _sql(db_path, "SELECT dossier_no FROM dossiers WHERE id = 42")[0]
    (record,) = _select(source, Selection(dossier=number))
    assert record["id"] == 42 and "files" in record


def test_select_by_agency_and_procedure(source: SqlSource, db_path: Path) -> None:
    """Agency and procedure filters match the database's own counts."""
    agency, procedure = _sql(db_path, "SELECT agency_code, procedure_code FROM dossiers LIMIT 1")[0]
    by_agency = _select(source, Selection(agency=agency))
    expected = _sql(db_path, "SELECT count(*) FROM dossiers WHERE agency_code = ?", agency)
    assert len(by_agency) == expected[0][0] > 0
    assert {r["agency_code"] for r in by_agency} == {agency}
    both = _select(source, Selection(agency=agency, procedure=procedure))
    assert both and {r["procedure_code"] for r in both} == {procedure}


def test_select_by_time_window(source: SqlSource, db_path: Path) -> None:
    """since/until (aware times converted to local time) select on reception time."""
    since = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)  # 07:00 in Hà Nội
    until = datetime(2026, 2, 10, 0, 0, tzinfo=UTC)
    chosen = _select(source, Selection(since=since, until=until))
    expected = _sql(
        db_path,
        "SELECT id FROM dossiers WHERE received_at >= '2026-02-01 07:00:00'"
        " AND received_at < '2026-02-10 07:00:00' ORDER BY id",
    )
    assert [r["id"] for r in chosen] == [e[0] for e in expected]
    assert 0 < len(chosen) < 200


def test_select_by_when_records_changed(source: SqlSource, db_path: Path) -> None:
    """changed_since/changed_until select on the change stamp, written in the stream's
    `changed_time_format` and `changed_timezone` (the demo's: ISO 8601 in UTC); a naive
    time is Hà Nội's wall clock. Each stream selects its own changed records."""
    stamp = "2026-03-05T02:00:00.000000Z"  # 09:00 in Hà Nội
    _sql(db_path, "UPDATE dossiers SET modified_at = ? WHERE id IN (7, 9)", stamp)
    _sql(db_path, "UPDATE steps SET modified_at = ? WHERE id IN (3, 4, 5)", stamp)
    window = Selection(
        changed_since=datetime(2026, 3, 5, 9, 0), changed_until=datetime(2026, 3, 5, 9, 1)
    )
    assert [r["id"] for r in _select(source, window)] == [7, 9]
    steps = [r["id"] for chunk in source.select("steps", window, 100) for r in chunk]
    assert steps == [3, 4, 5]
    utc = Selection(changed_since=datetime(2026, 3, 5, 2, 0, 0, 1, tzinfo=UTC))
    assert _select(source, utc) == []  # after the stamp, to the microsecond


def _statements(source: SqlSource) -> list[tuple[str, Any]]:
    """The statements `source` sends from now on, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    event.listen(source._engine, "before_cursor_execute", seen)
    return sent


def _plan(db_path: Path, statement: str, parameters: Any) -> str:
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return " | ".join(row[3] for row in rows)
    finally:
        conn.close()


@pytest.mark.parametrize("stream", ["dossiers", "steps"])
def test_one_dossier_is_read_by_select_dossier_through_indexes(
    streams: dict[str, Any], db_path: Path, stream: str
) -> None:
    """A retry, a re-read or a resync of one dossier runs the stream's `select_dossier`,
    which searches the dossier number's index: `select`'s `:dossier IS NULL OR …` makes
    the database read the whole table for it. Both give the same records, page by page."""
    (number,) = _sql(db_path, "SELECT dossier_no FROM dossiers WHERE id = 42")[0]
    general = copy.deepcopy(streams)
    for spec in general.values():
        del spec["select_dossier"]
    indexed = SqlSource(f"sqlite:///{db_path}", streams)
    scanning = SqlSource(f"sqlite:///{db_path}", general)
    try:
        sent = _statements(indexed)
        pages = list(indexed.select(stream, Selection(dossier=number), 2))
        expected = list(scanning.select(stream, Selection(dossier=number), 2))
    finally:
        indexed.close()
        scanning.close()
    assert pages == expected and sum(map(len, pages)) >= (1 if stream == "dossiers" else 2)
    statement, parameters = sent[0]
    assert "IS NULL" not in statement and parameters["dossier"] == number
    plan = _plan(db_path, statement, parameters)
    assert "SCAN" not in plan and "(dossier_no=?" in plan, plan


def test_a_narrower_selection_than_one_dossier_runs_select(
    source: SqlSource, db_path: Path
) -> None:
    """A dossier with an agency (or any other condition) is `select`'s, which binds them
    all: `select_dossier` would ignore the agency."""
    number, agency = _sql(db_path, "SELECT dossier_no, agency_code FROM dossiers WHERE id = 42")[0]
    sent = _statements(source)
    assert [r["id"] for r in _select(source, Selection(dossier=number, agency=agency))] == [42]
    assert _select(source, Selection(dossier=number, agency="elsewhere")) == []
    selects = [statement for statement, _ in sent if "LIMIT" in statement]  # not children
    assert len(selects) == 2 and all("IS NULL" in statement for statement in selects)


def test_select_dossier_alone_resyncs_one_dossier_only(
    streams: dict[str, Any], db_path: Path
) -> None:
    """A stream with `select_dossier` and no `select` can be resynced by dossier only."""
    only = copy.deepcopy(streams)
    del only["dossiers"]["select"]
    (number,) = _sql(db_path, "SELECT dossier_no FROM dossiers WHERE id = 42")[0]
    source = SqlSource(f"sqlite:///{db_path}", only)
    try:
        assert [r["id"] for r in _select(source, Selection(dossier=number))] == [42]
        with pytest.raises(MappingError, match=r"streams\.dossiers: 'select' is missing"):
            source.select("dossiers", Selection(agency="HN-01"), 10)
    finally:
        source.close()


@pytest.mark.parametrize(
    ("old", "missing"), [("d.dossier_no = :dossier AND ", ":dossier"), ("d.id > :after", ":after")]
)
def test_a_select_dossier_must_bind_the_dossier_and_page(
    streams: dict[str, Any], old: str, missing: str
) -> None:
    """Without :dossier it would read every dossier as if it were the one asked for."""
    broken = copy.deepcopy(streams)
    query = broken["dossiers"]["select_dossier"]
    assert old in query
    broken["dossiers"]["select_dossier"] = query.replace(
        old, "1=1 AND " if missing == ":dossier" else "1=1"
    )
    with pytest.raises(
        MappingError, match=rf"streams\.dossiers\.select_dossier: .*{missing} not used"
    ):
        SqlSource("sqlite://", broken)


def test_a_selection_the_query_cannot_narrow_is_refused_before_reading(
    streams: dict[str, Any], db_path: Path
) -> None:
    """A select without :agency would ignore it and read the whole table: a resync asking
    for an agency is refused, naming the stream and the parameter, before any read."""
    narrow = copy.deepcopy(streams)
    narrow["steps"]["select"] = narrow["steps"]["select"].replace(
        "AND (:agency IS NULL OR d.agency_code = :agency)", ""
    )
    source = SqlSource(f"sqlite:///{db_path}", narrow)
    try:
        assert list(source.select("steps", Selection(dossier="X"), 10)) == []
        with pytest.raises(MappingError, match=r"streams\.steps\.select does not use :agency"):
            source.select("steps", Selection(agency="HN-01"), 10)
    finally:
        source.close()


def test_a_resync_checks_every_stream_before_queuing_anything(
    streams: dict[str, Any], db_path: Path
) -> None:
    """The dossiers stream can be narrowed by agency, the steps stream cannot: the resync
    stops before the dossiers are read, so it never queues half of what was asked."""
    from connector.clock import SystemClock
    from connector.jobs.resync import resync
    from connector.mapfiles import load_mapping
    from tests.sources.conftest import MAPPINGS

    class Untouched:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the store was used: {name}")

    narrow = copy.deepcopy(streams)
    narrow["steps"]["select"] = narrow["steps"]["select"].replace(
        "AND (:agency IS NULL OR d.agency_code = :agency)", ""
    )
    (agency,) = _sql(db_path, "SELECT agency_code FROM dossiers LIMIT 1")[0]
    source = SqlSource(f"sqlite:///{db_path}", narrow)
    try:
        assert _select(source, Selection(agency=agency))  # there is something to queue
        with pytest.raises(MappingError, match=r"streams\.steps\.select does not use :agency"):
            resync(
                source=source,
                mapping=load_mapping(MAPPINGS / "demo.toml"),
                store=Untouched(),  # type: ignore[arg-type]
                clock=SystemClock(),
                selection=Selection(agency=agency),
            )
    finally:
        source.close()


def test_a_select_must_page_with_after_and_limit(streams: dict[str, Any]) -> None:
    """Without :after a resync would read its first page for ever: refused at load."""
    unpaged = copy.deepcopy(streams)
    unpaged["dossiers"]["select"] = unpaged["dossiers"]["select"].replace("d.id > :after", "1=1")
    with pytest.raises(MappingError, match=r"streams\.dossiers\.select: .*:after not used"):
        SqlSource("sqlite://", unpaged)


def test_select_batches(source: SqlSource) -> None:
    """Selections come in batches of at most `batch`, covering every match once."""
    batches = list(source.select("dossiers", Selection(), 30))
    assert [len(b) for b in batches] == [30] * 6 + [20]
    ids = [r["id"] for b in batches for r in b]
    assert ids == list(range(1, 201))
    steps = [r for b in source.select("steps", Selection(), 500) for r in b]
    assert len({r["id"] for r in steps}) == len(steps) > 200


def test_database_errors_become_source_errors(source: SqlSource, db_path: Path) -> None:
    """A failing query raises SourceError naming the stream and the driver's reason."""
    _sql(db_path, "DROP TABLE steps")
    with pytest.raises(SourceError, match=r"stream steps: OperationalError: no such table"):
        source.pull("steps", None, 10)


@pytest.mark.parametrize(
    ("key", "read"),
    [
        ("pull", lambda source, number: source.pull("dossiers", None, 10)),
        ("select", lambda source, number: list(source.select("dossiers", Selection(), 10))),
        (
            "select_dossier",
            lambda source, number: list(source.select("dossiers", Selection(dossier=number), 10)),
        ),
        ("children.files.query", lambda source, number: source.pull("dossiers", None, 10)),
    ],
)
def test_a_failing_query_is_named_by_its_key(
    streams: dict[str, Any], db_path: Path, key: str, read: Any
) -> None:
    """A stream runs up to a handful of queries, and the driver's reason ("no such column")
    does not say which one to fix: the error names its key in the mapping file."""
    broken = copy.deepcopy(streams)
    *parents, last = ["dossiers", *key.split(".")]
    table = broken
    for name in parents:
        table = table[name]
    assert "d.id" in table[last] or "dossier_id" in table[last]
    table[last] = table[last].replace("SELECT ", "SELECT no_such_column, ", 1)
    (number,) = _sql(db_path, "SELECT dossier_no FROM dossiers WHERE id = 42")[0]
    source = SqlSource(f"sqlite:///{db_path}", broken)
    try:
        with pytest.raises(SourceError) as caught:
            read(source, number)
    finally:
        source.close()
    assert str(caught.value).startswith("stream dossiers: OperationalError: no such column")
    assert str(caught.value).endswith(f"(in streams.dossiers.{key})")


def test_error_message_never_carries_the_password(tmp_path: Path, streams: dict[str, Any]) -> None:
    """A password given for SQLite is ignored and never appears in error messages."""
    source = SqlSource(f"sqlite:///{tmp_path / 'empty.db'}", streams, password="s3cr3t-pw")
    try:
        with pytest.raises(SourceError) as caught:
            source.pull("dossiers", None, 10)
    finally:
        source.close()
    assert "s3cr3t-pw" not in str(caught.value)
    assert "stream dossiers" in str(caught.value)


def test_bad_url_is_a_config_error(streams: dict[str, Any]) -> None:
    """An unknown database kind is refused at construction, without echoing the password."""
    with pytest.raises(ConfigError, match="source url") as caught:
        SqlSource("nosuchdb://reader@127.0.0.1/onestop", streams, password="s3cr3t-pw")
    assert "s3cr3t-pw" not in str(caught.value)


def _or_form(streams: dict[str, Any]) -> dict[str, Any]:
    """The demo's streams with the cursor condition spelt with OR, naming `:c0` twice."""
    changed = copy.deepcopy(streams)
    for name, alias in (("dossiers", "d"), ("steps", "s")):
        row_value = f"({alias}.modified_at, {alias}.id) > (:c0, :c1)"
        spelt_out = f"{alias}.modified_at > :c0 OR ({alias}.modified_at = :c0 AND {alias}.id > :c1)"
        assert row_value in changed[name]["pull"]
        changed[name]["pull"] = changed[name]["pull"].replace(row_value, spelt_out)
    return changed


@pytest.mark.parametrize("form", ["row-value", "or"])
@pytest.mark.parametrize("stream", ["dossiers", "steps"])
def test_pull_reads_the_cursor_index_from_the_cursor_on(
    db_path: Path, streams: dict[str, Any], stream: str, form: str
) -> None:
    """The pull query, as sent, searches the (modified_at, id) index from the cursor: a
    walk from its start would cost a pass over the whole table on every pull. The OR form
    names `:c0` twice, which SQLite only sees as one value when parameters go by name."""
    source = SqlSource(
        f"sqlite:///{db_path}", streams if form == "row-value" else _or_form(streams)
    )
    sent: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    event.listen(source._engine, "before_cursor_execute", seen)
    try:
        source.pull(stream, ("2026-03-01T00:00:00", 5), 10)
    finally:
        source.close()
    statement, parameters = sent[0]
    conn = sqlite3.connect(db_path)
    try:
        plan = " ".join(
            row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    finally:
        conn.close()
    assert "USING INDEX ix_" in plan and "(modified_at>?)" in plan, plan


def test_sqlite_busy_timeout_is_set(db_path: Path) -> None:
    """SQLite connections wait for the local system's writer instead of failing at once."""
    probe = {
        "probe": {
            "key": "t",
            "cursor": ["t"],
            "start": [0],
            "pull": "SELECT timeout AS t FROM pragma_busy_timeout() WHERE :c0 IS NOT NULL"
            " LIMIT :limit",
        }
    }
    source = SqlSource(f"sqlite:///{db_path}", probe)
    try:
        assert source.pull("probe", None, 1).records == [{"t": 10_000}]
    finally:
        source.close()


@pytest.mark.parametrize(
    ("path", "missing"),
    [
        (("dossiers", "pull"), "streams.dossiers: 'pull' is missing"),
        (("dossiers", "key"), "streams.dossiers: 'key' is missing"),
        (("steps", "cursor"), "streams.steps: 'cursor' is missing"),
        (("dossiers", "children", "fees", "parent"), "children.fees: 'parent' is missing"),
        (("dossiers", "children", "files", "query"), "children.files: 'query' is missing"),
    ],
)
def test_bad_streams_are_refused(
    streams: dict[str, Any], path: tuple[str, ...], missing: str
) -> None:
    """A stream without pull, key or cursor, or a child without parent or query, is refused
    at construction with a message naming where."""
    broken = copy.deepcopy(streams)
    table = broken
    for part in path[:-1]:
        table = table[part]
    del table[path[-1]]
    with pytest.raises(MappingError, match=missing.replace(".", r"\.")):
        SqlSource("sqlite://", broken)


def test_unknown_stream_is_a_mapping_error(source: SqlSource) -> None:
    """Asking for a stream the mapping does not define names it."""
    with pytest.raises(MappingError, match=r"streams\.cases"):
        source.pull("cases", None, 10)
