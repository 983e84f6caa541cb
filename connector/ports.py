"""The small protocols the jobs talk to. Adapters live behind them.

A new local-system kind implements `Source`; a new portal profile implements `Portal`;
a new state-store backend implements `Store`. The jobs never see anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from connector.core.records import (
    BatchReply,
    Cursor,
    Encoded,
    Kind,
    Mapped,
    Outgoing,
    Payload,
    PortalView,
    SourceRecord,
    State,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One incremental read: the records and the cursor just after the last of them."""

    records: list[SourceRecord]
    cursor: Cursor | None  # None when `records` is empty


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which dossiers an operator asked for (resync, retry); None means 'any'.

    `since`/`until` bound the date a dossier was received; `changed_since`/`changed_until`
    bound when a record last changed (what the pull reads by), to send again what changed
    in a window whatever the dossier's age.
    """

    dossier: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    changed_since: datetime | None = None
    changed_until: datetime | None = None
    agency: str | None = None
    procedure: str | None = None

    def backwards(self) -> list[tuple[str, str]]:
        """The windows that select nothing because they end before they start, as (start
        field, end field): asked by mistake, they would report "nothing matched". A window
        with one bound zoned and the other not is left to the source, which places each."""
        windows = (("since", "until"), ("changed_since", "changed_until"))
        found = []
        for start, end in windows:
            low, high = getattr(self, start), getattr(self, end)
            if low is None or high is None or (low.tzinfo is None) != (high.tzinfo is None):
                continue
            if low >= high:
                found.append((start, end))
        return found


class Source(Protocol):
    """A local one-stop system, read incrementally stream by stream."""

    def streams(self) -> Sequence[str]:
        """The stream names in pull order (dossiers before steps)."""
        ...

    def pull(self, stream: str, after: Cursor | None, limit: int) -> Page:
        """Records changed after `after`, oldest first, at most `limit`."""
        ...

    def select(self, stream: str, selection: Selection, batch: int) -> Iterator[list[SourceRecord]]:
        """Every record of `stream` matching `selection`, in batches (for resync).

        Raises MappingError when called, before reading, if the stream cannot be narrowed
        by what `selection` asks for. Nothing is read before the iteration starts: a resync
        takes the outbox's read mark in between (see `Store.ingest`)."""
        ...

    def close(self) -> None: ...


class Portal(Protocol):
    """The national portal, whatever the transport profile."""

    async def push_headers(self, items: Sequence[Outgoing], *, updating: bool) -> BatchReply:
        """DongBoHoSoMC. Raises PortalTransient / PortalRefused for call-level failures."""
        ...

    async def push_steps(self, items: Sequence[Outgoing]) -> BatchReply:
        """CapNhatTienDoHoSoMC. Raises PortalTransient / PortalRefused."""
        ...

    async def lookup(self, ma_ho_so: str) -> PortalView | None:
        """TraCuuHoSo: what the portal holds for one dossier, None if nothing."""
        ...

    async def catalogue(self, service: str) -> list[dict[str, Any]]:
        """LayDanhSachTTHC / LayDanhMucCoQuan / LayDanhMucLinhVuc: the catalogue's rows.
        Raises PortalTransient / PortalRefused."""
        ...

    async def probe(self) -> None:
        """Log in (or keep a live session) without sending anything: `connector check`.
        Raises PortalTransient / PortalRefused."""
        ...

    def session_state(self) -> str:
        """'none', 'active', or 'refused: <reason>' for the status page."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One row of the outbox as the jobs and the CLI see it."""

    id: int
    kind: Kind
    key: str
    dossier: str
    source_ref: str
    body: bytes  # the payload's canonical JSON, as stored and as sent
    content_hash: str
    state: State
    attempts: int
    next_attempt_at: float
    event_time: str
    last_code: str
    last_message: str
    created_at: float
    updated_at: float
    updating: bool = False  # headers only: the portal is known to hold this dossier

    @property
    def payload(self) -> Payload:
        """The payload as data (decoded on each access: pushing never needs it)."""
        decoded: Payload = orjson.loads(self.body)
        return decoded

    @property
    def outgoing(self) -> Encoded:
        """The payload as a push call takes it, still encoded."""
        return Encoded(self.body, self.dossier)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """What became of one claimed item after a push attempt."""

    item_id: int
    state: State  # ACKED, REJECTED, PARKED or PENDING (to be retried)
    code: str = ""
    message: str = ""
    next_attempt_at: float = 0.0  # for PENDING
    count_attempt: bool = True  # False when the item was not at fault (login refused)
    kind: Kind | None = None  # when known to be a step, no dossier becomes known by it


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    queued: int = 0
    unchanged: int = 0
    invalid: int = 0
    #: Items queued earlier that became dead letters: (source_ref, key, reason) each
    withdrawn: tuple[tuple[str, str, str], ...] = ()
    #: Records left as they were: the outbox got a version of them after they were read
    newer: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockedDossier:
    """A dossier whose steps wait because the portal does not hold it yet, and its header:
    the newest version queued under its number (None when none is), which says why."""

    dossier: str
    steps: int
    first_queued_at: float
    header: OutboxItem | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One send or reply, recorded without personal data (payload hashes only)."""

    at: float
    action: str  # "send" | "reply" | "operator"
    service: str  # e.g. "DongBoHoSoMC"
    keys: Sequence[str]  # MaHoSo / step keys concerned
    payload_hash: str = ""  # hash over the items' content hashes
    outcome: str = ""  # "ok", "rejected:<code>", "transient:<reason>", ...
    detail: str = ""


class WorkerLock(Protocol):
    def release(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Dismissed:
    """What `Store.dismiss` retired: the dead letters, and the steps waiting behind them."""

    ids: list[int]
    steps: int


class Store(Protocol):
    """The durable outbox, what the portal is known to hold, cursors and the audit trail."""

    def ingest(
        self,
        stream: str,
        items: Sequence[Mapped],
        cursor: Cursor | None,
        *,
        now: float,
        force: bool = False,
        retire: Sequence[int] = (),
        read_mark: int | None = None,
    ) -> IngestResult:
        """Queue mapped items (valid → pending, invalid → dead letter) and move the cursor,
        all in one transaction. Unchanged headers and already-queued steps are skipped
        unless `force`. A header that is the first to claim its number also turns the
        steps another record queued under it into dead letters (`IngestResult.withdrawn`).
        `retire`: items these replace (an operator's retry of a dead letter), superseded
        in the same transaction first, so that a crash cannot retire one without queueing
        its record again; the record is then queued even if unchanged.
        `read_mark`: `newest_id()` taken before the items were read (an operator's read
        beside the running pull). A record with a row newer than that may have changed
        since it was read: it is left as it is (`IngestResult.newer`)."""
        ...

    def preview_ingest(
        self,
        items: Sequence[Mapped],
        *,
        now: float,
        force: bool = False,
        read_mark: int | None = None,
    ) -> IngestResult:
        """What `ingest` would queue, skip and dead-letter, writing nothing (a dry run)."""
        ...

    def newest_id(self) -> int:
        """The highest outbox id so far (0 when empty): see `ingest`'s `read_mark`."""
        ...

    def cursor(self, stream: str) -> Cursor | None: ...

    def cursors(self) -> Mapping[str, tuple[Cursor, float]]:
        """Every stream's cursor with the time it last moved."""
        ...

    def claim(
        self, kind: Kind, limit: int, *, now: float, max_wait: float | None = None
    ) -> list[OutboxItem]:
        """Due pending items, left pending until `settle` (one worker per store, one push
        round at a time: nothing else claims them). Headers: the newest version per dossier.
        Steps: only for dossiers whose header the portal acknowledged, in time order.
        With `max_wait`, an item due later than `now + max_wait` (the wall clock went back)
        counts as due."""
        ...

    def settle(self, settlements: Sequence[Settlement], *, now: float) -> frozenset[int]:
        """Record outcomes; an acknowledged header makes its dossier known to the portal.

        Returns the ids of refused or parked items left as they were because a newer version
        had superseded them meanwhile: no dead letters, whatever the reply said."""
        ...

    def set_known(self, dossier: str, held: bool, *, now: float) -> None:
        """Repair what the portal holds for `dossier` after a TraCuuHoSo lookup."""
        ...

    def recover(self) -> int:
        """After a crash: every in-flight item back to pending. Returns how many."""
        ...

    def lock_worker(
        self, *, wait: float = 0.0, on_wait: Callable[[str], None] = lambda message: None
    ) -> WorkerLock:
        """Take the store for this process's `connector run` alone, waiting up to `wait`
        seconds for another holder to let go (`on_wait` hears why once), or raise
        `StoreBusy` naming the holder; the lock goes when the process does, even killed."""
        ...

    def audit(self, events: Sequence[AuditEvent]) -> None: ...

    def ping(self) -> None:
        """Return when the store answers a trivial read; raise StoreError when it does not."""
        ...

    def counts(self) -> Mapping[tuple[Kind, State], int]: ...

    def items(
        self,
        *,
        states: Sequence[State] = (),
        kind: Kind | None = None,
        dossier: str | None = None,
        limit: int = 50,
        code: str | None = None,
        oldest: bool = False,
    ) -> list[OutboxItem]:
        """Rows matching every filter given, newest first (`oldest`: queued longest ago
        first); `code` is the last code, e.g. a portal's rejection code, `invalid` or
        `parked`."""
        ...

    def get(self, item_id: int) -> OutboxItem | None: ...

    def requeue(self, item_ids: Sequence[int], *, now: float) -> int:
        """Dead letters back to pending with a fresh attempt budget."""
        ...

    def supersede(self, item_ids: Sequence[int], *, now: float) -> int: ...

    def dismiss(self, item_ids: Sequence[int], *, now: float) -> Dismissed:
        """Retire the dead letters among `item_ids` that an operator will not fix, with
        the pending steps that could only have gone after a dismissed header."""
        ...

    def known_sample(self, n: int) -> list[str]:
        """Up to n dossiers the portal acknowledged, for reconciliation."""
        ...

    def acked_at(self, dossier: str) -> float | None:
        """When the portal last acknowledged the dossier's header; None if it never did.
        Outlives the purge of acknowledged rows."""
        ...

    def acked_since(self, since: float) -> Mapping[Kind, int]:
        """How many items were acknowledged since `since` (throughput)."""
        ...

    def put_meta(self, key: str, value: str) -> None: ...

    def rereads(self) -> list[str]:
        """Dossiers whose steps are to be read again: a refused record of theirs was fixed
        while some of its steps were refused for its sake (see `PullJob`)."""
        ...

    def reread(self, dossier: str) -> None:
        """`dossier`'s steps were read again (or cannot be): off the list."""
        ...

    def meta(self) -> Mapping[str, str]: ...

    def fingerprint_key(self) -> bytes:
        """The key of the fingerprints of masked values (`core.masking.use_key`), made at
        random the first time it is asked for and kept in the store from then on."""
        ...

    def purge(self, *, before: float, part: int = ...) -> int:
        """Drop acknowledged and superseded rows older than `before`, `part` rows at a time;
        returns how many. The acknowledged steps among them are kept as sent (in effect)."""
        ...

    def blocked_steps(self) -> int:
        """Pending steps waiting for their dossier's header to be acknowledged."""
        ...

    def blocked_dossiers(self, limit: int = 50) -> list[BlockedDossier]:
        """The dossiers behind `blocked_steps`, longest waiting first, with their headers."""
        ...

    def oldest_pending_age(self, now: float) -> float | None: ...

    def stats_by_code(self, limit: int = 10) -> list[tuple[str, int]]:
        """Dead letters grouped by the portal's (or 'invalid') code, largest first."""
        ...

    def dossier_history(self, dossier: str) -> list[OutboxItem]:
        """Every outbox row of one dossier, oldest first."""
        ...

    def purged_steps(self, steps: Sequence[Mapped]) -> set[str]:
        """The keys of `steps` the portal acknowledged whose rows were purged."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Injected so tests can move time; `now` is wall time, `monotonic` for intervals."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...
