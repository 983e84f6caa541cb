"""The store's statements search its indexes: none walks every row of a kind or a state.

On a store of a million dossiers a walk of the header index costs a quarter of a second,
and some statements run on every batch; the planner makes such a walk quietly when a
WHERE clause gives it a column it can search by (the kind) besides the one it should
(an id, a dossier). Each statement the pipeline and the reports send is explained here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from connector.core.records import Kind, State
from connector.ports import Settlement
from connector.store import SqlStore
from tests.contracts.test_store_contract import broken, header, step

T0 = 1_000_000.0
#: A search by the leading column(s) alone of an index holding every row ever queued.
WALK = re.compile(
    r"USING (COVERING )?INDEX ix_outbox_(kind_key|kind_ref|due|state_updated) \((kind|state)=\?\)"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _exercise(store: SqlStore) -> None:
    """Every kind of statement the daemon and the reports send, once or more."""
    store.ingest("dossiers", [header("D1"), header("D2"), broken(header("D3"))], None, now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    steps = [step(d, f"2026010100000{n}") for d in ("D1", "D2", "D3") for n in (1, 2)]
    store.ingest("steps", steps, None, now=T0 + 1)
    claimed = store.claim(Kind.HEADER, 10, now=T0 + 2)
    store.settle(
        [Settlement(item_id=i.id, state=State.ACKED, kind=Kind.HEADER) for i in claimed],
        now=T0 + 2,
    )
    claimed = store.claim(Kind.STEP, 10, now=T0 + 3, max_wait=600)
    store.settle([Settlement(item_id=i.id, state=State.ACKED) for i in claimed], now=T0 + 3)
    store.ingest("dossiers", [header("D2", "3")], None, now=T0 + 4)
    store.blocked_steps()
    store.blocked_dossiers()
    store.oldest_pending_age(T0 + 5)
    store.next_due()


def test_no_statement_walks_a_whole_kind_or_state(store: SqlStore, tmp_path: Path) -> None:
    sent: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    _exercise(store)
    event.remove(store.engine, "before_cursor_execute", seen)
    assert len(sent) > 10
    db = sqlite3.connect(tmp_path / "store.db")
    walks = []
    try:
        for statement, parameters in sent:
            rows = db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plan = " | ".join(row[3] for row in rows)
            if WALK.search(plan):
                walks.append(f"{' '.join(statement.split())[:160]}\n    {plan}")
    finally:
        db.close()
    assert not walks, "\n".join(walks)
