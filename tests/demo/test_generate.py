"""The generated demo database: shape, realism and the deliberately invalid records."""

from __future__ import annotations

import csv
import re
import sqlite3
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from connector.demo.generate import DemoSummary, init_demo
from connector.demo.lifecycle import STATUSES
from connector.demo.schema import stamp, vn_now
from tests.demo.conftest import CROSSWALKS, NOW

NUMBER = re.compile(r"^(\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2})-(\d{6})-(\d{4})$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
VALID = "procedure_code != 'HN-XX-99' AND due_at IS NOT NULL"


def _crosswalk(name: str, column: str) -> dict[str, dict[str, str]]:
    with (CROSSWALKS / name).open(encoding="utf-8") as handle:
        return {row[column]: row for row in csv.DictReader(handle)}


def _one(db: sqlite3.Connection, sql: str) -> Any:
    return db.execute(sql).fetchone()[0]


def test_summary_counts_match_the_database(demo: DemoSummary, db: sqlite3.Connection) -> None:
    """The summary reports what the tables actually hold."""
    assert demo.dossiers == 3000 == _one(db, "SELECT count(*) FROM dossiers")
    assert demo.steps == _one(db, "SELECT count(*) FROM steps")
    assert demo.steps > 3 * demo.dossiers
    assert sum(demo.by_status.values()) == demo.dossiers


def test_invalid_records_are_about_half_a_percent(db: sqlite3.Connection) -> None:
    """One dossier in 200 is invalid, split between an unlisted procedure and no due date."""
    unlisted = _one(db, "SELECT count(*) FROM dossiers WHERE procedure_code = 'HN-XX-99'")
    no_due = _one(db, "SELECT count(*) FROM dossiers WHERE due_at IS NULL")
    assert (unlisted, no_due) == (8, 7)
    assert "HN-XX-99" not in _crosswalk("procedures.csv", "local_code")
    assert _one(db, "SELECT count(*) FROM procedures WHERE local_code = 'HN-XX-99'") == 1


def test_on_time_ratio_is_close_to_target(demo: DemoSummary, db: sqlite3.Connection) -> None:
    """About 99.8 % of finished dossiers finish by their due date, but not all of them."""
    late = _one(db, "SELECT count(*) FROM dossiers WHERE finished_at > due_at")
    assert late > 0
    assert 0.995 <= demo.on_time_ratio < 1.0


def test_valid_dossiers_translate_through_the_crosswalks(db: sqlite3.Connection) -> None:
    """Every valid dossier's procedure and agency are in the CSVs, and its number is built
    from the agency's QCVN code, its reception day and a 4-digit sequence."""
    procedures = _crosswalk("procedures.csv", "local_code")
    agencies = _crosswalk("agencies.csv", "local_code")
    rows = db.execute(
        f"SELECT procedure_code, agency_code, dossier_no, received_at FROM dossiers WHERE {VALID}"
    ).fetchall()
    assert len(rows) == 2985
    for procedure, agency, number, received in rows:
        assert procedure in procedures and agency in agencies
        match = NUMBER.match(number)
        assert match is not None
        assert match[1] == agencies[agency]["qcvn_code"]
        assert match[2] == received[2:10].replace("-", "")


def test_valid_dossiers_carry_what_the_portal_requires(db: sqlite3.Connection) -> None:
    """Reception, due date, phone and e-mail are set on every valid dossier."""
    missing = _one(
        db,
        f"SELECT count(*) FROM dossiers WHERE {VALID} AND (received_at IS NULL OR "
        "phone IS NULL OR email IS NULL OR summary IS NULL OR email NOT LIKE '%_@_%')",
    )
    assert missing == 0
    phones = [r[0] for r in db.execute("SELECT phone FROM dossiers")]
    assert all(re.fullmatch(r"0[398]\d{8}", p) for p in phones)
    emails = [r[0] for r in db.execute("SELECT email FROM dossiers")]
    assert all(e.isascii() for e in emails)


def test_some_texts_are_stored_decomposed(db: sqlite3.Connection) -> None:
    """About one name in ten (and some step actors) arrive in NFD form."""
    names = [r[0] for r in db.execute("SELECT applicant_name FROM dossiers")]
    nfd = sum(unicodedata.normalize("NFC", n) != n for n in names)
    assert 0.05 * len(names) < nfd < 0.15 * len(names)
    actors = [r[0] for r in db.execute("SELECT actor FROM steps")]
    assert any(unicodedata.normalize("NFC", a) != a for a in actors)


def test_steps_move_forward_in_time(db: sqlite3.Connection) -> None:
    """Within each dossier, every step happens after the one before it."""
    trails: dict[int, list[tuple[str, str]]] = {}
    for dossier, at, modified in db.execute(
        "SELECT dossier_id, action_at, modified_at FROM steps ORDER BY id"
    ):
        trails.setdefault(dossier, []).append((at, modified))
    assert len(trails) == 3000
    for trail in trails.values():
        assert [t[0] for t in trail] == sorted({t[0] for t in trail})
        assert [t[1] for t in trail] == sorted({t[1] for t in trail})


def test_dossier_status_is_its_last_step_status(db: sqlite3.Connection) -> None:
    """A dossier's status and modified_at come from its latest step."""
    mismatched = _one(
        db,
        "SELECT count(*) FROM dossiers d JOIN steps s ON s.id ="
        " (SELECT max(id) FROM steps WHERE dossier_id = d.id)"
        " WHERE s.status != d.status OR s.modified_at > d.modified_at",
    )
    assert mismatched == 0


def test_lifecycle_dates_follow_the_status(db: sqlite3.Connection) -> None:
    """Finished dossiers have finished_at, returned ones returned_at and a result."""
    finished = "status IN ('done','returned','refused','withdrawn','stopped')"
    broken = (
        f"({finished}) != (finished_at IS NOT NULL)",
        "(status = 'returned') != (returned_at IS NOT NULL)",
        "status IN ('done','returned') AND NOT EXISTS"
        " (SELECT 1 FROM results r WHERE r.dossier_id = d.id)",
    )
    for condition in broken:
        assert _one(db, f"SELECT count(*) FROM dossiers d WHERE {condition}") == 0, condition


def test_lifecycle_mix_is_realistic(db: sqlite3.Connection) -> None:
    """Channels, fees, files and supplement rounds appear in about the asked proportions."""
    channels = dict(db.execute("SELECT channel, count(*) FROM dossiers GROUP BY channel"))
    assert 1650 < channels["online"] < 1950 and 900 < channels["counter"] < 1200
    assert 90 < channels["post"] < 210
    assert 1050 < _one(db, "SELECT count(DISTINCT dossier_id) FROM fees") < 1350
    assert 60 < _one(db, "SELECT count(DISTINCT dossier_id) FROM supplements") < 240
    files = dict(db.execute("SELECT n, count(*) FROM (SELECT count(*) n FROM dossier_files"
                            " GROUP BY dossier_id) GROUP BY n"))  # fmt: skip
    assert set(files) == {1, 2, 3, 4} and sum(files.values()) == 3000


def test_times_are_in_the_past_and_stamps_fixed_width(db: sqlite3.Connection) -> None:
    """No business time is after 'now'; modified_at is UTC with microseconds and a Z."""
    local_now = vn_now(NOW).strftime("%Y-%m-%d %H:%M:%S")
    latest = _one(db, "SELECT max(max(coalesce(returned_at, '')), max(received_at)) FROM dossiers")
    assert str(latest) <= local_now
    assert str(_one(db, "SELECT max(action_at) FROM steps")) <= local_now
    stamps = [r[0] for r in db.execute("SELECT modified_at FROM dossiers UNION ALL "
                                       "SELECT modified_at FROM steps")]  # fmt: skip
    assert all(STAMP.match(s) for s in stamps)
    assert max(stamps) <= stamp(vn_now(NOW).replace(microsecond=999_999))


def _dump(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("SELECT * FROM dossiers ORDER BY id").fetchall()
            + conn.execute("SELECT * FROM steps ORDER BY id").fetchall()
        )
    finally:
        conn.close()


def test_same_seed_gives_the_same_database(tmp_path: Path) -> None:
    """Generation is deterministic for a seed and a 'now'; another seed differs."""
    for name, seed in (("a.db", 3), ("b.db", 3), ("c.db", 4)):
        init_demo(tmp_path / name, CROSSWALKS, dossiers=300, seed=seed, now=NOW)
    assert _dump(tmp_path / "a.db") == _dump(tmp_path / "b.db")
    assert _dump(tmp_path / "a.db") != _dump(tmp_path / "c.db")


def test_existing_database_is_kept_unless_overwrite(tmp_path: Path) -> None:
    """An existing file is never replaced silently."""
    path = tmp_path / "x.db"
    init_demo(path, CROSSWALKS, dossiers=10, now=NOW)
    with pytest.raises(FileExistsError):
        init_demo(path, CROSSWALKS, dossiers=10, now=NOW)
    assert init_demo(path, CROSSWALKS, dossiers=20, now=NOW, overwrite=True).dossiers == 20


def test_journal_mode_is_wal(demo: DemoSummary, db: sqlite3.Connection) -> None:
    """The database stays in WAL mode so the connector can read while the demo writes."""
    assert _one(db, "PRAGMA journal_mode") == "wal"


def test_statuses_match_the_mapping_code_table() -> None:
    """The demo's local statuses are exactly the keys of the demo mapping's status codes."""
    with (CROSSWALKS.parent / "demo.toml").open("rb") as handle:
        codes = tomllib.load(handle)["codes"]["status"]
    assert list(codes) == list(STATUSES)
    assert [codes[s] for s in STATUSES] == [str(n) for n in range(1, 11)]
