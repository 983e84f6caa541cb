"""Claiming due items for a push and settling what became of them.

A claim does not mark what it returns: claimed items stay pending until their reply is
settled. Only one process works on a store (`store.worker`) and its push job sends one round
at a time, so nothing else can claim them meanwhile; after a crash between claim and settle
they are simply due again, and the batch is sent once more (the portal's isUpdating rules and
step identity make that harmless). Marking items in flight cost a write of every item for no
guarantee the lock does not already give. `recover` still returns items a store written by
an earlier version left in flight.

The one thing a claim writes is a later due time for steps whose dossier the portal does not
hold (see `_held_due_steps`); acknowledging the dossier's header brings them back at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)

from connector.core.records import Kind, State
from connector.ports import OutboxItem, Settlement
from connector.store.engine import among, upsert
from connector.store.rows import chunks, to_item
from connector.store.schema import known, outbox, owners, waiting

_SETTLED = frozenset({State.ACKED, State.REJECTED, State.PARKED})


def claim(
    conn: Connection, kind: Kind, limit: int, *, now: float, max_wait: float | None = None
) -> list[OutboxItem]:
    """Due pending items of `kind`, left pending until settled (see `Store.claim`).

    Items go in order of due time, then of arrival: the due-time index serves that order
    without sorting, however long the backlog. `next_attempt_at` is wall time (it survives
    restarts), so after the clock went back an item could wait far longer than any backoff:
    with `max_wait`, one due later than `now + max_wait` is due now too.
    """
    crowded: list[str] = []  # keys with older pending versions, moot once these go
    if kind is Kind.HEADER:
        items, crowded = _claim_headers(conn, limit, now, max_wait)
    else:
        items = _claim_steps(conn, limit, now, max_wait)
    if crowded:
        moot = set(crowded)
        kept = [item.id for item in items if item.key in moot]
        _retire_older_versions(conn, crowded, kept, now)
    return items


def _pending(kind: Kind) -> ColumnElement[bool]:
    return and_(outbox.c.state == State.PENDING.value, outbox.c.kind == kind.value)


def _oldest_due(kind: Kind, limit: int, now: float) -> Select[Any]:
    return (
        select(outbox)
        .where(_pending(kind), outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )


def _stranded(kind: Kind, limit: int, beyond: float) -> Select[Any]:
    """Pending items due after `beyond`: only possible when the wall clock went back."""
    return (
        select(outbox)
        .where(_pending(kind), outbox.c.next_attempt_at > beyond)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )


def _due(conn: Connection, kind: Kind, limit: int, now: float, max_wait: float | None) -> list[Any]:
    """The oldest due rows; stranded ones only fill a batch the due ones left room in."""
    if kind is Kind.STEP:
        rows = _held_due_steps(conn, limit, now, later=now + _set_aside_for(max_wait))
    else:
        rows = list(conn.execute(_oldest_due(kind, limit, now)).fetchall())
    if max_wait is None or len(rows) >= limit:
        return rows
    extra = _stranded(kind, limit - len(rows), now + max_wait)
    if kind is Kind.STEP:
        extra = extra.join(known, known.c.dossier == outbox.c.dossier)
    return rows + list(conn.execute(extra).fetchall())


#: How long a step whose dossier the portal does not hold is set aside before a claim looks
#: at it again. Its header's acknowledgement (or a reconciliation finding the dossier held)
#: brings it back at once, so this only bounds the wait when neither tells the store.
SET_ASIDE_SECONDS = 300.0


def _set_aside_for(max_wait: float | None) -> float:
    """Never beyond `max_wait`: a step due later than that would pass for stranded."""
    return SET_ASIDE_SECONDS if max_wait is None else min(SET_ASIDE_SECONDS, max_wait)


def _held_due_steps(conn: Connection, limit: int, now: float, *, later: float) -> list[Any]:
    """The oldest due steps of dossiers the portal holds; the others are set aside.

    Steps behind a refused or invalid dossier stay pending until it is fixed, and they are
    the oldest due ones: left due, every claim walked past all of them before it found a
    step it could send, so a claim cost more with every invalid dossier waiting. Each is now
    looked at once, then due again only at `later` or when its dossier becomes held
    (`release_steps`). The loop ends: each turn that goes on has set aside a full window.
    """
    query = (
        _oldest_due(Kind.STEP, limit, now)
        .outerjoin(known, known.c.dossier == outbox.c.dossier)
        .add_columns(known.c.dossier.is_not(None))
    )
    while True:
        rows = conn.execute(query).fetchall()
        blocked = [row for row in rows if not row[-1]]
        if blocked:
            _reschedule(conn, [row.id for row in blocked], later)
            dossiers = [{"dossier": d} for d in sorted({row.dossier for row in blocked})]
            conn.execute(upsert(conn, waiting).on_conflict_do_nothing(), dossiers)
        if len(blocked) < len(rows) or len(rows) < limit:
            return [row for row in rows if row[-1]]


def _reschedule(conn: Connection, item_ids: Sequence[int], at: float) -> None:
    for part in chunks(item_ids):
        conn.execute(
            update(outbox).where(among(conn, outbox.c.id, part)).values(next_attempt_at=at)
        )


def release_steps(conn: Connection, dossiers: Sequence[str], now: float) -> None:
    """Steps of dossiers the portal now holds, set aside or waiting out a backoff, due now.

    The portal just acknowledged (or was found to hold) each dossier: the reason a step of
    it was set aside is gone, and the portal is answering. Only dossiers in `waiting` had
    steps set aside, so the outbox is searched for those alone (`pending_steps_of`).
    """
    later: list[int] = []
    for part in chunks(sorted(set(dossiers))):
        found = list(
            conn.scalars(select(waiting.c.dossier).where(among(conn, waiting.c.dossier, part)))
        )
        if not found:
            continue
        conn.execute(delete(waiting).where(among(conn, waiting.c.dossier, found)))
        later += [
            item_id for _, _, item_id, due_at in pending_steps_of(conn, found) if due_at > now
        ]
    _reschedule(conn, later, now)


def rows_of_dossiers(conn: Connection, dossiers: Iterable[str], *columns: Any) -> list[Any]:
    """`columns` of every outbox row of `dossiers`, unordered; callers filter in Python.

    Only the dossier is constrained in SQL, so the dossier index serves the look-up: with
    the state or kind in the WHERE clause too, SQLite walks every row of that state or kind
    in the store instead.
    """
    found: list[Any] = []
    for part in chunks(sorted(set(dossiers))):
        query = select(*columns).where(among(conn, outbox.c.dossier, part))
        found += conn.execute(query).fetchall()
    return found


def pending_steps_of(
    conn: Connection, dossiers: Iterable[str]
) -> list[tuple[str, str, int, float]]:
    """The pending steps of `dossiers`: (dossier, event time, id, next attempt), unordered."""
    pending, step = State.PENDING.value, Kind.STEP.value
    c = outbox.c
    rows = rows_of_dossiers(
        conn, dossiers, c.dossier, c.event_time, c.id, c.next_attempt_at, c.state, c.kind
    )
    return [
        (dossier, at, item_id, due_at)
        for dossier, at, item_id, due_at, state, kind in rows
        if state == pending and kind == step
    ]


def _is_due(now: float, max_wait: float | None) -> ColumnElement[bool]:
    due = outbox.c.next_attempt_at <= now
    return due if max_wait is None else or_(due, outbox.c.next_attempt_at > now + max_wait)


def _claim_headers(
    conn: Connection, limit: int, now: float, max_wait: float | None
) -> tuple[list[OutboxItem], list[str]]:
    """Due headers, each replaced by the newest pending version of its dossier.

    Two pending versions of one dossier only exist after an operator requeued an old one;
    sending it after the newer one would roll the portal's copy back.
    """
    rows = _due(conn, Kind.HEADER, limit, now, max_wait)
    newest, versions = newest_pending(conn, {row.key for row in rows})
    fresh = [row for row in rows if newest[row.key] == row.id]
    if len(fresh) < len(rows):
        wanted = {newest[row.key] for row in rows} - {row.id for row in fresh}
        query = select(outbox).where(
            among(conn, outbox.c.id, sorted(wanted)), _is_due(now, max_wait)
        )
        fresh = sorted([*fresh, *conn.execute(query)], key=lambda r: (r.next_attempt_at, r.id))
    held = known_among(conn, {row.dossier for row in fresh})
    crowded = [row.key for row in fresh if versions[row.key] > 1]
    return [to_item(row, updating=row.dossier in held) for row in fresh], crowded


def newest_pending(conn: Connection, keys: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per key, the id of the newest pending version and how many versions are pending."""
    newest: dict[str, int] = {}
    versions: dict[str, int] = {}
    for part in chunks(sorted(keys)):
        query = (
            select(outbox.c.key, func.max(outbox.c.id), func.count())
            .where(_pending(Kind.HEADER), among(conn, outbox.c.key, part))
            .group_by(outbox.c.key)
        )
        for key, row_id, count in conn.execute(query):
            newest[key] = row_id
            versions[key] = count
    return newest, versions


def _retire_older_versions(
    conn: Connection, keys: Sequence[str], kept: Sequence[int], now: float
) -> None:
    """Once the newest version of a dossier is claimed, older pending ones are moot; the
    claimed ones (`kept`) stay pending until their reply is settled."""
    for part in chunks(sorted(set(keys))):
        conn.execute(
            update(outbox)
            .where(
                _pending(Kind.HEADER),
                among(conn, outbox.c.key, part),
                ~among(conn, outbox.c.id, kept),
            )
            .values(state=State.SUPERSEDED.value, updated_at=now)
        )


def _claim_steps(
    conn: Connection, limit: int, now: float, max_wait: float | None
) -> list[OutboxItem]:
    """Due steps of acknowledged dossiers, never overtaking an earlier step still waiting.

    A step retried after a failure waits for its backoff while later steps of its dossier
    may be new and due: sending those first would break the dossier's time order. So each
    dossier in the due window contributes the due prefix of its pending steps in time order.
    """
    window = _due(conn, Kind.STEP, limit, now, max_wait)
    if not window:
        return []
    chosen = _due_prefixes(conn, [row.dossier for row in window], limit, now, max_wait)
    rows = {row.id: row for row in window}
    missing = [i for i in chosen if i not in rows]
    for part in chunks(missing):
        rows.update(
            {
                row.id: row
                for row in conn.execute(select(outbox).where(among(conn, outbox.c.id, part)))
            }
        )
    items = [to_item(rows[i]) for i in chosen]
    return sorted(items, key=lambda item: (item.dossier, item.event_time, item.id))


def _due_prefixes(
    conn: Connection, dossiers: Sequence[str], limit: int, now: float, max_wait: float | None
) -> list[int]:
    """Ids of each dossier's pending steps in time order up to the first one not yet due."""
    steps: dict[str, list[tuple[str, int, float]]] = {}
    for dossier, at, item_id, due_at in pending_steps_of(conn, dossiers):
        steps.setdefault(dossier, []).append((at, item_id, due_at))
    chosen: list[int] = []
    for dossier in dict.fromkeys(dossiers):
        for _, item_id, due_at in sorted(steps.get(dossier, ())):
            stranded = max_wait is not None and due_at > now + max_wait
            if (due_at > now and not stranded) or len(chosen) >= limit:
                break
            chosen.append(item_id)
    return chosen


def known_among(conn: Connection, dossiers: set[str]) -> set[str]:
    """Which of `dossiers` the portal is known to hold."""
    found: set[str] = set()
    for part in chunks(sorted(dossiers)):
        found.update(
            conn.scalars(select(known.c.dossier).where(among(conn, known.c.dossier, part)))
        )
    return found


def settle(conn: Connection, settlements: Sequence[Settlement], *, now: float) -> frozenset[int]:
    """Record each outcome; acknowledged headers make their dossier known (see `Store.settle`).

    Returns the ids whose refusal or parking was not recorded because the item had been
    superseded meanwhile, so the push does not count them as new dead letters.
    """
    retries = [s for s in settlements if s.state is State.PENDING]
    final = [s for s in settlements if s.state in _SETTLED]
    if len(retries) + len(final) != len(settlements):
        odd = sorted({s.state.value for s in settlements} - {s.value for s in _SETTLED})
        raise ValueError(f"cannot settle an item as {', '.join(odd)}")
    moot = _settle_final(conn, final, now)
    _settle_retries(conn, retries, now)
    acked = [s.item_id for s in final if s.state is State.ACKED and s.kind is not Kind.STEP]
    _mark_known(conn, acked, now)
    return moot


def _settle_final(
    conn: Connection, settlements: Sequence[Settlement], now: float
) -> frozenset[int]:
    """One `IN (...)` update per distinct outcome: a batch's acknowledgements share one.

    A header version superseded while it was in flight (the pull queued a newer one) stays
    superseded unless the portal acknowledged it: a refusal of a version nobody will send
    again is no dead letter. An acknowledgement stands, since the portal applied it.
    Returns the refused or parked ids left as they were: the update says which rows it
    changed (`RETURNING`), so a pull superseding one at the same moment cannot slip between
    a look-up and the update on a database that lets it (PostgreSQL's read committed).
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for s in settlements:
        groups.setdefault((s.state.value, s.code, s.message), []).append(s.item_id)
    moot: set[int] = set()
    for (state, code, message), ids in groups.items():
        for part in chunks(ids):
            statement = (
                update(outbox)
                .where(among(conn, outbox.c.id, part))
                .values(state=state, last_code=code, last_message=message, updated_at=now)
            )
            if state == State.ACKED.value:
                conn.execute(statement)
                continue
            kept = statement.where(outbox.c.state != State.SUPERSEDED.value)
            changed = set(conn.scalars(kept.returning(outbox.c.id)))
            moot.update(i for i in part if i not in changed)
    return frozenset(moot)


def _settle_retries(conn: Connection, settlements: Sequence[Settlement], now: float) -> None:
    if not settlements:
        return
    statement = (
        update(outbox)
        .where(outbox.c.id == bindparam("item_id"), outbox.c.state != State.SUPERSEDED.value)
        .values(
            state=State.PENDING.value,
            last_code=bindparam("code"),
            last_message=bindparam("message"),
            next_attempt_at=bindparam("next_at"),
            attempts=outbox.c.attempts + bindparam("counted"),
            updated_at=now,
        )
    )
    conn.execute(statement, [_params(s) for s in settlements])


def _params(settlement: Settlement) -> dict[str, Any]:
    return {
        "item_id": settlement.item_id,
        "new_state": settlement.state.value,
        "code": settlement.code,
        "message": settlement.message,
        "next_at": settlement.next_attempt_at,
        "counted": 1 if settlement.count_attempt else 0,
    }


def _mark_known(conn: Connection, acked_ids: Sequence[int], now: float) -> None:
    """The newest acknowledged header version of each dossier becomes what the portal holds,
    and the local record it came from owns the dossier's number for good."""
    held: dict[str, dict[str, Any]] = {}
    owner: dict[str, dict[str, Any]] = {}
    newest: dict[str, int] = {}  # per header key, the newest version acknowledged now
    header = Kind.HEADER.value
    for part in chunks(sorted(acked_ids)):
        # Only the ids are constrained in SQL: with the kind in the WHERE clause SQLite
        # walks every header of the store (the kind's index) instead of looking ids up.
        query = select(
            outbox.c.id,
            outbox.c.kind,
            outbox.c.key,
            outbox.c.dossier,
            outbox.c.content_hash,
            outbox.c.source_ref,
        ).where(among(conn, outbox.c.id, part))
        for item_id, kind, key, dossier, digest, ref in conn.execute(query.order_by(outbox.c.id)):
            if kind == header and dossier:
                held[dossier] = {"dossier": dossier, "acked_hash": digest, "acked_at": now}
                owner.setdefault(dossier, {"dossier": dossier, "source_ref": ref, "acked_at": now})
                newest[key] = item_id
    if held:
        statement = upsert(conn, known)
        statement = statement.on_conflict_do_update(
            index_elements=[known.c.dossier],
            set_={"acked_hash": statement.excluded.acked_hash, "acked_at": now},
        )
        conn.execute(statement, list(held.values()))
        conn.execute(upsert(conn, owners).on_conflict_do_nothing(), list(owner.values()))
        release_steps(conn, list(held), now)
        _retire_replaced_dead_versions(conn, newest, now)


#: Dead header versions an acknowledged newer version of the same dossier replaces.
_REPLACEABLE = (State.REJECTED.value, State.PARKED.value)


def _retire_replaced_dead_versions(conn: Connection, newest: dict[str, int], now: float) -> None:
    """Older header versions the portal refused, or that were parked, are moot once a newer
    version of the same dossier is acknowledged (an update replaces the whole header): the
    record was fixed, and its dead letter should not stay listed as if it still mattered."""
    moot: list[int] = []
    for part in chunks(sorted(newest)):
        # The state is filtered here, not in SQL: with it there, SQLite walks every dead
        # header of the store (the due index) instead of looking the keys up.
        query = select(outbox.c.id, outbox.c.key, outbox.c.state).where(
            outbox.c.kind == Kind.HEADER.value, among(conn, outbox.c.key, part)
        )
        moot += [
            item_id
            for item_id, key, state in conn.execute(query)
            if state in _REPLACEABLE and item_id < newest[key]
        ]
    for ids in chunks(moot):
        conn.execute(
            update(outbox)
            .where(among(conn, outbox.c.id, ids))
            .values(state=State.SUPERSEDED.value, updated_at=now)
        )


def recover(conn: Connection) -> int:
    """Every in-flight item back to pending, without counting an attempt."""
    result = conn.execute(
        update(outbox)
        .where(outbox.c.state == State.IN_FLIGHT.value)
        .values(state=State.PENDING.value)
    )
    return result.rowcount
