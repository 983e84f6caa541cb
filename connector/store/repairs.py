"""Changes made outside the push loop: reconciliation repairs and operator commands."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Row, delete, select, update

from connector.core.hashing import split_digests, step_digest
from connector.core.records import DEAD_STATES, Kind, State
from connector.store.delivery import (
    known_among,
    newest_pending,
    pending_steps_of,
    release_steps,
    rows_of_dossiers,
)
from connector.store.engine import among, upsert
from connector.store.rows import chunks
from connector.store.schema import known, outbox, sent_steps, waiting

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
        conn.execute(delete(sent_steps).where(sent_steps.c.dossier == dossier))
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


#: The last code of an item an operator dismissed (or a step retired with its header), so
#: that it is told apart from a version a newer one replaced.
DISMISSED = "dismissed"


def supersede(
    conn: Connection, item_ids: Sequence[int], *, now: float, noted: dict[str, str] | None = None
) -> int:
    """Retire items an operator no longer wants sent; `noted` sets their last code and
    message too."""
    changed = 0
    values = {"state": State.SUPERSEDED.value, "updated_at": now, **(noted or {})}
    for part in chunks(sorted(set(item_ids))):
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(part), outbox.c.state.in_(SUPERSEDABLE))
            .values(**values)
        )
        changed += result.rowcount
    return changed


def dismiss(conn: Connection, item_ids: Sequence[int], *, now: float) -> tuple[list[int], int]:
    """Retire the dead letters among `item_ids`; returns their ids and how many steps went
    with them.

    A step never goes before its dossier's header: when a dismissed header's dossier is not
    held by the portal and has no other version waiting or dead (which an operator may
    still retry), its pending steps could never go, so they are retired too. Otherwise they
    stay, to follow the version that will go.
    """
    dead: list[tuple[int, str, str]] = []
    for part in chunks(sorted(set(item_ids))):
        query = select(outbox.c.id, outbox.c.kind, outbox.c.dossier, outbox.c.state).where(
            among(conn, outbox.c.id, part)
        )
        dead += [(i, k, d) for i, k, d, state in conn.execute(query) if state in _DEAD]
    supersede(conn, [item_id for item_id, _, _ in dead], now=now, noted={"last_code": DISMISSED})
    headers = {dossier for _, kind, dossier in dead if kind == Kind.HEADER.value and dossier}
    # A header's key is its dossier number, so the keys with a pending version are dossiers.
    queued, _ = newest_pending(conn, headers)
    stranded = headers - known_among(conn, headers) - set(queued) - _dead_headers(conn, headers)
    steps = [item_id for _, _, item_id, _ in pending_steps_of(conn, stranded)]
    behind = {"last_code": DISMISSED, "last_message": "retired with its dossier's header"}
    supersede(conn, steps, now=now, noted=behind)
    return [item_id for item_id, _, _ in dead], len(steps)


_DEAD = frozenset(state.value for state in DEAD_STATES)


def _dead_headers(conn: Connection, dossiers: set[str]) -> set[str]:
    """Which of `dossiers` still have a header version among the dead letters."""
    rows = rows_of_dossiers(conn, dossiers, outbox.c.dossier, outbox.c.kind, outbox.c.state)
    return {d for d, kind, state in rows if kind == Kind.HEADER.value and state in _DEAD}


def purge(conn: Connection, *, before: float, part: int) -> int:
    """Delete up to `part` acknowledged and superseded rows last changed before `before`;
    the acknowledged steps among them are kept in `sent_steps` first (see `_keep_sent`)."""
    query = (
        select(outbox.c.id, outbox.c.kind, outbox.c.state, outbox.c.dossier, outbox.c.key)
        .where(outbox.c.state.in_(PURGEABLE), outbox.c.updated_at < before)
        .limit(part)
    )
    rows = conn.execute(query).all()
    _keep_sent(conn, rows)
    for ids in chunks(sorted(row.id for row in rows)):
        conn.execute(delete(outbox).where(among(conn, outbox.c.id, ids)))
    return len(rows)


def forget_waiting(conn: Connection) -> int:
    """Drop the `waiting` rows of dossiers with no pending step left (an operator retired
    them, say), so the table lists only dossiers whose steps still wait.

    """
    listed = list(conn.scalars(select(waiting.c.dossier)))
    waits = {dossier for dossier, *_ in pending_steps_of(conn, listed)}
    gone = [dossier for dossier in listed if dossier not in waits]
    for part in chunks(gone):
        conn.execute(delete(waiting).where(among(conn, waiting.c.dossier, part)))
    return len(gone)


def _keep_sent(conn: Connection, rows: Sequence[Row[int, str, str, str, str]]) -> None:
    """Add the acknowledged steps of `rows` to their dossier's digests in `sent_steps`.

    Only for dossiers the portal is known to hold: one it no longer holds (a lookup said so)
    must get its steps again with its header.
    """
    new: dict[str, list[bytes]] = {}
    for row in rows:
        if row.kind == Kind.STEP.value and row.state == State.ACKED.value:
            new.setdefault(row.dossier, []).append(step_digest(row.key))
    for part in chunks(sorted(new)):
        held = set(conn.scalars(select(known.c.dossier).where(among(conn, known.c.dossier, part))))
        query = select(sent_steps.c.dossier, sent_steps.c.digests)
        found = conn.execute(query.where(among(conn, sent_steps.c.dossier, part)))
        kept: dict[str, bytes] = {dossier: blob for dossier, blob in found}
        merged = [
            {"dossier": dossier, "digests": _merged(kept.get(dossier, b""), new[dossier])}
            for dossier in part
            if dossier in held
        ]
        if merged:
            statement = upsert(conn, sent_steps)
            excluded = statement.excluded.digests
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[sent_steps.c.dossier], set_={"digests": excluded}
                ),
                merged,
            )


def _merged(kept: bytes, new: list[bytes]) -> bytes:
    """`kept` followed by the digests of `new` it does not hold yet."""
    have = set(split_digests(kept))
    return kept + b"".join(d for d in dict.fromkeys(new) if d not in have)
