"""The checker itself: it must find every kind of violation, not only pass clean runs."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from connector.app import App
from tests.faults.checker import Bounds, Report, _order, assert_clean
from tests.faults.workload import Rig, close_app, drive

pytestmark = pytest.mark.e2e


def _edit(path: object, *statements: str) -> None:
    with closing(sqlite3.connect(str(path))) as db:
        for sql in statements:
            db.execute(sql)
        db.commit()


async def test_checker_reports_every_violation(rig: Rig) -> None:
    """A clean run passes; then a lost dossier, a double create, a step out of order, an ACK
    without a reply and a valid dead letter are each reported."""
    with rig.portal() as sandbox:
        app = App(rig.settings(sandbox.url))
        try:
            await drive(app, until=rig.drained, timeout=60)
        finally:
            await close_app(app)
    assert_clean(rig.check())
    with closing(sqlite3.connect(rig.sandbox_db)) as db:
        lost, doubled = (r[0] for r in db.execute("SELECT ma_ho_so FROM dossiers LIMIT 2"))
        (stepped,) = db.execute(
            "SELECT ma_ho_so FROM steps GROUP BY ma_ho_so HAVING COUNT(*) > 1 LIMIT 1"
        ).fetchone()
    _edit(
        rig.sandbox_db,
        f"DELETE FROM dossiers WHERE ma_ho_so = '{lost}'",
        "INSERT INTO applications (seq, ma_ho_so, hash, is_updating, noop, at)"
        f" VALUES (999999, '{doubled}', 'h', 0, 0, 0)",
        f"UPDATE steps SET seq = -seq WHERE ma_ho_so = '{stepped}'",
        "UPDATE steps SET received_count = 2",
    )
    with closing(sqlite3.connect(rig.state_db)) as db:
        (later,) = db.execute(
            "SELECT dossier FROM outbox WHERE kind = 'header' AND state = 'acked'"
            f" AND dossier NOT IN ('{lost}', '{doubled}') LIMIT 1"
        ).fetchone()
    _edit(
        rig.state_db,
        f"UPDATE outbox SET state = 'parked' WHERE kind = 'header' AND dossier = '{doubled}'",
        "DELETE FROM audit WHERE action = 'reply' AND service = 'CapNhatTienDoHoSoMC'",
        # A version the portal never applied, marked acknowledged (its dossier's was).
        'UPDATE outbox SET payload = CAST(\'{"MaHoSo": "x"}\' AS BLOB)'
        f" WHERE kind = 'header' AND state = 'acked' AND dossier = '{later}'",
    )
    report = rig.check(Bounds(duplicate_steps=1))
    text = "\n".join(report.violations)
    assert f"(a) dossier {lost} is not held" in text
    assert f"(b) dossier {doubled} was created 2 times" in text
    assert "re-sent steps, more than 1" in text
    assert f"(c) dossier {stepped}: step at" in text
    assert "ACKED without an ack reply" in text
    assert f"(header {later}) is ACKED, a version never applied" in text
    assert f"(e) valid dossier {doubled} is a dead letter (parked)" in text
    with pytest.raises(AssertionError, match="violation"):
        assert_clean(report)


def test_only_a_retried_dead_step_may_arrive_after_a_later_one() -> None:
    """(c) lets a step an operator sent again from the dead letters come late, and counts
    it; a late step nobody retried is a violation, and no step may precede its header."""
    with closing(sqlite3.connect(":memory:")) as portal:
        portal.execute("CREATE TABLE applications (ma_ho_so, seq)")
        portal.execute("CREATE TABLE steps (ma_ho_so, thoi_diem, trang_thai, seq)")
        portal.executemany("INSERT INTO applications VALUES (?, ?)", [("A", 1), ("B", 5)])
        portal.executemany(
            "INSERT INTO steps VALUES (?, ?, ?, ?)",
            [("A", "2", "2", 2), ("A", "1", "1", 3), ("B", "2", "2", 4), ("B", "1", "1", 6)],
        )
        report = Report()
        _order(report, portal, frozenset({"A|1|1"}))
    assert report.figures["late_retried_steps"] == 1
    assert report.violations == [
        "(c) dossier B: step at 2 arrived (seq 4) before its header",
        "(c) dossier B: step at 1 arrived (seq 6) after the later step at 2 (seq 4)",
    ]
