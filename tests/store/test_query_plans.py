"""The store's statements search its indexes: none walks every row of a kind or a state.

On a store of a million dossiers a walk of the header index costs a quarter of a second,
and some statements run on every batch; the planner makes such a walk quietly when a
WHERE clause gives it a column it can search by (the kind) besides the one it should
(an id, a dossier). Each statement the pipeline and the reports send is explained here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.core.records import Kind, State
from connector.ports import Settlement
from connector.store import SqlStore
from tests.contracts.test_store_contract import broken, header, step
from tests.contracts.test_store_reports import plans_of

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
    store.ingest("dossiers", [header("D2", "3"), header("D3")], None, now=T0 + 4)
    claimed = store.claim(Kind.HEADER, 10, now=T0 + 4)  # D3 held: its steps set aside return
    store.settle(
        [Settlement(item_id=i.id, state=State.ACKED, kind=Kind.HEADER) for i in claimed],
        now=T0 + 4,
    )
    store.ingest("dossiers", [broken(header("D4"))], None, now=T0 + 5)
    store.ingest("steps", [step("D4", "20260101000001")], None, now=T0 + 5)
    store.blocked_steps()
    store.blocked_dossiers()
    store.oldest_pending_age(T0 + 5)
    store.purge(before=T0 + 4, part=2)  # keeps the acknowledged steps in `sent_steps`
    store.ingest("steps", steps, None, now=T0 + 6)  # finds them there


def test_no_statement_walks_a_whole_kind_or_state(store: SqlStore) -> None:
    plans = plans_of(store, lambda: _exercise(store))
    assert len(plans) > 10
    walks = [
        f"{' '.join(sql.split())[:160]}\n    {plan}" for sql, plan in plans if WALK.search(plan)
    ]
    assert not walks, "\n".join(walks)
