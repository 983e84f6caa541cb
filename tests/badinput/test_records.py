"""Bad local records through the real pull path: SQLite local system → SqlSource → mapping →
validation → state store. Each is a dead letter naming its record and field; the good
records in the same pages are queued exactly as the source holds them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy.exc
from structlog.testing import capture_logs

from connector.app import App, OperatorActions
from connector.core.records import Kind, State
from connector.demo.schema import COLUMNS
from connector.errors import MappingError, SourceError, StoreError
from connector.jobs.pull import PullJob
from connector.jobs.resync import GONE, resync
from connector.ports import OutboxItem, Selection, Settlement, Source
from tests.badinput.corpus import (
    AGENCY,
    GOOD_DOSSIER,
    GOOD_STEP,
    LONG,
    Corpus,
    renumber,
)
from tests.badinput.support import source_fields, step_fields


def _by_ref(app: App, *states: State) -> dict[str, OutboxItem]:
    return {i.source_ref: i for i in app.store.items(states=list(states), limit=10_000)}


def test_every_bad_record_is_a_dead_letter_naming_its_field(app: App, corpus: Corpus) -> None:
    """Each record of the corpus is refused with a reason naming the field and the rule, and
    nothing but the corpus's bad records is refused."""
    report = app.pull_job().run()
    assert report.records == len(corpus.dossiers) + len(corpus.steps)
    dead = _by_ref(app, State.INVALID)
    assert set(dead) == corpus.bad_refs()
    for ref, case in corpus.bad.items():
        reason = dead[ref].last_message
        assert f"{case.field}: " in reason and case.words in reason, (case.name, reason)
    assert all(len(item.last_message) < 1000 for item in dead.values()), "a reason is too long"


def test_good_records_in_the_same_pages_are_queued_unaltered(app: App, corpus: Corpus) -> None:
    """Every good dossier and step is queued, with the source's values exactly."""
    app.pull_job().run()
    queued = _by_ref(app, State.PENDING)
    assert set(queued) == {*corpus.good_dossiers(), *corpus.good_steps()}
    for ref, row in corpus.good_dossiers().items():
        payload = queued[ref].payload
        assert {k: payload.get(k) for k in source_fields(row)} == source_fields(row), ref
    for ref, row in corpus.good_steps().items():
        payload = queued[ref].payload
        assert {k: payload.get(k) for k in step_fields(row)} == step_fields(row), ref
    cursors = app.store.cursors()
    assert set(cursors) == {"dossiers", "steps"}, "a stream stopped before its end"


def test_long_text_is_refused_not_truncated(app: App, corpus: Corpus) -> None:
    """A 100 KB free text is kept whole in the dead letter, and a 2,000-character one (the
    limit) is queued whole."""
    app.pull_job().run()
    dead = _by_ref(app, State.INVALID)
    (long_ref,) = [r for r, c in corpus.bad.items() if c.name == "100 KB summary"]
    assert len(dead[long_ref].payload["TrichYeuHoSo"]) == LONG
    queued = _by_ref(app, State.PENDING).values()
    assert any(len(i.payload.get("TrichYeuHoSo", "")) == 2000 for i in queued)


def test_personal_values_stay_out_of_reasons(app: App, corpus: Corpus) -> None:
    """A refused name, ID or phone appears in its reason only as a fingerprint."""
    app.pull_job().run()
    reasons = " ".join(i.last_message for i in _by_ref(app, State.INVALID).values())
    for words in ("Nguyễn", "Nguyen", "Trần", "001090012345", "0912345678"):
        assert words not in reasons
    assert "«masked:" in reasons


def test_duplicate_dossier_number_names_both_records(app: App, corpus: Corpus) -> None:
    """The second local record with a number already used is refused naming both records;
    the first is queued with its own content."""
    app.pull_job().run()
    owner, duplicate = corpus.duplicate
    reason = _by_ref(app, State.INVALID)[duplicate].last_message
    assert owner in reason and duplicate in reason and reason.startswith("MaHoSo: ")
    queued = _by_ref(app, State.PENDING)
    assert queued[owner].key == corpus.dossiers[owner]["dossier_no"]
    assert duplicate not in queued


def test_step_of_the_duplicate_is_refused_not_added_to_the_owners_dossier(
    app: App, corpus: Corpus
) -> None:
    """The duplicate's step carries the owner's number; it is refused naming both records
    rather than queued for the owner's dossier."""
    app.pull_job().run()
    owner, duplicate = corpus.duplicate
    reason = _by_ref(app, State.INVALID)[corpus.duplicate_step].last_message
    assert reason.startswith(f"MaHoSo: dossier number belongs to {owner}: "), reason
    assert f"dossier record {duplicate} has the same number" in reason
    assert corpus.duplicate_step not in _by_ref(app, State.PENDING)


def test_changed_dossier_number_is_refused_and_the_first_stays(app: App, corpus: Corpus) -> None:
    """A record renumbered after it was queued is refused saying from what to what, and its
    queued version under the first number stays as it was."""
    app.pull_job().run()
    first = corpus.dossiers[corpus.renumbered]["dossier_no"]
    renumber(corpus, f"{first[:-4]}9999")
    report = app.pull_job().run()
    assert (report.records, report.invalid) == (1, 1)
    reason = _by_ref(app, State.INVALID)[corpus.renumbered].last_message
    assert f"changed from {first!r} to '{first[:-4]}9999'" in reason
    (kept,) = [i for i in app.store.items(kind=Kind.HEADER, limit=10_000) if i.key == first]
    assert kept.state is State.PENDING and kept.payload["TrangThaiHoSo"] == "2"


def _local(corpus: Corpus, sql: str, *params: object) -> None:
    conn = sqlite3.connect(corpus.db, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def _set_number(corpus: Corpus, record: int, number: str, *, second: int) -> None:
    """The local system gives dossier `record` the number `number`, `second` s past 0:00."""
    stamp = f"2026-11-28T00:00:{second:02d}.000000Z"
    _local(
        corpus,
        "UPDATE dossiers SET dossier_no = ?, modified_at = ? WHERE id = ?",
        number,
        stamp,
        record,
    )


def _step_under_new_number(app: App, corpus: Corpus) -> tuple[str, int, OutboxItem]:
    """Renumber the corpus's renumbered record and add it a step: the step is refused,
    since the record was queued under its first number. Returns that number, the record's
    id and the step's dead letter."""
    app.pull_job().run()
    first = corpus.dossiers[corpus.renumbered]["dossier_no"]
    record = int(corpus.renumbered.split(":")[1])
    renumber(corpus, f"{first[:-4]}9999")
    _local(
        corpus,
        "INSERT INTO steps (id, dossier_id, actor, action_at, content, status, modified_at)"
        " VALUES (9000, ?, 'Lê Văn C', '2026-11-28 10:00:00', 'Thẩm định', 'processing', ?)",
        record,
        "2026-11-28T00:00:01.000000Z",
    )
    app.pull_job().run()
    step = _by_ref(app, State.INVALID)["steps:9000"]
    assert f"dossier record {corpus.renumbered} was queued as {first!r}" in step.last_message
    return first, record, step


def test_steps_refused_for_their_record_s_number_go_once_the_number_is_fixed(
    app: App, corpus: Corpus
) -> None:
    """A step added under a record's new number is refused (the portal's MaHoSo never
    changes). When the local system gives the record its number back, only the dossier's
    row changes, yet the next pull reads the record's steps again by that number: the step
    is queued under it and its dead letter retires, with no operator action."""
    first, record, _ = _step_under_new_number(app, corpus)
    _set_number(corpus, record, first, second=2)
    app.pull_job().run()
    dead = _by_ref(app, State.INVALID)
    assert corpus.renumbered not in dead, "the header was fixed"
    assert "steps:9000" not in dead, "the step was read again"
    assert _by_ref(app, State.PENDING)["steps:9000"].dossier == first


def _add(corpus: Corpus, table: str, row: dict[str, Any]) -> None:
    columns = [c for c in COLUMNS[table] if c in row]
    marks = ", ".join("?" for _ in columns)
    _local(corpus, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", *row.values())


@pytest.mark.parametrize("same_moment", [False, True], ids=["apart", "same moment"])
def test_two_records_on_one_number_before_either_is_valid(
    app: App, corpus: Corpus, same_moment: bool
) -> None:
    """Two local records share a number while neither header is valid yet: their steps
    wait, as nobody can tell whose the number is. The first record fixed claims it, and
    the other record's waiting step becomes a dead letter naming both, instead of being
    added to the claimer's dossier. When that record gets a number of its own, the next
    pull queues its header and reads its step again under the new number. A dossier
    submitted twice gives both records a step at the same moment with the same status,
    one step for the portal: each record's is still decided on its own."""
    app.pull_job().run()
    shared, own = f"{AGENCY}-261127-8001", f"{AGENCY}-261127-8003"
    for n, stamp in ((8001, "02"), (8002, "03")):
        changed = f"2026-11-28T00:00:{stamp}.000000Z"
        dossier = {**GOOD_DOSSIER, "procedure_code": None, "modified_at": changed}
        _add(corpus, "dossiers", {"id": n, "dossier_no": shared, **dossier})
        at = f"2026-11-27 10:00:{'02' if same_moment else stamp}"
        step = {**GOOD_STEP, "action_at": at, "modified_at": changed}
        _add(corpus, "steps", {"id": n, "dossier_id": n, **step})
    app.pull_job().run()
    pending = _by_ref(app, State.PENDING)
    assert {"steps:8001", "steps:8002"} <= set(pending), "both steps wait"
    fix = "UPDATE dossiers SET procedure_code = 'HN-HT-01', dossier_no = ?, modified_at = ?"
    _local(corpus, f"{fix} WHERE id = 8001", shared, "2026-11-28T00:00:04.000000Z")
    app.pull_job().run()
    reason = _by_ref(app, State.INVALID)["steps:8002"].last_message
    assert reason.startswith(
        "MaHoSo: dossier number belongs to dossiers:8001: "
        "this step's dossier record dossiers:8002 has the same number"
    ), reason
    assert _by_ref(app, State.PENDING)["steps:8001"].dossier == shared
    assert "dossiers:8002" in _by_ref(app, State.INVALID), "the other record is still refused"
    _local(corpus, f"{fix} WHERE id = 8002", own, "2026-11-28T00:00:05.000000Z")
    app.pull_job().run()
    dead, pending = _by_ref(app, State.INVALID), _by_ref(app, State.PENDING)
    assert "dossiers:8002" not in dead and "steps:8002" not in dead
    assert (pending["dossiers:8002"].dossier, pending["steps:8002"].dossier) == (own, own)


class _NoSelect:
    """The local system as the app reads it, whose `select` fails with `error`."""

    def __init__(self, source: Source, error: Exception) -> None:
        self._source = source
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def select(self, stream: str, selection: Selection, batch: int) -> Any:
        raise self._error


def test_steps_to_read_again_outlive_a_stop_before_they_are_read(
    app: App, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dossier to read again is kept in the store with the header's fix: if the pull
    stops before reading it (a kill, a store error), the next run reads it."""
    first, record, _ = _step_under_new_number(app, corpus)
    _set_number(corpus, record, first, second=2)
    with monkeypatch.context() as patch:
        patch.setattr(PullJob, "read_steps_again", lambda self: None)
        app.pull_job().run()
    assert app.store.rereads() == [first]
    assert "steps:9000" in _by_ref(app, State.INVALID)
    app.pull_job().run()
    assert app.store.rereads() == []
    assert _by_ref(app, State.PENDING)["steps:9000"].dossier == first


def test_fixed_number_without_select_leaves_the_dead_letter_and_says_so(
    app: App, corpus: Corpus
) -> None:
    """When the steps cannot be read again by number (no `select`), the pull goes on and
    says which dossier to resync; the refused step stays a dead letter."""
    first, record, step = _step_under_new_number(app, corpus)
    _set_number(corpus, record, first, second=2)
    app.__dict__["source"] = _NoSelect(app.source, MappingError("streams.steps: no 'select'"))
    with capture_logs() as logs:
        app.pull_job().run()
    assert app.health.pull.state == "ok"
    assert app.store.rereads() == [], "no use trying again"
    assert _by_ref(app, State.INVALID)["steps:9000"].id == step.id
    (warning,) = [e for e in logs if e["event"].startswith("steps of a fixed dossier")]
    assert (warning["dossier"], warning["stream"]) == (first, "steps")


def test_steps_to_read_again_wait_while_the_local_system_is_down(app: App, corpus: Corpus) -> None:
    """When the local system cannot be read, pulling pauses as for any source failure and
    the dossier stays listed; the first run after it comes back reads the steps."""
    first, record, _ = _step_under_new_number(app, corpus)
    _set_number(corpus, record, first, second=2)
    source = app.source
    app.__dict__["source"] = _NoSelect(source, SourceError("stream steps: unavailable"))
    app.pull_job().run()
    assert app.health.pull.state == "paused"
    assert app.store.rereads() == [first]
    app.__dict__["source"] = source
    app.pull_job().run()
    assert app.health.pull.state == "ok"
    assert _by_ref(app, State.PENDING)["steps:9000"].dossier == first


def test_retry_keeps_a_dead_letter_whose_record_left_its_number(app: App, corpus: Corpus) -> None:
    """A refused step is re-read by the dossier number of its dead letter. When the record
    is no longer under it (renumbered once more), the retry does not retire the dead letter
    it cannot read again: it stays, the command says why and exits 1; a resync of the
    number the record holds now reads the step again."""
    first, record, step = _step_under_new_number(app, corpus)
    third = f"{first[:-4]}8888"
    _set_number(corpus, record, third, second=2)
    app.pull_job().run()
    report = OperatorActions(app, origin="cli").retry([step.id], all_dead=False)
    assert report["results"] == [{"id": step.id, "action": GONE}]
    assert _by_ref(app, State.INVALID)["steps:9000"].id == step.id, "kept"
    resync(
        source=app.source,
        mapping=app.mapping,
        store=app.store,
        clock=app.clock,
        selection=Selection(dossier=third),
        force=False,
    )
    reason = _by_ref(app, State.INVALID)["steps:9000"].last_message
    assert f"was queued as {first!r}" in reason and repr(third) in reason, reason


def test_a_record_renumbered_before_the_portal_took_it_goes_under_its_new_number(
    app: App, corpus: Corpus
) -> None:
    """What `outbox retry` advises for a refused record renumbered since: the portal never
    held its first number, so once that number's dead letters are dismissed, a resync of
    the new number queues the record and its step under it."""
    app.pull_job().run()
    first = corpus.dossiers[corpus.renumbered]["dossier_no"]
    now = app.clock.now()
    (header,) = [i for i in app.store.claim(Kind.HEADER, 1000, now=now) if i.key == first]
    refused = Settlement(item_id=header.id, state=State.REJECTED, code="E77", message="no")
    app.store.settle([refused], now=now)
    renumber(corpus, f"{first[:-4]}9999")
    app.pull_job().run()
    actions = OperatorActions(app, origin="cli")
    assert actions.retry([header.id], all_dead=False)["results"] == [
        {"id": header.id, "action": GONE}
    ]
    again = Selection(dossier=f"{first[:-4]}9999")
    kw: dict[str, Any] = {"mapping": app.mapping, "store": app.store, "clock": app.clock}
    before = resync(source=app.source, selection=again, force=False, **kw)
    assert before.queued["dossiers"] == 0, "the record still holds its first number"
    assert actions.dismiss([header.id], code=None, reason="renumbered")["dismissed"] == [header.id]
    after = resync(source=app.source, selection=again, force=False, **kw)
    assert after.queued == {"dossiers": 1, "steps": 1}
    mine = [i for i in app.store.items(limit=10_000) if i.source_ref == corpus.renumbered]
    assert [i.state for i in mine if i.state is not State.SUPERSEDED] == [State.PENDING]
    record = int(corpus.renumbered.split(":")[1])
    (step,) = [ref for ref, row in corpus.steps.items() if row["dossier_id"] == record]
    rows = [i for i in app.store.items(kind=Kind.STEP, limit=10_000) if i.source_ref == step]
    live = [i for i in rows if i.state is not State.SUPERSEDED]
    assert [(i.dossier, i.state) for i in live] == [(f"{first[:-4]}9999", State.PENDING)]


def test_repulling_the_corpus_adds_no_dead_letters(app: App, corpus: Corpus) -> None:
    """Reading the same bad records again (a resync) does not pile up dead letters."""
    app.pull_job().run()
    before = len(_by_ref(app, State.INVALID))
    resync(
        source=app.source,
        mapping=app.mapping,
        store=app.store,
        clock=app.clock,
        selection=Selection(agency="STP"),
        dry_run=False,
    )
    rows = app.store.items(states=[State.INVALID], limit=10_000)
    assert len(rows) == before


@pytest.mark.parametrize(
    ("column", "value", "field", "words"),
    [
        ("applicant_name", ["Nguyễn", "An"], "ChuHoSo", "got list"),
        ("applicant_name", {"ho": "Nguyễn"}, "ChuHoSo", "got dict"),
        ("applicant_id", [1, 2], "MaDoiTuong", "not text or a number (list)"),
        ("status", {"code": 2}, "TrangThaiHoSo", "not text or a number (dict)"),
        ("received_at", 20261127, "NgayTiepNhan", "not a date or time (int)"),
        ("summary", "Hồ sơ\ud800", "TrichYeuHoSo", "lone surrogate"),
        ("phone", 10**30, "SoDienThoai", "not a phone number"),
        ("files", "not a list", "TaiLieuNop", "must be a list of records"),
    ],
)
def test_values_no_sql_source_returns_are_refused_too(
    app: App, corpus: Corpus, column: str, value: object, field: str, words: str
) -> None:
    """Lists, dicts and other values a non-SQL source might hand over are dead letters with
    a reason, stored without breaking the page they arrive in."""
    good_ref = next(iter(corpus.good_dossiers()))
    good = {**corpus.dossiers[good_ref], "procedure_name": "Đăng ký khai sinh"}
    good |= {"domain_code": "G09-HT", "domain_name": "Hộ tịch", "agency_name": "Sở Tư pháp"}
    bad = {**good, "id": 900, "dossier_no": "000.00.11.H26-261127-0900", column: value}
    mapped = [app.mapping.map("dossiers", r) for r in (bad, good)]
    result = app.store.ingest("dossiers", mapped, None, now=app.clock.now())
    assert (result.queued, result.invalid) == (1, 1)
    (item,) = app.store.items(states=[State.INVALID])
    assert item.source_ref == "dossiers:900"
    assert f"{field}: " in item.last_message and words in item.last_message, item.last_message


class _CountingSelects:
    """The local system as the app reads it, counting `select` calls per stream."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self.selects: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def select(self, stream: str, selection: Selection, batch: int) -> Any:
        self.selects[stream] = self.selects.get(stream, 0) + 1
        return self._source.select(stream, selection, batch)


def test_a_retry_reads_its_dossier_once(app: App, corpus: Corpus) -> None:
    """Retrying a refused record reads its dossier from the local system once per stream,
    both to check the record is still under its number and to queue what it holds now;
    refused again, it says so with the new reason."""
    app.pull_job().run()
    dead = _by_ref(app, State.INVALID)
    item = next(i for ref, i in sorted(dead.items()) if i.dossier and ref.startswith("dossiers"))
    counting = _CountingSelects(app.source)
    app.__dict__["source"] = counting
    report = OperatorActions(app, origin="cli").retry([item.id], all_dead=False)
    assert counting.selects == {"dossiers": 1, "steps": 1}
    again = _by_ref(app, State.INVALID)[item.source_ref]
    assert again.id != item.id, "refused afresh"
    assert report["results"] == [
        {"id": item.id, "action": "still refused", "reason": again.last_message}
    ]


def test_the_status_gives_the_last_reconciliation_s_time_as_every_other(app: App) -> None:
    """ISO UTC, as the jobs' times, not epoch seconds."""
    at = datetime(2026, 11, 27, 4, 0, tzinfo=UTC).timestamp()
    app.health.reconcile_report = {"at": at, "checked": 3, "drift": {}, "examples": []}
    report = app.snapshot()["reconcile"]["report"]
    assert report == {"at": "2026-11-27T04:00:00Z", "checked": 3, "drift": {}, "examples": []}
    assert app.health.reconcile_report["at"] == at, "the job's own report is left alone"


def test_the_status_without_a_daemon_still_comes_when_the_store_cannot_say(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jobs a stopped daemon saved are read from the store; a store that cannot be read
    leaves them out, and the status still comes, saying why its figures are missing."""
    app.save_jobs()
    saved = app.offline_snapshot()
    assert saved["daemon"]["running"] is False and saved["daemon"]["jobs_saved_at"]

    def unreadable() -> None:
        raise StoreError("state store meta read failed: disk I/O error")

    monkeypatch.setattr(app.store, "meta", unreadable)
    monkeypatch.setattr(app.store, "counts", unreadable)
    app.figures_changed()  # the figures are shared between reads for a while
    offline = app.offline_snapshot()
    assert offline["daemon"] == {"running": False}
    assert offline["state_store"].startswith("unavailable: ")


def test_a_retry_cut_short_leaves_its_dead_letter_in_place(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead letter is retired in the transaction that queues its record again: when
    that transaction fails (a full disk here, a kill alike), the dead letter is still
    there to retry, not retired with nothing queued in its place."""
    app.pull_job().run()
    dead = _by_ref(app, State.INVALID)
    item = next(i for ref, i in sorted(dead.items()) if i.dossier and ref.startswith("dossiers"))

    def full_disk(*args: Any, **kwargs: Any) -> None:
        full = sqlite3.OperationalError("database or disk is full")
        raise sqlalchemy.exc.OperationalError("INSERT", {}, full)

    monkeypatch.setattr("connector.store.ingest.apply", full_disk)
    with pytest.raises(StoreError):
        OperatorActions(app, origin="cli").retry([item.id], all_dead=False)
    kept = _by_ref(app, State.INVALID).get(item.source_ref)
    assert kept is not None and kept.id == item.id, "retired with nothing queued in its place"
