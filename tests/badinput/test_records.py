"""Bad local records through the real pull path: SQLite local system → SqlSource → mapping →
validation → state store. Each is a dead letter naming its record and field; the good
records in the same pages are queued exactly as the source holds them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector import settings as settings_mod
from connector.app import App, OperatorActions
from connector.core.records import Kind, State
from connector.jobs.resync import GONE, resync
from connector.ports import OutboxItem, Selection
from tests.badinput.corpus import LONG, Corpus, build_corpus, renumber
from tests.badinput.support import source_fields, step_fields, write_config


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return build_corpus(tmp_path)


@pytest.fixture
def app(tmp_path: Path, corpus: Corpus) -> Iterator[App]:
    opened = App(settings_mod.load(write_config(tmp_path / "config.toml", corpus)))
    try:
        yield opened
    finally:
        opened.close()


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


def test_step_of_a_renumbered_record_waits_as_a_dead_letter_until_resynced(
    app: App, corpus: Corpus
) -> None:
    """A step added under a record's new number is refused (the portal's MaHoSo never
    changes). Once the local system gives the record its number back, the step's dead
    letter is not retired by a retry that cannot find the record under the number it was
    refused with: it stays, the command says why and exits 1, and a resync of the record's
    number queues the step and retires the dead letter."""
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
    _local(
        corpus,
        "UPDATE dossiers SET dossier_no = ?, modified_at = ? WHERE id = ?",
        first,
        "2026-11-28T00:00:02.000000Z",
        record,
    )
    app.pull_job().run()
    assert corpus.renumbered not in _by_ref(app, State.INVALID), "the header was fixed"
    report = OperatorActions(app, origin="cli").retry([step.id], all_dead=False)
    assert report["results"] == [{"id": step.id, "action": GONE}]
    assert _by_ref(app, State.INVALID)["steps:9000"].id == step.id, "kept"
    resync(
        source=app.source,
        mapping=app.mapping,
        store=app.store,
        clock=app.clock,
        selection=Selection(dossier=first),
        force=False,
    )
    assert "steps:9000" not in _by_ref(app, State.INVALID)
    assert _by_ref(app, State.PENDING)["steps:9000"].dossier == first


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
