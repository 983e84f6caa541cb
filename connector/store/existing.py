"""What the outbox already holds for one page of mapped items, read in a few queries.

One query per chunk of items returns every row of the same kind that shares a key or a
source reference with them (superseded rows aside); `Seen` sorts those rows into the facts
the ingest planner decides with. The same rows tell which local record owns a dossier
number and which number a local record was first queued under; `owners` adds the claims
the portal acknowledged, and `sent_steps` the steps it acknowledged, which outlive their
purged rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Row, select, union, union_all

from connector.core.hashing import split_digests, step_digest
from connector.core.records import Kind, Mapped, State
from connector.store.delivery import rows_of_dossiers
from connector.store.engine import among
from connector.store.rows import chunks
from connector.store.schema import (
    INVALID_LITERAL,
    STEP_LITERAL,
    known,
    outbox,
    owners,
    sent_steps,
)

_INVALID = State.INVALID.value
_PENDING = State.PENDING.value
_GONE = State.SUPERSEDED.value

#: (kind, source_ref) of an invalid row: source references are only unique within a kind.
RefKey = tuple[Kind, str]
#: A stored row as `_rows` reads it: id, key, source_ref, state, hash, message, dossier_ref.
_Found = Row[int, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Unclaimed:
    """A pending step queued under a number no record had claimed yet."""

    id: int
    source_ref: str
    key: str
    dossier_ref: str


@dataclass(slots=True, kw_only=True)
class Seen:
    """The stored facts about a page's keys; the planner keeps them current as it goes."""

    header_hash: dict[str, str] = field(default_factory=dict)  # key -> newest live hash
    known_hash: dict[str, str] = field(default_factory=dict)  # dossier -> acked hash
    live_steps: set[str] = field(default_factory=set)  # step keys queued or sent (or purged)
    pending_steps: set[str] = field(default_factory=set)  # step keys still waiting to go
    #: step key -> the dossier records of the pending steps holding it (when named)
    pending_records: dict[str, set[str]] = field(default_factory=dict)
    pending_headers: dict[str, list[int]] = field(default_factory=dict)  # key -> row ids
    invalid_by_ref: dict[RefKey, dict[int, str]] = field(default_factory=dict)  # id -> reason
    owner: dict[str, str] = field(default_factory=dict)  # MaHoSo -> first source_ref queued
    number: dict[str, str] = field(default_factory=dict)  # source_ref -> first MaHoSo queued
    #: MaHoSo not yet claimed -> its pending steps that name their dossier record
    unclaimed_steps: dict[str, list[Unclaimed]] = field(default_factory=dict)
    #: Records with a row newer than the read mark (see `look_up`)
    newer: set[RefKey] = field(default_factory=set)

    def add(self, kind: Kind, row: _Found) -> None:
        row_id, key, ref, state, digest, message, record = row
        if state == _INVALID:
            self.invalid_by_ref.setdefault((kind, ref), {})[row_id] = message
        elif kind is Kind.STEP:
            self.live_steps.add(key)
            if state == _PENDING:
                self.queue_step(key, record)
        else:
            self.header_hash[key] = digest
            self.claim(key, ref)
            if state == _PENDING:
                self.pending_headers.setdefault(key, []).append(row_id)

    def queue_step(self, key: str, record: str) -> None:
        """Record that a step with `key` of dossier record `record` ('' when unnamed) waits."""
        self.pending_steps.add(key)
        if record:
            self.pending_records.setdefault(key, set()).add(record)

    def claim(self, dossier: str, ref: str) -> None:
        """Record that `ref` queued a header under `dossier`; the first claim of each stands."""
        self.owner.setdefault(dossier, ref)
        self.number.setdefault(ref, dossier)


def look_up(conn: Connection, items: Sequence[Mapped], *, read_mark: int | None = None) -> Seen:
    """Read what the store holds for `items`: a query per kind and chunk, plus `known`, the
    `owners` of the page's dossier numbers and the `sent_steps` (which outlive purged rows).

    A step that names its dossier record (`Mapped.dossier_ref`) is looked up as a header
    of that record and number too, for the claims its ingest is checked against.

    With `read_mark` (the outbox's newest id before the items were read), the records that
    got a row after it are in `Seen.newer`: the pull read them again meanwhile, so what
    the items hold of them may be older than what the outbox holds.
    """
    seen = Seen()
    claims = _claims(items)
    _owners(conn, claims, seen)
    for kind in Kind:
        found: dict[int, _Found] = {}
        looked_up = claims if kind is Kind.HEADER else _identities(items, kind)
        for keys, refs in looked_up:
            found.update((row[0], row) for row in _rows(conn, kind, keys, refs))
        for row_id in sorted(found):  # oldest first across chunks: the first claim stands
            seen.add(kind, found[row_id])
        if read_mark is not None:
            seen.newer.update((kind, row[2]) for row_id, row in found.items() if row_id > read_mark)
    seen.unclaimed_steps = _unclaimed_steps(conn, items, seen)
    dossiers = {i.dossier for i in items if i.kind is Kind.HEADER and i.key not in seen.header_hash}
    seen.known_hash = _known_hashes(conn, dossiers)
    unseen = [i for i in items if i.kind is Kind.STEP and i.key not in seen.live_steps]
    seen.live_steps.update(purged_steps(conn, unseen))
    return seen


def _unclaimed_steps(
    conn: Connection, items: Sequence[Mapped], seen: Seen
) -> dict[str, list[Unclaimed]]:
    """The pending steps queued under the numbers this page's headers may claim first.

    Such a step was queued before any record claimed its number (say its header was
    invalid then), so nobody could tell whose it was; the first claim decides it (see
    `Planner._identity`). In a backfill the headers come before their steps, and this
    finds nothing.
    """
    numbers = {
        i.dossier for i in items if i.kind is Kind.HEADER and i.ok and i.dossier not in seen.owner
    }
    c = outbox.c
    found: dict[str, list[Unclaimed]] = {}
    for dossier, item_id, source_ref, key, ref, state, kind in rows_of_dossiers(
        conn, numbers, c.dossier, c.id, c.source_ref, c.key, c.dossier_ref, c.state, c.kind
    ):
        if ref and state == _PENDING and kind == Kind.STEP.value:
            found.setdefault(dossier, []).append(Unclaimed(item_id, source_ref, key, ref))
    return found


def records_with_refused_steps(conn: Connection, records: Iterable[str]) -> set[str]:
    """Which of `records` (dossier records, "dossiers:7") have steps among the dead letters."""
    c = outbox.c
    refused = (c.state == INVALID_LITERAL, c.kind == STEP_LITERAL)
    found: set[str] = set()
    for part in chunks(sorted(set(records))):
        query = select(outbox.c.dossier_ref).where(*refused, among(conn, c.dossier_ref, part))
        found.update(conn.scalars(query.distinct()))
    return found


def purged_steps(conn: Connection, steps: Sequence[Mapped]) -> set[str]:
    """The keys of `steps` acknowledged and purged, for dossiers the portal still holds."""
    if not steps:
        return set()
    kept: dict[str, set[bytes]] = {}
    for part in chunks(sorted({item.dossier for item in steps})):
        query = (
            select(sent_steps.c.dossier, sent_steps.c.digests)
            .join(known, known.c.dossier == sent_steps.c.dossier)
            .where(among(conn, sent_steps.c.dossier, part))
        )
        kept.update((dossier, set(split_digests(blob))) for dossier, blob in conn.execute(query))
    if not kept:
        return set()
    return {i.key for i in steps if i.dossier in kept and step_digest(i.key) in kept[i.dossier]}


#: Per chunk of items: the keys and the source references to look up.
_Identities = list[tuple[set[str], set[str]]]


def _identities(items: Iterable[Mapped], kind: Kind) -> _Identities:
    """The keys and source references of the items of `kind`, a chunk at a time."""
    found: _Identities = []
    for part in chunks(i for i in items if i.kind is kind):
        found.append(({i.key for i in part}, {i.source_ref for i in part}))
    return found


def _claims(items: Sequence[Mapped]) -> _Identities:
    """The header identities a page is checked against: its headers' numbers and records,
    and the numbers and dossier records its steps name."""
    found = _identities(items, Kind.HEADER)
    # A dossier's steps come together: one look-up per pair, not per step.
    pairs = dict.fromkeys((i.dossier, i.dossier_ref) for i in items if i.dossier_ref)
    for part in chunks(pairs):
        found.append(({number for number, _ in part}, {ref for _, ref in part}))
    return found


def _rows(conn: Connection, kind: Kind, keys: set[str], refs: set[str]) -> list[_Found]:
    """Rows sharing one of `keys` or `refs` (source references), oldest first, each once.

    Two index searches joined by UNION ALL: SQLite does not use both indexes for an OR.
    """
    columns = (
        outbox.c.id,
        outbox.c.key,
        outbox.c.source_ref,
        outbox.c.state,
        outbox.c.content_hash,
        outbox.c.last_message,
        outbox.c.dossier_ref,
    )
    alive = (outbox.c.kind == kind.value, outbox.c.state != _GONE)
    by_key = select(*columns).where(*alive, among(conn, outbox.c.key, sorted(keys)))
    by_ref = select(*columns).where(*alive, among(conn, outbox.c.source_ref, sorted(refs)))
    found: dict[int, _Found] = {row[0]: row for row in conn.execute(union_all(by_key, by_ref))}
    return [found[row_id] for row_id in sorted(found)]


def _owners(conn: Connection, claims: _Identities, seen: Seen) -> None:
    """Claims the portal acknowledged: the first claims of their numbers and records."""
    for numbers, refs in claims:
        columns = (owners.c.dossier, owners.c.source_ref)
        by_number = select(*columns).where(among(conn, owners.c.dossier, sorted(numbers)))
        by_ref = select(*columns).where(among(conn, owners.c.source_ref, sorted(refs)))
        for dossier, ref in conn.execute(union(by_number, by_ref)):
            seen.claim(dossier, ref)


def _known_hashes(conn: Connection, dossiers: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in chunks(sorted(dossiers)):
        query = select(known.c.dossier, known.c.acked_hash).where(
            among(conn, known.c.dossier, part)
        )
        found.update({dossier: digest for dossier, digest in conn.execute(query)})
    return found
