"""Operator actions on the local system's data: resync a selection, retry dead letters.

Both re-read the records from the local system and map them with the current mapping, so
a fix in the data or in the mapping is what gets sent, never the stale payload.

Both run beside the daemon, whose pull may read a record again while they hold what they
read of it. Queued after the pull's newer version, their older one would be sent last and
stay on the portal, with the pull's cursor already past the change. So each takes the
outbox's newest id before it reads (`Store.newest_id`), and its ingest leaves alone the
records that got a row after that (`IngestResult.newer`): what the pull queued is at least
as new as what was read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from connector.core.mapping import CompiledMapping
from connector.core.records import State
from connector.jobs.pull import map_records, read_whole_dossier
from connector.ports import Clock, OutboxItem, Selection, Source, Store


@dataclass(slots=True, kw_only=True)
class ResyncReport:
    """What a resync read and queued, per stream, with the reasons of refused records."""

    read: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    #: Records left as they were: the pull queued them again while they were read
    newer: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def resync(
    *,
    source: Source,
    mapping: CompiledMapping,
    store: Store,
    clock: Clock,
    selection: Selection,
    dry_run: bool = False,
    force: bool = True,
    batch: int = 500,
    progress: Callable[[str, int], None] = lambda stream, n: None,
) -> ResyncReport:
    """Re-read the selected dossiers and their steps and queue them again.

    With `force` the headers go again even when unchanged (the portal replaces the header,
    and takes a repeated step as the same step), which is what an operator repairing the
    portal's copy wants. Without it only what the outbox does not hold yet is queued: new
    records, changed headers, steps never queued (changes the pull missed). `dry_run`
    counts what would be queued, writing nothing.
    """
    report = ResyncReport()
    # Every stream's selection is opened (and checked) before anything is read or queued.
    selected = [(stream, source.select(stream, selection, batch)) for stream in source.streams()]
    mark = store.newest_id()  # before the first page is read: see the module's docstring
    for stream, pages in selected:
        for records in pages:
            mapped = map_records(mapping, stream, records)
            bad = [m for m in mapped if not m.ok]
            report.read[stream] = report.read.get(stream, 0) + len(mapped)
            report.invalid[stream] = report.invalid.get(stream, 0) + len(bad)
            report.reasons += [f"{m.source_ref} {m.key}: {m.reason()}" for m in bad][:20]
            now = clock.now()
            if dry_run:
                result = store.preview_ingest(mapped, now=now, force=force, read_mark=mark)
            else:
                result = store.ingest(stream, mapped, None, now=now, force=force, read_mark=mark)
            report.queued[stream] = report.queued.get(stream, 0) + result.queued
            if result.newer:
                report.newer[stream] = report.newer.get(stream, 0) + result.newer
            progress(stream, len(mapped))
    return report


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryResult:
    item_id: int
    # "requeued", "re-read", "not found", "not dead", "cannot re-read", GONE, STILL_REFUSED
    action: str
    reason: str = ""  # why, for STILL_REFUSED: the new dead letter's reason


#: A refused record no longer under the dossier number its dead letter was refused with.
GONE = "not in the local system under its dossier number"
#: A refused record read again and refused again: nothing was fixed, or not all of it.
STILL_REFUSED = "still refused"

#: Actions after which the dead letter is still there: the command ends with exit 1.
NOT_RETRIED = frozenset({"not found", "cannot re-read", GONE, STILL_REFUSED})


def retry_dead(
    *,
    item_ids: Sequence[int],
    source: Source,
    mapping: CompiledMapping,
    store: Store,
    clock: Clock,
) -> list[RetryResult]:
    """Send dead letters again: parked ones as they are, refused ones re-read from source."""
    results = []
    for item_id in item_ids:
        item = store.get(item_id)
        if item is None:
            results.append(RetryResult(item_id=item_id, action="not found"))
        elif item.state == State.PARKED:
            store.requeue([item_id], now=clock.now())
            results.append(RetryResult(item_id=item_id, action="requeued"))
        elif item.state not in (State.REJECTED, State.INVALID):
            results.append(RetryResult(item_id=item_id, action="not dead"))
        elif not item.dossier:
            results.append(RetryResult(item_id=item_id, action="cannot re-read"))
        else:
            results.append(_reread(item, source, mapping, store, clock))
    return results


def _reread(
    item: OutboxItem, source: Source, mapping: CompiledMapping, store: Store, clock: Clock
) -> RetryResult:
    """Retire a refused dead letter and queue its dossier as the local system holds it now.

    The dossier is read once, and the dead letter retired only when its record is among
    what was read: one renumbered (or deleted) in the local system since would otherwise be
    retired and read under no number at all, its steps then missing from the portal with
    nothing saying so. What is queued is what `resync --dossier N --missing-only` would.
    """
    mark = store.newest_id()  # before the read: see the module's docstring
    local = read_whole_dossier(source, mapping, item.dossier)
    if item.source_ref not in {m.source_ref for mapped in local.values() for m in mapped}:
        return RetryResult(item_id=item.id, action=GONE)
    for stream, mapped in local.items():
        # The dead letter goes in the transaction that queues its record again: retired
        # alone first, a crash or a full disk in between would lose the record for good.
        mine = any(m.source_ref == item.source_ref for m in mapped)
        if mapped:
            retire = [item.id] if mine else []
            store.ingest(stream, mapped, None, now=clock.now(), retire=retire, read_mark=mark)
    again = _refused_again(store, item)
    if again is not None:
        return RetryResult(item_id=item.id, action=STILL_REFUSED, reason=again.last_message)
    return RetryResult(item_id=item.id, action="re-read")


def _refused_again(store: Store, item: OutboxItem) -> OutboxItem | None:
    """The dead letter the re-read just made of the same record, if it was refused again
    (by validation, or by the ingest's checks of its dossier number)."""
    newer = [
        row
        for row in store.dossier_history(item.dossier)
        if row.id > item.id and row.source_ref == item.source_ref and row.kind is item.kind
    ]
    last = max(newer, key=lambda row: row.id, default=None)
    return last if last is not None and last.state is State.INVALID else None
