"""`connector audit verify` after a real run: intact, then edited, deleted and reordered."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.harness import copy_sqlite
from tests.security.seeded import Seeded
from tests.security.stack import SecureStack, table_text

pytestmark = pytest.mark.e2e

Tamper = Callable[[sqlite3.Connection], None]


def _edit_outcome(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit SET outcome = 'ok' WHERE seq = 4")


def _delete_row(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit WHERE seq = 3")


def _swap_rows(conn: sqlite3.Connection) -> None:
    """Rows 2 and 3 trade places: each keeps its own content, hashes and links."""
    conn.execute("UPDATE audit SET seq = -2 WHERE seq = 2")
    conn.execute("UPDATE audit SET seq = 2 WHERE seq = 3")
    conn.execute("UPDATE audit SET seq = 3 WHERE seq = -2")


@pytest.fixture(scope="module")
def pristine(
    tmp_path_factory: pytest.TempPathFactory, seeded_template: tuple[Path, Seeded]
) -> Iterator[tuple[SecureStack, Path]]:
    """One real pull-and-push run for the module; its state store is kept as a copy."""
    stack = SecureStack(tmp=tmp_path_factory.mktemp("audit"))
    shutil.copy(seeded_template[0], stack.demo_db)
    stack.write_config()
    try:
        stack.start_sandbox()
        stack.cli("run", "--once")
    finally:
        stack.stop_all()
    copy = stack.tmp / "pristine.db"
    copy_sqlite(stack.state_db, copy)
    yield stack, copy


@pytest.fixture
def audited(pristine: tuple[SecureStack, Path]) -> tuple[SecureStack, Path]:
    """The stack with its state store reset to the run's untouched copy."""
    stack, copy = pristine
    copy_sqlite(copy, stack.state_db)
    return stack, copy


def test_untouched_trail_verifies(audited: tuple[SecureStack, Path], seeded: Seeded) -> None:
    """After a real run the chain verifies (exit 0) and holds hashes, never personal data."""
    stack, _ = audited
    verdict = stack.cli("audit", "verify")
    assert "audit trail intact" in verdict.stdout
    rows = table_text(stack.state_db, "audit")
    assert rows.count("DongBoHoSoMC") > 1 and "CapNhatTienDoHoSoMC" in rows
    assert seeded.found_in(rows) == []
    outbox = table_text(stack.state_db, "outbox")
    assert seeded.found_in(outbox), "the seeded data should be in the outbox payloads"


@pytest.mark.parametrize(
    ("tamper", "first_bad", "words"),
    [
        (_edit_outcome, 4, "edited"),
        (_delete_row, 3, "deleted"),
        (_swap_rows, 2, "link to the previous row"),
    ],
)
def test_tampered_trail_names_the_first_bad_record(
    audited: tuple[SecureStack, Path], tamper: Tamper, first_bad: int, words: str
) -> None:
    """Editing, deleting or swapping rows makes `audit verify` exit 1 naming the first bad
    record."""
    stack, _ = audited
    conn = sqlite3.connect(stack.state_db)
    try:
        with conn:
            tamper(conn)
    finally:
        conn.close()
    verdict = stack.cli("audit", "verify", check=False)
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    assert f"broken at record {first_bad}" in verdict.stderr, verdict.stderr
    assert words in verdict.stderr, verdict.stderr


def test_cutting_the_newest_rows_is_noticed(audited: tuple[SecureStack, Path]) -> None:
    """Deleting the last rows leaves an intact-looking chain, but the recorded head differs."""
    stack, _ = audited
    conn = sqlite3.connect(stack.state_db)
    try:
        with conn:
            (last,) = conn.execute("SELECT max(seq) FROM audit").fetchone()
            conn.execute("DELETE FROM audit WHERE seq >= ?", (last - 1,))
    finally:
        conn.close()
    verdict = stack.cli("audit", "verify", check=False)
    assert verdict.returncode == 1
    assert f"broken at record {last - 1}" in verdict.stderr, verdict.stderr


def test_archived_records_leave_the_store_and_verify_through_the_file(
    audited: tuple[SecureStack, Path], seeded: Seeded
) -> None:
    """`audit archive` moves the run's records to a file of hashes (no personal data); the
    store's trail goes on from them, and `verify --archive` walks the chain through it."""
    stack, _ = audited
    with closing(sqlite3.connect(stack.state_db)) as conn:
        (total,) = conn.execute("SELECT count(*) FROM audit").fetchone()
    target = stack.tmp / "archive-1.jsonl"
    done = stack.cli("audit", "archive", str(target), "--before", "2999-01-01")
    assert f"archived {total} records (seq 1–{total})" in done.stdout
    assert seeded.found_in(target.read_text(encoding="utf-8")) == []
    assert "0 record(s)" in stack.cli("audit", "show").stdout
    shown = stack.cli("audit", "show", "--archive", str(target), "--limit", "100000", "--json")
    assert [json.loads(line)["seq"] for line in shown.stdout.splitlines()] == list(
        range(1, total + 1)
    )
    assert "audit trail intact: 0 records" in stack.cli("audit", "verify").stdout
    whole = stack.cli("audit", "verify", "--archive", str(target))
    assert f"audit trail intact: {total} records" in whole.stdout
    again = stack.cli("audit", "archive", str(target), "--before", "2999-01-01", check=False)
    assert again.returncode == 2 and "exists" in again.stderr
    target.write_text(target.read_text(encoding="utf-8").replace('"reply"', '"send"', 1))
    edited = stack.cli("audit", "verify", "--archive", str(target), check=False)
    assert edited.returncode == 1 and "edited" in edited.stderr
