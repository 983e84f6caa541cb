"""Read-only questions about the outbox, for the status page, the CLI and the scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, func, select

from connector.core.records import DEAD_STATES, Kind, State
from connector.ports import BlockedDossier, OutboxItem
from connector.store.delivery import rows_of_dossiers
from connector.store.rows import to_item, to_items
from connector.store.schema import PENDING_LITERAL, known, outbox

#: The same condition as `ix_outbox_pending`'s, word for word, so the backlog queries below
#: read that index (the pending rows alone) instead of one holding every row ever queued.
_BACKLOG = outbox.c.state == PENDING_LITERAL
#: Pending steps of dossiers the portal does not hold yet: they wait for their header.
_BLOCKED = and_(
    _BACKLOG,
    outbox.c.kind == Kind.STEP.value,
    ~exists().where(known.c.dossier == outbox.c.dossier),
)


def counts(conn: Connection) -> dict[tuple[Kind, State], int]:
    query = select(outbox.c.kind, outbox.c.state, func.count()).group_by(
        outbox.c.kind, outbox.c.state
    )
    return {(Kind(kind), State(state)): n for kind, state, n in conn.execute(query)}


def items(
    conn: Connection,
    *,
    states: Sequence[State],
    kind: Kind | None,
    dossier: str | None,
    limit: int,
    code: str | None = None,
    oldest: bool = False,
) -> list[OutboxItem]:
    """Rows matching every given filter, newest first, or queued longest ago first."""
    order = outbox.c.id if oldest else outbox.c.id.desc()
    query = select(outbox).order_by(order).limit(limit)
    if states:
        query = query.where(outbox.c.state.in_([s.value for s in states]))
    if kind is not None:
        query = query.where(outbox.c.kind == kind.value)
    if dossier is not None:
        query = query.where(outbox.c.dossier == dossier)
    if code is not None:
        query = query.where(outbox.c.last_code == code)
    return to_items(conn.execute(query).all())


def get(conn: Connection, item_id: int) -> OutboxItem | None:
    row = conn.execute(select(outbox).where(outbox.c.id == item_id)).first()
    return None if row is None else to_item(row)


def dossier_history(conn: Connection, dossier: str) -> list[OutboxItem]:
    """Every row of one dossier, oldest first: its headers and steps as they travelled."""
    query = select(outbox).where(outbox.c.dossier == dossier).order_by(outbox.c.id)
    return to_items(conn.execute(query).all())


def known_sample(conn: Connection, n: int) -> list[str]:
    query = select(known.c.dossier).order_by(func.random()).limit(n)
    return list(conn.scalars(query))


def acked_at(conn: Connection, dossier: str) -> float | None:
    """When the portal last acknowledged the dossier's header (kept after the purge)."""
    value = conn.scalar(select(known.c.acked_at).where(known.c.dossier == dossier))
    return None if value is None else float(value)


def acked_since(conn: Connection, since: float) -> dict[Kind, int]:
    query = (
        select(outbox.c.kind, func.count())
        .where(outbox.c.state == State.ACKED.value, outbox.c.updated_at >= since)
        .group_by(outbox.c.kind)
    )
    return {Kind(kind): n for kind, n in conn.execute(query)}


def blocked_steps(conn: Connection) -> int:
    """Pending steps waiting for their dossier's header to be acknowledged.

    Inherently a pass over every pending step, but over `ix_outbox_pending` alone (it holds
    kind and dossier): its cost follows the backlog, not the store's history.
    """
    query = select(func.count()).select_from(outbox).where(_BLOCKED)
    return int(conn.scalar(query) or 0)


def blocked_dossiers(conn: Connection, limit: int) -> list[BlockedDossier]:
    """The dossiers of blocked steps, longest waiting first, each with its newest header.

    The header row (pending, refused, parked or invalid) says why the portal does not hold
    the dossier yet; a dossier without one has steps under a number no header was queued
    with. Superseded versions are left out: they are not what will be sent.
    """
    first = func.min(outbox.c.created_at)
    query = (
        select(outbox.c.dossier, func.count(), first)
        .where(_BLOCKED)
        .group_by(outbox.c.dossier)
        .order_by(first, outbox.c.dossier)
        .limit(limit)
    )
    waiting = conn.execute(query).all()
    headers: dict[str, OutboxItem] = {}
    rows = rows_of_dossiers(conn, [dossier for dossier, _, _ in waiting], outbox)
    for row in sorted(rows, key=lambda row: row.id):
        if row.kind == Kind.HEADER.value and row.state != State.SUPERSEDED.value:
            headers[row.dossier] = to_item(row)  # ordered by id: the newest stays
    return [
        BlockedDossier(dossier=d, steps=n, first_queued_at=at, header=headers.get(d))
        for d, n, at in waiting
    ]


def oldest_pending_age(conn: Connection, now: float) -> float | None:
    """Seconds since the oldest sendable pending item was queued (steps blocked behind an
    unacknowledged header are reported apart), None when nothing is pending.

    Taken as the older of the oldest pending header and the oldest pending step of a dossier
    the portal holds: `ix_outbox_pending` keeps pending rows by (kind, created_at), so each
    is the first sendable entry of a walk over the backlog alone, where one MIN over both
    kinds reads every pending row. Ids are no stand-in for `created_at`: the wall clock can
    go back between two inserts.
    """
    headers = _first_queued(outbox.c.kind == Kind.HEADER.value)
    held = exists().where(known.c.dossier == outbox.c.dossier)
    steps = _first_queued(and_(outbox.c.kind == Kind.STEP.value, held))
    found = [t for t in (conn.scalar(headers), conn.scalar(steps)) if t is not None]
    return max(0.0, now - min(found)) if found else None


def _first_queued(which: ColumnElement[bool]) -> Select[Any]:
    """The earliest `created_at` among pending rows matching `which`."""
    return select(outbox.c.created_at).where(_BACKLOG, which).order_by(outbox.c.created_at).limit(1)


def stats_by_code(conn: Connection, limit: int) -> list[tuple[str, int]]:
    """Dead letters grouped by their code, most frequent first."""
    n = func.count().label("n")
    query = (
        select(outbox.c.last_code, n)
        .where(outbox.c.state.in_([s.value for s in DEAD_STATES]))
        .group_by(outbox.c.last_code)
        .order_by(n.desc(), outbox.c.last_code)
        .limit(limit)
    )
    return [(code, count) for code, count in conn.execute(query)]
