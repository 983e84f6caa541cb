"""Changes made outside the push loop: reconciliation repairs and operator commands."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, update

from connector.core.records import State
from connector.store.delivery import release_steps
from connector.store.engine import upsert
from connector.store.rows import chunks
from connector.store.schema import known, outbox

#: Dead letters an operator may send again; INVALID rows must be re-mapped from the source.
REQUEUEABLE = (State.REJECTED.value, State.PARKED.value)
#: What an operator may retire; acknowledged and in-flight rows record facts, so they stay.
SUPERSEDABLE = (State.PENDING.value, State.REJECTED.value, State.PARKED.value, State.INVALID.value)
#: Rows whose purpose is fulfilled; `known` keeps what unchanged-detection needs of them.
PURGEABLE = (State.ACKED.value, State.SUPERSEDED.value)


def set_known(conn: Connection, dossier: str, held: bool, *, now: float) -> None:
    """Record a TraCuuHoSo finding; an unknown held version gets the hash ""."""
    if not held:
        conn.execute(delete(known).where(known.c.dossier == dossier))
        return
    row = {"dossier": dossier, "acked_hash": "", "acked_at": now}
    conn.execute(upsert(conn, known).values(row).on_conflict_do_nothing())
    release_steps(conn, [dossier], now)


def requeue(conn: Connection, item_ids: Sequence[int], *, now: float) -> int:
    """Rejected and parked items back to pending with a fresh attempt budget."""
    changed = 0
    for part in chunks(sorted(set(item_ids))):
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(part), outbox.c.state.in_(REQUEUEABLE))
            .values(state=State.PENDING.value, attempts=0, next_attempt_at=now, updated_at=now)
        )
        changed += result.rowcount
    return changed


def supersede(conn: Connection, item_ids: Sequence[int], *, now: float) -> int:
    """Retire items an operator no longer wants sent."""
    changed = 0
    for part in chunks(sorted(set(item_ids))):
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(part), outbox.c.state.in_(SUPERSEDABLE))
            .values(state=State.SUPERSEDED.value, updated_at=now)
        )
        changed += result.rowcount
    return changed


def purge(conn: Connection, *, before: float) -> int:
    """Delete acknowledged and superseded rows last changed before `before`."""
    result = conn.execute(
        delete(outbox).where(outbox.c.state.in_(PURGEABLE), outbox.c.updated_at < before)
    )
    return result.rowcount
